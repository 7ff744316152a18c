"""Command line: `whatsmeow-tenancy <command>` (or `python -m applier <command>` from a checkout)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

import psycopg

from applier import __version__
from applier.commands import COMMANDS
from applier.commands.options import Shared
from applier.errors import EXIT_ERROR, ApplierError
from applier.steps import latest_compat, latest_version, load_steps

EPILOG = """\
database: --dsn, else DATABASE_URL, else the libpq PG* variables, else the embedded
  default (a local PostgreSQL cluster the applier starts itself).
exit codes: 0 ok; 1 pending steps, drift or findings; 2 usage, configuration,
  connection or failed step; 3 database newer than this package (refused).
"""


def program_name() -> str:
    """How the user ran us, for usage lines: the console script, or `python -m applier`."""
    invoked = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m applier" if invoked in ("__main__.py", "-m", "") else invoked


def version_text() -> str:
    steps = load_steps()
    return (f"whatsmeow-tenancy {__version__} (schema v{latest_version(steps)}, "
            f"compatible with v{latest_compat(steps)}+)")


def build_parser() -> argparse.ArgumentParser:
    base = argparse.ArgumentParser(add_help=False)
    base.add_argument("--quiet", action="store_true", help="print only errors and requested output")
    base.add_argument("--debug", action="store_true", help="print a traceback on errors")
    common = argparse.ArgumentParser(add_help=False, parents=[base])
    common.add_argument("--dsn", help="libpq connection string or URL of the target database")
    shared = Shared(base, common, program_name(), EPILOG)

    parser = argparse.ArgumentParser(
        prog=shared.prog,
        description="Apply and inspect the multi-tenant whatsmeow PostgreSQL store.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_text())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands, shared)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ApplierError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except psycopg.Error as exc:  # a statement outside any upgrade file failed
        if args.debug:
            traceback.print_exc()
        print(f"error: {exc.diag.message_primary or exc} (SQLSTATE {exc.sqlstate})", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("error: interrupted; the statement under way was rolled back (an interrupted online conversion "
              "is finished by running the same command again)", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug or an unexpected database error: one line unless --debug
        if args.debug:
            traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc} (run with --debug for a traceback)", file=sys.stderr)
        return EXIT_ERROR
