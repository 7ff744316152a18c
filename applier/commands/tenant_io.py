"""`tenant import` and `tenant export`: a tenant's rows from and to upstream single-tenant stores. The
`tenant` command (applier/commands/tenant.py) opens the store and checks it first."""

from __future__ import annotations

import json

from applier.commands.options import Shared, as_json
from applier.errors import EXIT_OK, EXIT_PENDING
from applier.tenancy import check_business_id
from applier.tenant_export import export_tenant
from applier.tenant_io import import_store
from applier.sources import open_source

ACTIONS = {
    "import": ("copy an upstream single-tenant store (PostgreSQL or SQLite, v2 to v15) into a tenant, "
               "in one transaction", "tenant import --business-id acme --from /srv/wa/store.db --dry-run"),
    "export": ("write a tenant as a new upstream v15 store (an empty PostgreSQL database or a new SQLite file)",
               "tenant export --business-id acme --to postgresql://owner@db/acme_whatsmeow"),
}


def add_parsers(actions, shared: Shared) -> None:
    """The two actions, under the `tenant` command's action parser."""
    parsers = {}
    for name, (summary, example) in ACTIONS.items():
        parsers[name] = shared.command(actions, name, summary, example)
        parsers[name].add_argument("--business-id", metavar="ID", required=True, help="the tenant")
        as_json(parsers[name], "the per-table counts")
    parsers["import"].add_argument("--from", dest="source", metavar="SOURCE", required=True,
                                   help="a PostgreSQL connection string or URL, or the path of a whatsmeow SQLite "
                                   "file; opened read-only")
    parsers["import"].add_argument("--dry-run", action="store_true",
                                   help="print the rows per table it would import and every conflict; change "
                                   "nothing (exit 1 if any conflict)")
    parsers["export"].add_argument("--to", dest="target", metavar="TARGET", required=True,
                                   help="an empty PostgreSQL database (connection string or URL), or the path of "
                                   "a new SQLite file")


def _print(rows: dict[str, int], skipped: dict[str, int], conflicts: list[str], as_json: bool, heading: str) -> None:
    if as_json:
        print(json.dumps({"rows": rows, "skipped": skipped, "conflicts": conflicts}, indent=2))
        return
    print(f"{'table':<34} {heading:>12}")
    for table, count in rows.items():
        print(f"{table:<34} {count:>12}")
    print(f"{'total':<34} {sum(rows.values()):>12}")
    for what, count in skipped.items():
        if count:
            print(f"not imported: {count} {what}")
    for conflict in conflicts:
        print(f"conflict: {conflict}")


def run_import(args, conn) -> int:
    check_business_id(conn, args.business_id)
    source = open_source(args.source, quiet=args.quiet)
    try:
        report = import_store(conn, args.business_id, source, dry_run=args.dry_run, quiet=args.quiet)
    finally:
        source.close()
    if args.dry_run or args.json:
        _print(report.rows, report.skipped, report.conflicts, args.json,
               "would import" if args.dry_run else "imported")
    elif not args.quiet:
        for what, count in report.skipped.items():
            if count:
                print(f"note: not imported: {count} {what}", flush=True)
    return EXIT_PENDING if report.conflicts else EXIT_OK


def run_export(args, conn) -> int:
    check_business_id(conn, args.business_id)
    report = export_tenant(conn, args.business_id, args.target, quiet=args.quiet)
    if args.json:
        _print(report.rows, {}, [], True, "exported")
    return EXIT_OK


RUNNERS = {"import": run_import, "export": run_export}

