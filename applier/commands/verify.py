"""`verify`: compare the live schema with the package's definition of its version."""

from __future__ import annotations

import sys

from applier.commands.options import Shared
from applier.database import open_database, read_state
from applier.errors import EXIT_OK, EXIT_PENDING
from applier.verify import current_schema, differences


def run(args) -> int:
    with open_database(args.dsn, quiet=args.quiet) as conn:
        state = read_state(conn)
        lines = differences(conn)
        schema = current_schema(conn)[0]
    for line in lines:
        print(line)
    if not lines:
        if not args.quiet:
            print(f"schema {schema} matches the package's v{state.version} definition", file=sys.stderr)
        return EXIT_OK
    if not args.quiet:
        print(f"{len(lines)} differences from the package's v{state.version} definition in schema {schema}",
              file=sys.stderr)
    return EXIT_PENDING


def add_parser(commands, shared: Shared) -> None:
    shared.command(commands, "verify", "compare the live schema with this package's definition of its version (exit 1 "
                   "on any difference)", "verify --dsn postgresql://owner@db/whatsmeow").set_defaults(run=run)
