"""`tenant`: the tenant lifecycle: list, purge, rename, import, export (each logged in the tenant event log)."""

from __future__ import annotations

import json
import sys

from applier.commands import tenant_io
from applier.commands.options import Shared, as_json
from applier.database import open_database, read_state, refuse_foreign_table_objects
from applier.errors import EXIT_OK, ApplierError
from applier.tenancy import check_business_id
from applier.tenant import check_store, count_rows, list_tenants, purge, rename, tenant_tables


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def run_list(args, conn) -> int:
    tenants = list_tenants(conn)
    if args.json:
        print(json.dumps(tenants, indent=2))
        return EXIT_OK
    width = max([len("business_id"), *(len(t["business_id"]) for t in tenants)])
    print(f"{'business_id':<{width}}  {'devices':>7} {'rows':>12} {'~bytes':>10} {'prunable MACs':>14}")
    for t in tenants:
        print(f"{t['business_id']:<{width}}  {len(t['devices']):>7} {t['rows']:>12} "
              f"{_size(t['approx_bytes']):>10} {t['prunable_mutation_macs']:>14}")
    print(f"{len(tenants)} tenants; bytes are the sum of the rows' column sizes, an approximation that leaves out "
          "indexes, page overhead and dead rows")
    return EXIT_OK


def run_purge(args, conn) -> int:
    if args.batch_size < 1:
        raise ApplierError(f"invalid --batch-size {args.batch_size}: must be a positive number of rows")
    check_business_id(conn, args.business_id)
    tables = tenant_tables(conn)
    counts = count_rows(conn, tables, args.business_id, args.device)
    what = f"device {args.device} of tenant {args.business_id}" if args.device else f"tenant {args.business_id}"
    if args.device is not None:
        if not counts.get("whatsmeow_device"):
            raise ApplierError(f"tenant {args.business_id} has no device {args.device!r}")
    elif not any(counts.values()):
        raise ApplierError(f"tenant {args.business_id} does not exist: no table holds a row for it")
    if not args.yes:
        for table, n in counts.items():
            if n:
                print(f"would remove {n} rows of {table}", file=sys.stderr)
        raise ApplierError(f"refusing to purge {what} without --yes: it removes {sum(counts.values())} rows, "
                           "which cannot be undone; nothing was changed")
    removed = purge(conn, args.business_id, args.device, args.batch_size, args.quiet or args.json)
    if args.json:
        print(json.dumps({"business_id": args.business_id, "device": args.device, "removed": removed,
                          "total": sum(removed.values())}, indent=2))
    else:
        for table, n in sorted(removed.items()):
            print(f"{table:<34} {n:>12}")
        print(f"purged {what}: {sum(removed.values())} rows")
    return EXIT_OK


def run_rename(args, conn) -> int:
    check_business_id(conn, args.business_id)
    check_business_id(conn, args.to, "--to")
    if args.business_id == args.to:
        raise ApplierError(f"--to names the same tenant as --business-id ({args.to}); nothing to rename")
    moved = rename(conn, args.business_id, args.to)
    if args.json:
        print(json.dumps({"from": args.business_id, "to": args.to, "rows": moved, "total": sum(moved.values())},
                         indent=2))
    else:
        for table, n in sorted(moved.items()):
            print(f"{table:<34} {n:>12}")
        print(f"renamed tenant {args.business_id} to {args.to}: {sum(moved.values())} rows")
    return EXIT_OK


ACTIONS = {"list": run_list, "purge": run_purge, "rename": run_rename, **tenant_io.RUNNERS}


def run(args) -> int:
    with open_database(args.dsn, quiet=args.quiet or getattr(args, "json", False)) as conn:
        check_store(read_state(conn))
        refuse_foreign_table_objects(conn)
        return ACTIONS[args.action](args, conn)


def add_parser(commands, shared: Shared) -> None:
    parser, actions = shared.group(commands, "tenant",
                                   "the tenant lifecycle: list, purge, rename, import, export; each operation is logged")
    parser.set_defaults(run=run)
    listing = shared.command(actions, "list", "each tenant with its devices, rows and approximate bytes per table",
                             "tenant list --json")
    purging = shared.command(actions, "purge", "remove every row of a tenant, or of one device, in committed batches "
                             "(needs --yes)", "tenant purge --business-id acme --yes")
    renaming = shared.command(actions, "rename", "move every row of a tenant to a new business_id in one transaction",
                              "tenant rename --business-id acme --to acme-eu")
    for action in (listing, purging, renaming):
        as_json(action, "the result")
    purging.add_argument("--business-id", metavar="ID", required=True, help="the tenant to purge")
    purging.add_argument("--device", metavar="JID", help="purge only this device and the rows that hang off it")
    purging.add_argument("--yes", action="store_true", help="really remove the rows (without it: show counts, exit 2)")
    purging.add_argument("--batch-size", type=int, default=5000, metavar="ROWS",
                         help="rows per committed transaction (default 5000)")
    renaming.add_argument("--business-id", metavar="OLD", required=True, help="the tenant to rename")
    renaming.add_argument("--to", metavar="NEW", required=True, help="its new business_id, used by no row yet")
    tenant_io.add_parsers(actions, shared)
