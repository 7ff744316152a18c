"""Upstream single-tenant stores, as `tenant import` reads them and `tenant export` writes them.

Upstream's shapes are not written down here a second time. v15 is upstream's own
definition, schema/upstream-v15.sql (its 00-latest-schema.sql, byte for byte); an older
store at vN has the v2 shape, schema/upstream-v2.sql, followed by upstream's own steps
03..N of upgrades/. Both are built in temporary tables inside the caller's transaction,
where they are read and, for older stores, filled and stepped to v15. The stores
themselves are read by applier/sources.py.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from applier.errors import ApplierError
from applier.steps import PACKAGE_ROOT, load_steps
from applier.tenancy import oldest_upstream

UPSTREAM_V15_SQL = PACKAGE_ROOT / "schema" / "upstream-v15.sql"
UPSTREAM_V2_SQL = PACKAGE_ROOT / "schema" / "upstream-v2.sql"
UPSTREAM_VERSION, UPSTREAM_COMPAT = 15, 8
# go.mau.fi/util dbutil (upgrades.go) creates the version table with exactly this statement, on
# both dialects; SQLite keeps the text in sqlite_master, so it is kept verbatim.
DBUTIL_VERSION_TABLE = "CREATE TABLE whatsmeow_version (version INTEGER, compat INTEGER)"

# Parents before children, so every foreign key finds its row.
TABLES = (
    "whatsmeow_device", "whatsmeow_identity_keys", "whatsmeow_pre_keys", "whatsmeow_sessions",
    "whatsmeow_sender_keys", "whatsmeow_app_state_sync_keys", "whatsmeow_app_state_version",
    "whatsmeow_app_state_mutation_macs", "whatsmeow_contacts", "whatsmeow_chat_settings",
    "whatsmeow_message_secrets", "whatsmeow_privacy_tokens", "whatsmeow_nct_salt", "whatsmeow_lid_map",
    "whatsmeow_event_buffer", "whatsmeow_retry_buffer",
)

Shape = dict[str, list[tuple[str, str]]]  # table -> [(column, type)], in column order


def upstream_v15_text() -> str:
    return UPSTREAM_V15_SQL.read_text(encoding="utf-8")


def upstream_v15_script() -> str:
    """A fresh upstream v15 store as dbutil makes it: the version table, upstream's definition, the row."""
    return (f"{DBUTIL_VERSION_TABLE};\n{upstream_v15_text()}\nDELETE FROM whatsmeow_version;\n"
            f"INSERT INTO whatsmeow_version (version, compat) VALUES ({UPSTREAM_VERSION}, {UPSTREAM_COMPAT});\n")


def _in_temp(conn: psycopg.Connection, statements: list[str]) -> None:
    """Run upstream's text with only the temporary schema on the path: its unqualified CREATE TABLEs
    make temporary tables, and its REFERENCES find them."""
    path, user = conn.execute("SELECT current_setting('search_path'), current_user").fetchone()
    conn.execute("SET LOCAL search_path = pg_temp")
    try:
        for text in statements:
            conn.execute(text)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ApplierError(
            f"{exc.diag.message_primary}: tenant import builds upstream's tables as temporary tables, so the role "
            f"needs TEMPORARY on the database (`rls roles` takes it from PUBLIC): GRANT TEMPORARY ON DATABASE "
            f"<database> TO {user}, or import as the database's owner; nothing was imported") from exc
    conn.execute("SELECT set_config('search_path', %s, TRUE)", (path,))


def build_shape(conn: psycopg.Connection, version: int) -> Shape:
    """Upstream's tables at `version`, empty, as temporary tables of this transaction."""
    if version == UPSTREAM_VERSION:
        texts = [upstream_v15_text()]
    else:
        steps = load_steps()
        texts = [UPSTREAM_V2_SQL.read_text(encoding="utf-8"), *(steps[v].sql for v in range(2, version))]
        texts.append("DROP TABLE whatsmeow_version")  # the v2 file records its version; not needed here
    _in_temp(conn, texts)
    if version >= 5:
        # Only upstream's v5 changes rows (device JIDs, which its ON UPDATE CASCADE carries to theirs);
        # past it the copies' foreign keys would only check, row by row, what the store checks again. At
        # v15 no step runs on the copies at all, so none of their keys or checks is needed: the store's
        # check every row the import writes.
        kinds = ["f"] if version < UPSTREAM_VERSION else ["f", "p", "u", "c"]
        for table, name in conn.execute(
                "SELECT conrelid::regclass::text, conname::text FROM pg_constraint "
                "WHERE contype = ANY(%s::\"char\"[]) AND connamespace = pg_my_temp_schema() "
                "ORDER BY contype = 'f' DESC", (kinds,)).fetchall():
            conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier("pg_temp", table.rsplit(".", 1)[-1]), sql.Identifier(name)))
    return temp_shape(conn)


def step_to_v15(conn: psycopg.Connection, version: int) -> None:
    """Upstream's own steps vN+1..v15 over the temporary tables, rows included."""
    steps = load_steps()
    _in_temp(conn, [steps[v].sql for v in range(version, UPSTREAM_VERSION)])


def temp_shape(conn: psycopg.Connection) -> Shape:
    shape: Shape = {}
    for table, column, type_ in conn.execute(
        """
        SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod)
        FROM pg_class AS c JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'r' AND c.relname LIKE 'whatsmeow\\_%'
        ORDER BY c.relname, a.attnum
        """
    ):
        shape.setdefault(table, []).append((column, type_))
    return shape


def drop_temp(conn: psycopg.Connection, shape: Shape) -> None:
    conn.execute(sql.SQL("DROP TABLE {}").format(
        sql.SQL(", ").join(sql.Identifier("pg_temp", table) for table in shape)))


def shape_problems(expected: Shape, actual: Shape, version: int) -> list[str]:
    """Where a source differs from upstream's shape at its version: rows could not be read faithfully."""
    problems = [f"table {t} is missing" for t in expected if t not in actual]
    problems += [f"table {t} is not upstream's (v{version} has no such table)" for t in actual if t not in expected]
    for table in (t for t in expected if t in actual):
        theirs, ours = dict(actual[table]), dict(expected[table])
        problems += [f"column {table}.{c} is missing" for c in ours if c not in theirs]
        problems += [f"column {table}.{c} is not upstream's" for c in theirs if c not in ours]
        problems += [f"column {table}.{c} is {theirs[c]}, upstream's is {ours[c]}"
                     for c in ours if c in theirs and theirs[c] != ours[c]]
    return problems


def check_version(version: int, compat: int, where: str) -> None:
    if version < oldest_upstream():
        raise ApplierError(f"{where} holds an upstream store at v{version}, older than v{oldest_upstream()}; "
                           "open it with whatsmeow once to upgrade it, then import it")
    if version > UPSTREAM_VERSION or compat > UPSTREAM_VERSION:
        raise ApplierError(f"{where} holds an upstream store at v{version} (compatible with v{compat}+), newer "
                           f"than upstream v{UPSTREAM_VERSION}, the newest this package knows")
