"""`audit`: re-apply the audit views of audits/ and report what they find (exit 1 on findings)."""

from __future__ import annotations

import json

from applier.audit import collect
from applier.database import open_database
from applier.errors import EXIT_OK, EXIT_PENDING


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _bytes(count) -> str:
    if count is None:
        return "?"
    size = float(count)
    for unit in ("B", "kB", "MB"):
        if size < 1024:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _ago(seconds) -> str:
    if seconds is None:
        return "never"
    days, rest = divmod(int(seconds), 86400)
    return f"{days}d {rest // 3600}h ago" if days else f"{rest // 3600}h {rest % 3600 // 60}m ago"


def print_report(doc: dict, limit: int = 10) -> None:
    version = f"v{doc['version']}" if doc["version"] is not None else "version not read"
    print(f"audit of the whatsmeow store in schema {doc['schema']} ({version})")
    print("")
    print("invariants")
    width = max(len(c["check"]) for c in doc["checks"])
    for check in doc["checks"]:
        status = "ok" if not check["findings"] else f"FAIL ({len(check['findings'])})"
        print(f"  {check['check']:<{width}}  {status:<9} {check['description']}")
        for finding in check["findings"]:
            print(f"      {finding['object']}: {finding['problem']}")
    info = doc["information"]
    if not info:
        print("")
        print("the rest of the audit did not run: it would have called the objects above")
        print(f"result: {_n(doc['findings'], 'finding')}")
        return
    print("")
    print("information (never fails the audit)")
    for name, section in info.items():
        if section["unavailable"]:
            print(f"  {name}: unavailable: {section['unavailable']}")
    tenants = info["tenants"]["rows"]
    print(f"  tenants: {len(tenants)}, largest first")
    for row in tenants[:limit]:
        print(f"    {row['business_id']:<24} {_n(row['devices'], 'device'):>12} {_n(row['total_rows'], 'row'):>14}"
              f" {_bytes(row['total_bytes']):>10}")
    if len(tenants) > limit:
        print(f"    ... {len(tenants) - limit} more (whatsmeow_audit.tenants)")
    orphans = [row for row in tenants if not row["devices"]]
    if orphans:
        print("  tenants with rows but no device:")
        for row in orphans[:limit]:
            tables = ", ".join(f"{t} {n}" for t, n in sorted(row["rows_per_table"].items()) if n)
            print(f"    {row['business_id']}: {tables}")
    history = [row for row in info["mutation_mac_history"]["rows"] if row["superseded_rows"]]
    if history:
        print("  superseded mutation MACs (never read again; `prune` removes them):")
        for row in history[:limit]:
            print(f"    {row['business_id']:<24} {row['superseded_rows']:>12} of {row['mac_rows']:>12} rows "
                  f"({row['superseded_percent']}%)")
    rls = info["row_security"]["rows"]
    enabled = sum(r["enabled"] for r in rls)
    forced = sum(r["forced"] for r in rls)
    print(f"  row-level security: enabled on {enabled} of {len(rls)} tenant tables, forced on {forced}")
    for row in info["allowed_table_objects"]["rows"]:
        print(f"  allowed by the owner: {row['kind']} {row['object_name']} on {row['table_name']} "
              f"(owned by {row['object_owner']}, {row['detail']})")
    for row in info["privileged_roles"]["rows"]:
        print(f"  login role {row['role_name']} reads every tenant's rows: {row['reason']}")
    for row in info["connections"]["rows"][:limit]:
        limit_text = "" if row["connection_limit"] < 0 else f" (limit {row['connection_limit']})"
        print(f"  connections: {row['role_name']} / {row['application_name'] or '-'}: {row['connections']}"
              f"{limit_text}, {row['active']} active, {row['idle_in_transaction']} idle in transaction")
    unused = info["unused_indexes"]["rows"]
    if unused:
        names = ", ".join(row["index_name"] for row in unused[:limit])
        more = f" and {len(unused) - limit} more" if len(unused) > limit else ""
        print(f"  indexes never scanned since the statistics were reset: {names}{more}")
    distribution = info["distribution"]["rows"]
    if any(row["table_type"] != "local" for row in distribution):
        # One line per kind of placement, e.g. the 16 tenant tables in one colocation group.
        kinds: dict[tuple, list[str]] = {}
        for row in distribution:
            kind = (row["table_type"], row["distribution_column"], row["colocation_id"], row["shards"], row["nodes"])
            kinds.setdefault(kind, []).append(row["table_name"])
        for (table_type, column, group, shards, nodes), tables in kinds.items():
            names = ", ".join(tables) if len(tables) < 3 else _n(len(tables), "table")
            how = f" by {column}, colocation group {group}" if column else ""
            print(f"  citus: {names}: {table_type}{how}, {_n(shards, 'shard')} on {_n(nodes, 'node')}")
    if info["maintenance"]["rows"]:
        print("  most dead tuples (table, dead, dead %, last vacuum, last analyze):")
    for row in info["maintenance"]["rows"][:5]:
        print(f"    {row['table_name']:<34} {row['dead_tuples']:>10} {row['dead_percent'] or 0:>6}%  "
            f"{_ago(row['since_vacuum']):<14} {_ago(row['since_analyze'])}")
    for row in info["slow_statements"]["rows"][:5]:
        if row["note"]:
            print(f"  slow statements: {row['note']}")
        else:
            query = " ".join(row["query"].split())[:100]
            print(f"  slow statement: {row['total_ms']:.0f} ms in {row['calls']} calls: {query}")
    print("")
    failed = sum(1 for c in doc["checks"] if c["findings"])
    if doc["ok"]:
        print(f"result: no findings in {len(doc['checks'])} checks")
    else:
        print(f"result: {_n(doc['findings'], 'finding')} in {failed} of {len(doc['checks'])} checks")


def run(args) -> int:
    as_json = getattr(args, "json", False)
    with open_database(args.dsn, quiet=args.quiet or as_json, check_shadows=False) as conn:
        doc = collect(conn, quiet=args.quiet or as_json)
    if as_json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print_report(doc)
    return EXIT_OK if doc["ok"] else EXIT_PENDING
