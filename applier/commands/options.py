"""What every command's parser shares: the common options, the program name and the closing notes.

Each command module declares its own flags in `add_parser(commands, shared)`; applier/cli.py only
assembles the modules listed in applier/commands/__init__.py.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Shared:
    base: argparse.ArgumentParser  # --quiet, --debug
    common: argparse.ArgumentParser  # base and --dsn: every command that talks to a database
    prog: str  # as the user ran us, for examples
    epilog: str  # where the database comes from, and the exit codes

    def command(self, parent, name: str, summary: str, example: str | None = None, *,
                database: bool = True, epilog: str | None = None) -> argparse.ArgumentParser:
        """A command (or an action of one) under `parent`, an add_subparsers() result; `example` is the
        command line after the program's name."""
        notes = epilog if epilog is not None else self.epilog
        if example is not None:
            notes = f"example: {self.prog} {example}\n\n{notes}"
        return parent.add_parser(name, parents=[self.common if database else self.base], help=summary,
                                 description=summary, epilog=notes,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)

    def group(self, parent, name: str, summary: str, *, epilog: str | None = None):
        """A command with actions of its own (rls, tenant, embedded); returns the actions' parent. Each
        action takes the common options, so they may follow the action."""
        parser = parent.add_parser(name, help=summary, description=summary,
                                   epilog=epilog if epilog is not None else self.epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
        return parser, parser.add_subparsers(dest="action", required=True, metavar="ACTION")


def lock_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for another applier to finish (default 60)")


def as_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")
