"""A comparable picture of the whatsmeow objects in a database.

Each kind of object is a set of tuples, so two databases compare as sets and a
difference names what is extra and what is missing. Column order is left out:
ALTER TABLE appends columns, so an upgraded store may order them differently.
"""

from __future__ import annotations

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


def snapshot(conn: psycopg.Connection) -> dict[str, set[tuple]]:
    return {kind: {tuple(row) for row in conn.execute(query)} for kind, query in QUERIES.items()}


def differences(expected: dict[str, set[tuple]], actual: dict[str, set[tuple]]) -> list[str]:
    """One line per object that is missing from `actual` or extra in it."""
    lines = []
    for kind in QUERIES:
        for row in sorted(expected[kind] - actual[kind], key=repr):
            lines.append(f"missing {kind[:-1] if kind.endswith('s') else kind}: {row}")
        for row in sorted(actual[kind] - expected[kind], key=repr):
            lines.append(f"extra {kind[:-1] if kind.endswith('s') else kind}: {row}")
    return lines
