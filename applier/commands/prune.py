"""`prune`: remove what the store can no longer read, in short committed batches (or count it)."""

from __future__ import annotations

import json

from applier.database import open_database, read_state, refuse_foreign_table_objects
from applier.errors import EXIT_OK, ApplierError
from applier.prune import candidates, check_store, parse_horizon, prune


def run(args) -> int:
    horizon = None if args.message_secrets_older_than is None else parse_horizon(args.message_secrets_older_than)
    if args.batch_size < 1:
        raise ApplierError(f"invalid --batch-size {args.batch_size}: must be a positive number of rows")
    with open_database(args.dsn, quiet=args.quiet) as conn:
        check_store(read_state(conn))
        refuse_foreign_table_objects(conn)
        if args.business_id is not None and not conn.execute(
                "SELECT whatsmeow_business_id_is_valid(%s)", (args.business_id,)).fetchone()[0]:
            raise ApplierError(f"invalid business_id {args.business_id!r}: must be 1 to 64 characters of "
                               "A-Z, a-z, 0-9, _ and -")
        if args.dry_run:
            rows = candidates(conn, args.business_id, horizon)
        else:
            removed = prune(conn, args.business_id, horizon, args.batch_size, args.quiet)
    if not args.dry_run:
        if args.json:
            print(json.dumps({"removed": removed}, indent=2))
        return EXIT_OK
    if args.json:
        print(json.dumps([{"business_id": r.business_id, "table": r.table, "prunable": r.prunable,
                           "total": r.total} for r in rows], indent=2))
        return EXIT_OK
    width = max([len("business_id"), *(len(r.business_id) for r in rows)])
    print(f"{'business_id':<{width}}  {'table':<34} {'prunable':>12} {'rows':>12}")
    for r in rows:
        print(f"{r.business_id:<{width}}  {r.table:<34} {r.prunable:>12} {r.total:>12}")
    print(f"prunable: {sum(r.prunable for r in rows)} of {sum(r.total for r in rows)} rows in these tables"
          + ("" if horizon is not None else " (message secrets only with --message-secrets-older-than)"))
    return EXIT_OK
