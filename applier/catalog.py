"""A comparable picture of the whatsmeow objects in a database.

Each kind of object is a set of tuples, so two databases compare as sets and a
difference names what is extra, what is missing and what is altered. Column order is left out:
ALTER TABLE appends columns, so an upgraded store may order them differently.
"""

from __future__ import annotations

import difflib

import psycopg

QUERIES = {
    "columns": r"""
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), coll.collname
        FROM pg_attribute AS a
        JOIN pg_class AS c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation AS coll ON coll.oid = a.attcollation AND a.attcollation <> 100
        WHERE c.relnamespace = quote_ident(current_schema())::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relname LIKE 'whatsmeow\_%' AND a.attnum > 0 AND NOT a.attisdropped
    """,
    "constraints": r"""
        SELECT c.relname, con.conname, con.contype::text, pg_get_constraintdef(con.oid), con.convalidated
        FROM pg_constraint AS con
        JOIN pg_class AS c ON c.oid = con.conrelid
        WHERE c.relnamespace = quote_ident(current_schema())::regnamespace AND c.relname LIKE 'whatsmeow\_%'
    """,
    "indexes": r"""
        SELECT i.tablename, i.indexname, i.indexdef
        FROM pg_indexes AS i
        WHERE i.schemaname = current_schema() AND i.tablename LIKE 'whatsmeow\_%'
    """,
    "policies": r"""
        SELECT p.tablename, p.policyname, p.permissive, p.roles::text, p.cmd, p.qual, p.with_check
        FROM pg_policies AS p
        WHERE p.schemaname = current_schema() AND p.tablename LIKE 'whatsmeow\_%'
    """,
    "row_security": r"""
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
        FROM pg_class AS c
        WHERE c.relnamespace = quote_ident(current_schema())::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
          AND c.relname LIKE 'whatsmeow\_%'
    """,
    "comments": r"""
        SELECT c.relname, obj_description(c.oid, 'pg_class')
        FROM pg_class AS c
        WHERE c.relnamespace = quote_ident(current_schema())::regnamespace AND c.relkind IN ('r', 'p')
          AND NOT c.relispartition AND c.relname LIKE 'whatsmeow\_%' AND obj_description(c.oid, 'pg_class') IS NOT NULL
    """,
    "triggers": r"""
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger AS t
        JOIN pg_class AS c ON c.oid = t.tgrelid
        WHERE c.relnamespace = quote_ident(current_schema())::regnamespace AND c.relname LIKE 'whatsmeow\_%'
          AND NOT t.tgisinternal
    """,
    "functions": r"""
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
        FROM pg_proc AS p
        WHERE p.pronamespace = quote_ident(current_schema())::regnamespace AND p.proname LIKE 'whatsmeow\_%'
    """,
}


# The fields of each kind of catalog row (QUERIES), and how many of them
# name the object; the rest describe it, so a row whose name matches but whose
# description differs is altered rather than missing plus extra.
FIELDS = {
    "columns": (("table", "column"), ("type", "not null", "default", "collation")),
    "constraints": (("table", "constraint"), ("type", "definition", "validated")),
    "indexes": (("table", "index"), ("definition",)),
    "policies": (("table", "policy"), ("permissive", "roles", "command", "using", "with check")),
    "row_security": (("table",), ("enabled", "forced")),
    "comments": (("table",), ("comment",)),
    "triggers": (("table", "trigger"), ("definition",)),
    "functions": (("function", "arguments"), ("definition",)),
}
SINGULAR = {"columns": "column", "constraints": "constraint", "indexes": "index", "policies": "policy",
            "row_security": "row security", "comments": "comment", "triggers": "trigger",
            "functions": "function"}


def snapshot(conn: psycopg.Connection) -> dict[str, set[tuple]]:
    return {kind: {tuple(row) for row in conn.execute(query)} for kind, query in QUERIES.items()}


def _name(kind: str, row: tuple) -> str:
    if kind == "functions":
        return f"{row[0]}({row[1]})"
    return ".".join(row[: len(FIELDS[kind][0])])


def _details(kind: str, row: tuple) -> str:
    """What the object is, in the catalog's own words."""
    if kind in ("indexes", "constraints", "triggers"):
        return row[3] if kind == "constraints" else row[2]  # pg_get_constraintdef says NOT VALID itself
    if kind == "columns":
        return row[2] + (" NOT NULL" if row[3] else "") + (f" DEFAULT {row[4]}" if row[4] is not None else "")
    if kind == "functions":
        return row[2].split("\n", 1)[0]
    if kind == "policies":
        return f"AS {row[2]} FOR {row[4]} TO {row[3]} USING {row[5]} WITH CHECK {row[6]}"
    if kind == "comments":
        return repr(row[1])
    return f"enabled {row[1]}, forced {row[2]}"


def _altered(kind: str, expected: tuple, actual: tuple) -> str:
    names, labels = FIELDS[kind]
    parts = []
    for label, want, have in zip(labels, expected[len(names):], actual[len(names):]):
        if want == have:
            continue
        if isinstance(want, str) and isinstance(have, str) and "\n" in want + have:
            diff = list(difflib.unified_diff(want.splitlines(), have.splitlines(), lineterm="", n=0))[3:]
            parts.append(f"{label} differs (- expected, + live):\n    " + "\n    ".join(diff))
        else:
            parts.append(f"{label} {_shown(want)} -> {_shown(have)}")
    return f"altered {SINGULAR[kind]} {_name(kind, expected)}: " + "; ".join(parts)


def _shown(value) -> str:
    """A catalog value as the report shows it: NULL as `none` (no default, the default collation)."""
    return "none" if value is None else repr(value)


def differences(expected: dict[str, set[tuple]], actual: dict[str, set[tuple]]) -> list[str]:
    """One line per difference: missing (expected, not in actual), extra (in actual, not expected) or altered;
    none when the two pictures are equal."""
    lines = []
    for kind, (names, _) in FIELDS.items():
        want = {row[: len(names)]: row for row in expected[kind]}
        have = {row[: len(names)]: row for row in actual[kind]}
        for key in sorted(want.keys() | have.keys(), key=repr):
            if key not in have:
                lines.append(f"missing {SINGULAR[kind]} {_name(kind, key)}: {_details(kind, want[key])}")
            elif key not in want:
                lines.append(f"extra {SINGULAR[kind]} {_name(kind, key)}: {_details(kind, have[key])}")
            elif want[key] != have[key]:
                lines.append(_altered(kind, want[key], have[key]))
    return lines
