"""`tenant`: the tenant lifecycle: list, purge, rename, import, export, and on Citus isolate and move (each
logged in the tenant event log)."""

from __future__ import annotations

import json
import sys

from applier import citus_tenants
from applier.commands import tenant_io
from applier.commands.options import Shared, as_json
from applier.database import open_database, read_state, refuse_foreign_table_objects
from applier.errors import EXIT_OK, ApplierError
from applier.tenancy import check_business_id
from applier.tenant import check_store, count_rows, is_distributed, list_tenants, purge, rename, tenant_tables


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def run_list(args, conn) -> int:
    tenants = list_tenants(conn)
    distributed = is_distributed(conn)
    tracked = citus_tenants.placement_and_load(conn, tenants) if distributed and tenants else False
    if args.json:
        print(json.dumps(tenants, indent=2))
        return EXIT_OK
    width = max([len("business_id"), *(len(t["business_id"]) for t in tenants)])
    citus = _placement_columns(tenants, tracked) if distributed else {}
    print(f"{'business_id':<{width}}  {'devices':>7} {'rows':>12} {'~bytes':>10} {'prunable MACs':>14}"
          + citus.get("", ""))
    for t in tenants:
        print(f"{t['business_id']:<{width}}  {len(t['devices']):>7} {t['rows']:>12} "
              f"{_size(t['approx_bytes']):>10} {t['prunable_mutation_macs']:>14}" + citus.get(t["business_id"], ""))
    print(f"{len(tenants)} tenants; bytes are the sum of the rows' column sizes, an approximation that leaves out "
          "indexes, page overhead and dead rows")
    if distributed:
        print("node and shard: where the tenant's device shard lives (* isolated); "
              + ("queries and CPU seconds: this period of citus_stat_tenants" if tracked
                 else "load: citus.stat_tenants_track is off (docs/citus.md)"))
    return EXIT_OK


def _placement_columns(tenants: list[dict], tracked: bool) -> dict[str, str]:
    """The Citus columns of `tenant list`, per business_id; the header under the key ''."""
    node_width = max([len("node"), *(len(t["placement"]["node"]) for t in tenants)])
    columns = {"": f"  {'node':<{node_width}} {'shard':>8}" + (f" {'queries':>8} {'CPU s':>8}" if tracked else "")}
    for t in tenants:
        where = t["placement"]
        shard = f"{where['shard']}{'*' if where['isolated'] else ''}"
        columns[t["business_id"]] = f"  {where['node']:<{node_width}} {shard:>8}" + (
            f" {t['load']['queries_this_period']:>8} {t['load']['cpu_seconds_this_period']:>8.3f}" if tracked else "")
    return columns


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


def _lock_timeout(args) -> float:
    if args.lock_timeout <= 0:
        raise ApplierError(f"invalid --lock-timeout {args.lock_timeout:g}: must be a positive number of seconds")
    return args.lock_timeout


