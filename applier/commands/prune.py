"""`prune`: remove what the store can no longer read, in short committed batches (or count it)."""

from __future__ import annotations

import json

from applier.commands.options import Shared, as_json
from applier.database import open_database, read_state, refuse_foreign_table_objects
from applier.errors import EXIT_OK, ApplierError
from applier.prune import candidates, check_store, old_events, parse_horizon, prune, prune_events
from applier.tenancy import check_business_id


def run(args) -> int:
    horizon = None if args.message_secrets_older_than is None else parse_horizon(args.message_secrets_older_than)
    events_horizon = None if args.events_older_than is None else parse_horizon(args.events_older_than)
    if args.batch_size < 1:
        raise ApplierError(f"invalid --batch-size {args.batch_size}: must be a positive number of rows")
    with open_database(args.dsn, quiet=args.quiet) as conn:
        check_store(read_state(conn))
        refuse_foreign_table_objects(conn)
        if args.business_id is not None:
            check_business_id(conn, args.business_id, "business_id")
        if args.dry_run:
            rows = candidates(conn, args.business_id, horizon)
            events = None if events_horizon is None else old_events(conn, events_horizon)
        else:
            removed = prune(conn, args.business_id, horizon, args.batch_size, args.quiet)
            if events_horizon is not None:
                removed["whatsmeow_tenant_events"] = prune_events(conn, events_horizon, args.batch_size, args.quiet)
    if not args.dry_run:
        if args.json:
            print(json.dumps({"removed": removed}, indent=2))
        return EXIT_OK
    if args.json:
        doc = [{"business_id": r.business_id, "table": r.table, "prunable": r.prunable, "total": r.total}
               for r in rows]
        if events is not None:
            doc.append({"business_id": None, "table": "whatsmeow_tenant_events", "prunable": events, "total": None})
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    width = max([len("business_id"), *(len(r.business_id) for r in rows)])
    print(f"{'business_id':<{width}}  {'table':<34} {'prunable':>12} {'rows':>12}")
    for r in rows:
        print(f"{r.business_id:<{width}}  {r.table:<34} {r.prunable:>12} {r.total:>12}")
    if events is not None:
        print(f"tenant events older than {args.events_older_than}, every tenant's: {events}")
    print(f"prunable: {sum(r.prunable for r in rows)} of {sum(r.total for r in rows)} rows in these tables"
          + ("" if horizon is not None else " (message secrets only with --message-secrets-older-than)"))
    return EXIT_OK


def add_parser(commands, shared: Shared) -> None:
    parser = shared.command(commands, "prune", "remove superseded mutation MACs, expired buffer rows and, if asked, old "
                            "message secrets, in batches",
                            "prune --business-id acme --message-secrets-older-than 90d --dry-run")
    parser.add_argument("--business-id", metavar="ID", help="prune this tenant only (default: every tenant)")
    parser.add_argument("--message-secrets-older-than", metavar="AGE",
                        help="also remove message secrets stored longer ago than AGE (90d, 36h, 12w); never without it")
    parser.add_argument("--events-older-than", metavar="AGE",
                        help="also remove every tenant's event-log entries logged longer ago than AGE (the log "
                        "is otherwise kept forever)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print per tenant and table what would be removed, and change nothing")
    parser.add_argument("--batch-size", type=int, default=1000, metavar="ROWS",
                        help="rows per committed transaction (default 1000)")
    as_json(parser, "the counts")
    parser.set_defaults(run=run)
