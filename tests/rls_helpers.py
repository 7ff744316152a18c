"""Helpers for the row-level security tests: roles, tenants, plans and bulk data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from store import OUR_JID, TENANT_TABLES


APP = "whatsmeow_app"
OWNER = "whatsmeow_owner"
POLICY = "whatsmeow_tenant_isolation"


def set_role(conn: psycopg.Connection, role: str) -> None:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))


@contextmanager
def as_superuser(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """Step out of the tenant's role for a look at every row, then step back in."""
    role = conn.execute("SELECT current_user").fetchone()[0]
    conn.execute("RESET ROLE")
    try:
        yield conn
    finally:
        set_role(conn, role)


@contextmanager
def tenant(conn: psycopg.Connection, business_id: str | None, *, commit: bool = False):
    """One transaction with `business_id` as the tenant (none if None); rolled back unless `commit`."""
    with conn.transaction(force_rollback=not commit):
        if business_id is not None:
            conn.execute("SELECT whatsmeow_set_tenant(%s)", (business_id,))
        yield conn


def sqlstate_of(conn: psycopg.Connection, statement: sql.Composable | str, params=None) -> str | None:
    """Run a statement in a savepoint; the SQLSTATE it failed with, or None."""
    try:
        with conn.transaction():
            conn.execute(statement, params)
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


def counts(conn: psycopg.Connection) -> dict[str, int]:
    return {
        table: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
        for table in TENANT_TABLES
    }


def row_security(conn: psycopg.Connection) -> dict[str, set[tuple]]:
    """The catalog state enable/force/disable change: per-table flags and every policy."""
    return {
        "flags": set(
            conn.execute(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relkind = 'r' AND relname LIKE 'whatsmeow\\_%' AND relnamespace = quote_ident(current_schema())::regnamespace"
            ).fetchall()
        ),
        "policies": set(
            conn.execute(
                "SELECT tablename, policyname, permissive, roles::text, cmd, qual, with_check FROM pg_policies "
                "WHERE schemaname = current_schema()"
            ).fetchall()
        ),
    }


# ---------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------

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


# A column compared for equality in a scan's condition or filter, and what it is compared with: a
# value, an array, or a sub-select's result (`$4` before PostgreSQL 17, `(InitPlan 4).col1` from 17).
_EQUALITY = re.compile(r"\b([a-z_]+) = (ANY \(|\(InitPlan \d+\)\.col\d+|[^()\s]+)")


def index_keys(conn: psycopg.Connection) -> dict[str, dict[str, list[str]]]:
    """Every whatsmeow table's indexes: {table: {index: [key columns in order]}}."""
    found: dict[str, dict[str, list[str]]] = {}
    rows = conn.execute(
        """
        SELECT t.relname, i.relname, array_agg(a.attname ORDER BY k.ord)
        FROM pg_index AS x
        JOIN pg_class AS t ON t.oid = x.indrelid
        JOIN pg_class AS i ON i.oid = x.indexrelid
        CROSS JOIN LATERAL unnest(x.indkey[:x.indnkeyatts - 1]) WITH ORDINALITY AS k (attnum, ord)
        JOIN pg_attribute AS a ON a.attrelid = t.oid AND a.attnum = k.attnum
        WHERE t.relname LIKE 'whatsmeow\\_%' AND t.relnamespace = quote_ident(current_schema())::regnamespace
        GROUP BY t.relname, i.relname
        """
    )
    for table, index, keys in rows:
        found.setdefault(table, {})[index] = keys
    return found


def _prefix(keys: list[str], columns: set[str], alternatives: set[str] = frozenset()) -> int:
    """How many leading keys are among `columns`, with at most one of them among `alternatives`."""
    length, ored = 0, 0
    while length < len(keys) and keys[length] in columns:
        ored += keys[length] in alternatives
        if ored > 1:
            break
        length += 1
    return length


def key_shortfalls(plan: dict, indexes: dict[str, dict[str, list[str]]]) -> list[str]:
    """Index scans whose condition covers a shorter prefix of their index than the query's key allows.

    The key a query names for a table is every column a scan of it compares for
    equality, in its index condition or its filter. A column compared with
    several values joined by OR (the JID or its LID/phone alternate) counts too,
    but a bitmap OR can spread only one such column over the index, so the prefix
    the plan should reach holds at most one of them. A scan that covers less reads
    rows it then throws away: its work follows the table, not the answer.
    """
    problems = []
    for node in plan_nodes(plan):
        table = node.get("Relation Name", "")
        if not table.startswith("whatsmeow_") or node["Node Type"] not in INDEX_SCANS | {"Bitmap Heap Scan"}:
            continue
        if node["Node Type"] == "Bitmap Heap Scan":
            condition = node.get("Recheck Cond", "")
            used_indexes = {child["Index Name"] for child in plan_nodes(node) if child.get("Index Name")}
        else:
            condition = node.get("Index Cond", "")
            used_indexes = {node["Index Name"]}
        compared: dict[str, set[str]] = {}
        for column, value in _EQUALITY.findall(condition + " " + node.get("Filter", "")):
            compared.setdefault(column, set()).add(value)
        alternatives = {column for column, values in compared.items() if len(values) > 1}
        used = {column for column, _ in _EQUALITY.findall(condition)}
        table_indexes = indexes.get(table, {})
        best = max((_prefix(keys, set(compared), alternatives) for keys in table_indexes.values()), default=0)
        reached = max((_prefix(table_indexes[name], used) for name in used_indexes if name in table_indexes), default=0)
        if reached < best:
            problems.append(f"{node['Node Type']} on {table} reaches {reached} key columns of "
                            f"{sorted(used_indexes)}, but an index serves {best} of {sorted(compared)}")
    return problems