def _print_groups(result: dict, heading: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for group in result["groups"]:
        print(heading.format(**group))


_TRANSFER = {"logical": "logical replication",
             "block_writes": "block_writes (writes to the shards being copied waited for the copy)"}


def run_isolate(args, conn) -> int:
    citus_tenants.require_citus(conn, "isolate")
    check_business_id(conn, args.business_id)
    lock_timeout = _lock_timeout(args)
    rows = citus_tenants.require_tenant(conn, args.business_id)
    shared = [g for g in citus_tenants.groups(conn, args.business_id) if not g.isolated]
    if not shared:
        print(f"tenant {args.business_id} already has its own shards; nothing to do", file=sys.stderr)
        return EXIT_OK
    problem = citus_tenants.owner_login_problem(conn)
    if problem is not None and args.yes:
        raise ApplierError(f"{problem}; nothing was changed")
    if not args.yes:
        _, why = citus_tenants.transfer_mode(conn, split=True)
        if problem is not None:
            print(f"would fail: {problem}", file=sys.stderr)
        for group in shared:
            print(f"would split {group.describe()}", file=sys.stderr)
        for table, n in rows.items():
            if n:
                print(f"would give {n} rows of {table} a shard of their own", file=sys.stderr)
        print(f"transfer: {why}", file=sys.stderr)
        raise ApplierError(f"refusing to isolate tenant {args.business_id} without --yes: it splits "
                           f"{len(shared)} shard group(s) of {sum(len(g.tables) for g in shared)} shards; "
                           "nothing was changed")
    result = citus_tenants.isolate(conn, args.business_id, lock_timeout, args.quiet or args.json)
    _print_groups(result, "isolated into shard {shard} (split from {split_shard}) on {node}: {tables} tables in "
                  "{seconds}s", args.json)
    if not args.json:
        print(f"transfer: {_TRANSFER[result['transfer']]}")
    return EXIT_OK


def run_move(args, conn) -> int:
    citus_tenants.require_citus(conn, "move")
    check_business_id(conn, args.business_id)
    lock_timeout = _lock_timeout(args)
    node_id, node = citus_tenants.target_node(conn, args.to_node)
    rows = citus_tenants.require_tenant(conn, args.business_id)
    groups = citus_tenants.groups(conn, args.business_id)
    shared = [g for g in groups if not g.isolated]
    if shared and not args.isolate:
        raise ApplierError(f"tenant {args.business_id} shares {shared[0].describe()}, and moving it would move "
                           "the other tenants too; isolate it first (`tenant isolate`), or add --isolate; nothing "
                           "was changed")
    if all(g.node_id == node_id for g in groups):
        print(f"tenant {args.business_id} is on {node} already; nothing to do", file=sys.stderr)
        return EXIT_OK
    problem = citus_tenants.owner_login_problem(conn)
    if problem is not None and args.yes:
        raise ApplierError(f"{problem}; nothing was changed")
    if not args.yes:
        _, why = citus_tenants.transfer_mode(conn)
        if problem is not None:
            print(f"would fail: {problem}", file=sys.stderr)
        for group in groups:
            verb = "would split, then move" if not group.isolated else "would move"
            print(f"{verb} {group.describe()} to {node}", file=sys.stderr)
        if shared:
            print(f"split transfer: {citus_tenants.transfer_mode(conn, split=True)[1]}", file=sys.stderr)
        print(f"would move {sum(rows.values())} rows of tenant {args.business_id}; transfer: {why}", file=sys.stderr)
        raise ApplierError(f"refusing to move tenant {args.business_id} without --yes; nothing was changed")
    quiet = args.quiet or args.json
    isolated = citus_tenants.isolate(conn, args.business_id, lock_timeout, quiet) if shared else None
    result = citus_tenants.move(conn, args.business_id, node_id, node, lock_timeout, quiet)
    if isolated is not None:
        result["isolated"] = isolated
    _print_groups(result, "moved shard {shard} and its colocated shards from {from} to {to}: {tables} tables in "
                  "{seconds}s", args.json)
    if not args.json:
        print(f"transfer: {_TRANSFER[result['transfer']]}")
    return EXIT_OK


CITUS_ACTIONS = {
    "isolate": ("on Citus: give a tenant its own shard in every colocated table (needs --yes)",
                "tenant isolate --business-id acme --yes"),
    "move": ("on Citus: move an isolated tenant's shards to another worker, online where the cluster allows it "
             "(needs --yes)", "tenant move --business-id acme --to-node 10.0.0.12:5432 --yes"),
}


def add_citus_parsers(actions, shared: Shared) -> None:
    """`tenant isolate` and `tenant move`, under the `tenant` command's action parser."""
    parsers = {}
    for name, (summary, example) in CITUS_ACTIONS.items():
        parsers[name] = shared.command(actions, name, summary, example)
        parsers[name].add_argument("--business-id", metavar="ID", required=True, help="the tenant")
        parsers[name].add_argument("--yes", action="store_true",
                                   help="really do it (without it: show what would happen, exit 2)")
        parsers[name].add_argument("--lock-timeout", type=float, default=citus_tenants.LOCK_TIMEOUT_SECONDS,
                                   metavar="SECONDS", help="how long to wait for a lock on a table the operation "
                                   f"needs, then give up unchanged (default {citus_tenants.LOCK_TIMEOUT_SECONDS:g})")
        as_json(parsers[name], "the result")
    parsers["move"].add_argument("--to-node", metavar="HOST:PORT", required=True,
                                 help="an active worker, as the coordinator's pg_dist_node names it")
    parsers["move"].add_argument("--isolate", action="store_true",
                                 help="isolate the tenant first if it still shares its shards")


ACTIONS = {"list": run_list, "purge": run_purge, "rename": run_rename, "isolate": run_isolate, "move": run_move,
           **tenant_io.RUNNERS}


def run(args) -> int:
    with open_database(args.dsn, quiet=args.quiet or getattr(args, "json", False)) as conn:
        check_store(read_state(conn))
        refuse_foreign_table_objects(conn)
        return ACTIONS[args.action](args, conn)


def add_parser(commands, shared: Shared) -> None:
    parser, actions = shared.group(commands, "tenant",
                                   "the tenant lifecycle: list, purge, rename, import, export, and on Citus isolate and "
                                   "move; each operation is logged")
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
    add_citus_parsers(actions, shared)
