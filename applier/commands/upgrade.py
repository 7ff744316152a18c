"""`upgrade`: bring the database to the latest multi-tenant version."""

from __future__ import annotations

from applier.database import open_database
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
