"""What a plan reads: every scan of a store table must start from business_id, so that a tenant's
query reads in proportion to that tenant's rows. The package's own plan tests and `check-queries`
apply the same rule."""

from __future__ import annotations

from collections.abc import Iterator

INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}


def plan_nodes(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def plan_problems(plan: dict) -> tuple[list[str], int]:
    """Scans of whatsmeow tables that do not start from an index on business_id, and the number of scans."""
    problems, scans = [], 0
    for node in plan_nodes(plan):
        kind = node["Node Type"]
        if kind in INDEX_SCANS:
            scans += 1
            if "business_id" not in node.get("Index Cond", ""):
                problems.append(f"{kind} using {node['Index Name']} without business_id in its Index Cond")
        elif node.get("Relation Name", "").startswith("whatsmeow_") and kind not in ("ModifyTable", "Bitmap Heap Scan"):
            scans += 1
            problems.append(f"{kind} on {node['Relation Name']}")
    return problems, scans
