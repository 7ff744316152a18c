"""Command line: `whatsmeow-tenancy <command>` (or `python -m applier <command>` from a checkout)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

import psycopg

from applier import __version__
from applier.commands import RUNNERS, tenant_io
from applier.commands import tenant as tenant_command
from applier.errors import EXIT_ERROR, ApplierError
from applier.steps import latest_compat, latest_version, load_steps

EPILOG = """\
database: --dsn, else DATABASE_URL, else the libpq PG* variables, else the embedded
  default (a local PostgreSQL cluster the applier starts itself).
exit codes: 0 ok; 1 pending steps, drift or findings; 2 usage, configuration,
  connection or failed step; 3 database newer than this package (refused).
"""

COMMANDS = {
    "upgrade": (
        "apply every pending step, each in one transaction with its version row",
        "example: whatsmeow-tenancy upgrade --dsn postgresql://owner@db/whatsmeow",
    ),
    "status": (
        "show the recorded version, the newest known one and the pending steps (exit 1 if any)",
        "example: whatsmeow-tenancy status --json",
    ),
    "demo": (
        "show that two tenants sharing a device JID stay apart (rolled back, changes nothing)",
        "example: whatsmeow-tenancy demo",
    ),
    "audit": (
        "re-apply the audit views of audits/ and report every invariant violation (exit 1 if any)",
        "example: whatsmeow-tenancy audit --json > audit.json",
    ),
    "verify": (
        "compare the live schema with this package's definition of its version (exit 1 on any difference)",
        "example: whatsmeow-tenancy verify --dsn postgresql://owner@db/whatsmeow",
    ),
    "prune": (
        "remove superseded mutation MACs, expired buffer rows and, if asked, old message secrets, in batches",
        "example: whatsmeow-tenancy prune --business-id acme --message-secrets-older-than 90d --dry-run",
    ),
}


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

    prog = program_name()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Apply and inspect the multi-tenant whatsmeow PostgreSQL store.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {}
    for name, (summary, example) in COMMANDS.items():
        commands[name] = sub.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=f"{example}\n\n{EPILOG}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    commands["upgrade"].add_argument(
        "--lock-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for another applier to finish (default 60)",
    )
    commands["upgrade"].add_argument(
        "--dry-run",
        action="store_true",
        help="print the exact SQL that would run, version row writes included, and change nothing",
    )
    commands["upgrade"].add_argument(
        "--online",
        action="store_true",
        help="with --adopt-business-id: convert a live store without long locks (resumable)",
    )
    commands["upgrade"].add_argument(
        "--adopt-business-id",
        metavar="BUSINESS_ID",
        help="convert an upstream single-tenant store, assigning every existing row to this tenant",
    )
    commands["status"].add_argument("--json", action="store_true", help="print the status document as JSON")
    commands["audit"].add_argument("--json", action="store_true", help="print the audit document as JSON")
    commands["prune"].add_argument("--business-id", metavar="ID", help="prune this tenant only (default: every tenant)")
    commands["prune"].add_argument(
        "--message-secrets-older-than", metavar="AGE",
        help="also remove message secrets stored longer ago than AGE (90d, 36h, 12w); never without it")
    commands["prune"].add_argument("--dry-run", action="store_true",
                                   help="print per tenant and table what would be removed, and change nothing")
    commands["prune"].add_argument("--batch-size", type=int, default=1000, metavar="ROWS",
                                   help="rows per committed transaction (default 1000)")
    commands["prune"].add_argument("--json", action="store_true", help="print the counts as JSON")

    # rls has actions of its own; each takes the common options, so they may follow the action.
    rls_summary = "tenant row-level security: enable [--force], disable, roles, status"
    rls = sub.add_parser("rls", help=rls_summary, description=rls_summary, epilog=EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    rls_actions = rls.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, summary, example in (
        ("enable", "turn on the tenant policy for every tenant table (re-runnable)", "rls enable --force"),
        ("disable", "remove the tenant policy and turn row-level security off", "rls disable"),
        ("roles", "create the owner and application roles and set their privileges", "rls roles --app-role app"),
        ("status", "show row-level security per tenant table (exit 0)", "rls status --json"),
    ):
        action = rls_actions.add_parser(name, parents=[common], help=summary, description=summary,
                                        epilog=f"example: {prog} {example}\n\n{EPILOG}",
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
        if name != "status":
            action.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                                help="how long to wait for another applier to finish (default 60)")
    rls_actions.choices["enable"].add_argument(
        "--force", action="store_true", help="also bind the tables' owner (for an application connecting as owner)"
    )
    rls_actions.choices["roles"].add_argument("--app-role", metavar="NAME", help="default whatsmeow_app")
    rls_actions.choices["roles"].add_argument("--owner-role", metavar="NAME", help="default whatsmeow_owner")
    guardrails = rls_actions.choices["roles"].add_argument_group(
        "guardrails for the application role and each login that is a member of it (unset unless given)"
    )
    guardrails.add_argument("--app-connection-limit", type=int, metavar="N",
                            help="at most N connections per role (ALTER ROLE ... CONNECTION LIMIT)")
    guardrails.add_argument("--app-idle-session-timeout", metavar="DURATION",
                            help="close sessions idle this long, e.g. 10min (PostgreSQL 14+)")
    guardrails.add_argument("--app-idle-in-transaction-timeout", metavar="DURATION",
                            help="end transactions left idle this long, e.g. 30s")
    rls_actions.choices["status"].add_argument("--json", action="store_true", help="print the status as JSON")

    # tenant has actions of its own, like rls.
    tenant_summary = "the tenant lifecycle: list, purge, rename, import, export; each operation is logged"
    tenant = sub.add_parser("tenant", help=tenant_summary, description=tenant_summary, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    tenant_actions = tenant.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, summary, example in (
        ("list", "each tenant with its devices, rows and approximate bytes per table", "tenant list --json"),
        ("purge", "remove every row of a tenant, or of one device, in committed batches (needs --yes)",
         "tenant purge --business-id acme --yes"),
        ("rename", "move every row of a tenant to a new business_id in one transaction",
         "tenant rename --business-id acme --to acme-eu"),
    ):
        action = tenant_actions.add_parser(name, parents=[common], help=summary, description=summary,
                                           epilog=f"example: {prog} {example}\n\n{EPILOG}",
                                           formatter_class=argparse.RawDescriptionHelpFormatter)
        action.add_argument("--json", action="store_true", help="print the result as JSON")
    tenant_actions.choices["purge"].add_argument("--business-id", metavar="ID", required=True,
                                                 help="the tenant to purge")
    tenant_actions.choices["purge"].add_argument("--device", metavar="JID",
                                                 help="purge only this device and the rows that hang off it")
    tenant_actions.choices["purge"].add_argument("--yes", action="store_true",
                                                 help="really remove the rows (without it: show counts, exit 2)")
    tenant_actions.choices["purge"].add_argument("--batch-size", type=int, default=5000, metavar="ROWS",
                                                 help="rows per committed transaction (default 5000)")
    tenant_actions.choices["rename"].add_argument("--business-id", metavar="OLD", required=True,
                                                  help="the tenant to rename")
    tenant_actions.choices["rename"].add_argument("--to", metavar="NEW", required=True,
                                                  help="its new business_id, used by no row yet")
    tenant_io.add_parsers(tenant_actions, [common], prog, EPILOG)
    tenant_command.add_citus_parsers(tenant_actions, [common], prog, EPILOG)

    embedded_summary = "the local PostgreSQL used when no database is given: status, start, stop"
    embedded = sub.add_parser("embedded", help=embedded_summary, description=embedded_summary,
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="It lives in $WHATSMEOW_TENANCY_HOME (default ~/.local/share/whatsmeow-tenancy, "
                              "or /var/lib/whatsmeow-tenancy for root), listens only on a socket there, and keeps "
                              "running after a command until `embedded stop`.")
    embedded_actions = embedded.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, summary in (("status", "whether it exists and runs, and how to connect (exit 0)"),
                          ("start", "create it if needed and start it"),
                          ("stop", "stop it; the data stays")):
        action = embedded_actions.add_parser(name, parents=[base], help=summary, description=summary)
        action.add_argument("--json", action="store_true", help="print the state as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return RUNNERS[args.command](args)
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