# ---------------------------------------------------------------------------
# Bulk data: many tenants that share every natural key, for plans with realistic statistics
# ---------------------------------------------------------------------------

# Peers and groups in the forms whatsmeow writes: phone numbers (apart from the seeded 1555...
# ones), LIDs, and group ids.
_BULK_PN = "'4915' || lpad(r::TEXT, 8, '0')"
_BULK_GROUP = "'120363' || lpad(r::TEXT, 12, '0')"

_BULK = (
    """
    INSERT INTO whatsmeow_device (business_id, jid, registration_id, noise_key, identity_key, signed_pre_key,
        signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key,
        adv_device_sig)
    SELECT b, %(jid)s, 1, %(k32)s, %(k32)s, %(k32)s, 1, %(k64)s, %(k32)s, '\\x00', %(k64)s, %(k32)s, %(k64)s
    FROM unnest(%(tenants)s::text[]) AS b
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO whatsmeow_nct_salt (business_id, our_jid, salt)
    SELECT b, %(jid)s, %(k32)s FROM unnest(%(tenants)s::text[]) AS b
    ON CONFLICT DO NOTHING
    """,
    "INSERT INTO whatsmeow_identity_keys SELECT b, %(jid)s, {PN} || ':1', %(k32)s {rows}",
    "INSERT INTO whatsmeow_pre_keys SELECT b, %(jid)s, 1000 + r, %(k32)s, mod(r, 2) = 0 {rows}",
    "INSERT INTO whatsmeow_sessions SELECT b, %(jid)s, {PN} || ':1', %(k64)s {rows}",
    "INSERT INTO whatsmeow_sender_keys SELECT b, %(jid)s, {GROUP} || '@g.us', {PN} || ':1', %(k64)s {rows}",
    "INSERT INTO whatsmeow_app_state_sync_keys SELECT b, %(jid)s, int4send(r), %(k64)s, r, %(k32)s {rows}",
    # The seeded collection too, so that the MAC queries' own key holds many rows.
    """
    INSERT INTO whatsmeow_app_state_version
    SELECT b, %(jid)s, CASE WHEN r = 1 THEN 'regular_high' ELSE 'bulk-' || r END, r, %(k128)s {rows}
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO whatsmeow_app_state_mutation_macs
    SELECT b, %(jid)s, CASE WHEN mod(r, 2) = 0 THEN 'regular_high' ELSE 'bulk-' || (2 + mod(r, 5)) END, r,
        sha256(int4send(r)), %(k32)s {rows}
    """,
    "INSERT INTO whatsmeow_contacts SELECT b, %(jid)s, {PN} || '@s.whatsapp.net', 'First', 'Full' {rows}",
    "INSERT INTO whatsmeow_chat_settings SELECT b, %(jid)s, {GROUP} || '@g.us', r, mod(r, 3) = 0, FALSE {rows}",
    """
    INSERT INTO whatsmeow_message_secrets
    SELECT b, %(jid)s, '120363' || lpad(mod(r, 10)::TEXT, 12, '0') || '@g.us', '4915' || lpad(mod(r, 7)::TEXT, 8, '0')
        || '@s.whatsapp.net', 'MSG' || r, %(k32)s
    {rows}
    """,
    "INSERT INTO whatsmeow_privacy_tokens SELECT b, %(jid)s, {PN} || '@s.whatsapp.net', %(k32)s, r {rows}",
    "INSERT INTO whatsmeow_lid_map SELECT b, (200000000000000 + r)::TEXT, {PN} {rows}",
    """
    INSERT INTO whatsmeow_event_buffer
    SELECT b, %(jid)s, sha256(convert_to(b || r, 'UTF8')), %(k64)s, r, r {rows}
    """,
    """
    INSERT INTO whatsmeow_retry_buffer
    SELECT b, %(jid)s, {GROUP} || '@g.us', 'MSG' || r, 'proto', %(k64)s, r {rows}
    """,
)


def load_bulk(conn: psycopg.Connection, tenants: list[str], rows_per_tenant: int) -> None:
    """`rows_per_tenant` rows in every table for every tenant (one device and NCT salt each), then ANALYZE."""
    values = {
        "tenants": tenants,
        "jid": OUR_JID,
        "k32": b"\x01" * 32,
        "k64": b"\x02" * 64,
        "k128": b"\x03" * 128,
        "rows": rows_per_tenant,
    }
    source = "FROM unnest(%(tenants)s::text[]) AS b CROSS JOIN generate_series(1, %(rows)s) AS r"
    forms = {"{rows}": source, "{PN}": _BULK_PN, "{GROUP}": _BULK_GROUP}
    with conn.transaction():
        for statement in _BULK:
            for placeholder, text in forms.items():
                statement = statement.replace(placeholder, text)
            conn.execute(statement, values)
    conn.execute("ANALYZE")
