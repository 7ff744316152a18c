"""`upgrade`: bring the database to the latest multi-tenant version."""

from __future__ import annotations

from applier.database import open_database
from applier.commands.options import Shared, lock_timeout
from applier.upgrade import upgrade


def run(args) -> int:
    with open_database(args.dsn, quiet=args.quiet) as conn:
        upgrade(
            conn,
            adopt_business_id=args.adopt_business_id,
            lock_timeout=args.lock_timeout,
            quiet=args.quiet,
            dry_run=args.dry_run,
            online=args.online,
        )
    return 0


def add_parser(commands, shared: Shared) -> None:
    parser = shared.command(commands, "upgrade", "apply every pending step, each in one transaction with its version row",
                            "upgrade --dsn postgresql://owner@db/whatsmeow")
    lock_timeout(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the exact SQL that would run, version row writes included, and change nothing")
    parser.add_argument("--online", action="store_true",
                        help="with --adopt-business-id: convert a live store without long locks (resumable)")
    parser.add_argument("--adopt-business-id", metavar="BUSINESS_ID",
                        help="convert an upstream single-tenant store, assigning every existing row to this tenant")
    parser.set_defaults(run=run)
