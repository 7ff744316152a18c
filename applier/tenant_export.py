"""`tenant export`: one tenant's rows as a new upstream v15 store that unmodified whatsmeow opens.

The target is an empty PostgreSQL database or a new SQLite file. Its schema is upstream's
own v15 text (schema/upstream-v15.sql) behind dbutil's version table, and its version row
is dbutil's (15, 8). The store is read in one READ ONLY, REPEATABLE READ snapshot, naming
the tenant for forced row-level security; the target is written in one transaction (an
SQLite file is built beside the path and linked into place only when complete). Only
upstream's columns are copied: business_id and the store's own additions stay behind.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from applier.database import connect_foreign, redact
from applier.errors import ApplierError
from applier.tenancy import name_tenant, record_event, say
from applier.upstream_store import (
    DBUTIL_VERSION_TABLE, TABLES, UPSTREAM_COMPAT, UPSTREAM_VERSION, upstream_v15_text,
)


@dataclass
class ExportReport:
    target_kind: str
    rows: dict[str, int] = field(default_factory=dict)


def is_postgres(target: str) -> bool:
    return target.startswith(("postgres://", "postgresql://")) or ("=" in target and not Path(target).exists())


def _store_reader(conn: psycopg.Connection, business_id: str) -> None:
    """One snapshot of the store, read-only, with the tenant named for forced row-level security."""
    conn.autocommit = False
    conn.read_only = True
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    name_tenant(conn, business_id)


def _has_rows(conn: psycopg.Connection, store: str, business_id: str) -> bool:
    return any(conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE business_id = %s)").format(
        sql.Identifier(store, table)), (business_id,)).fetchone()[0] for table in TABLES)


def _types(conn: psycopg.Connection, store: str, table: str, columns: list[str]) -> list[str]:
    types = dict(conn.execute(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (sql.Identifier(store, table).as_string(conn),)).fetchall())
    return [types[c] for c in columns]


def _select(store: str, table: str, columns: list[str], business_id: str) -> sql.Composable:
    return sql.SQL("COPY (SELECT {} FROM {} WHERE business_id = {}) TO STDOUT (FORMAT BINARY)").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(store, table), sql.Literal(business_id))


# What the new tables may rest on in the target: built-ins only. The target's owner could create a function
# or type between the look-alike check and CREATE TABLE; this is checked again after it, inside the same
# transaction, so nothing that database defines is ever called on the rows.
FOREIGN_DEPENDENCIES = """
SELECT DISTINCT pg_describe_object(d.refclassid, d.refobjid, 0)
FROM pg_depend AS d
JOIN pg_class AS c ON c.oid = CASE d.classid
    WHEN 'pg_class'::regclass THEN coalesce((SELECT i.indrelid FROM pg_index AS i WHERE i.indexrelid = d.objid),
                                            d.objid)
    WHEN 'pg_constraint'::regclass THEN (SELECT con.conrelid FROM pg_constraint AS con WHERE con.oid = d.objid)
    WHEN 'pg_attrdef'::regclass THEN (SELECT ad.adrelid FROM pg_attrdef AS ad WHERE ad.oid = d.objid)
END
WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace AS n WHERE n.nspname = %s) AND c.relname = ANY(%s)
  AND d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass, 'pg_type'::regclass,
                       'pg_collation'::regclass, 'pg_opclass'::regclass)
  AND (pg_identify_object(d.refclassid, d.refobjid, 0)).schema <> 'pg_catalog'
ORDER BY 1
"""
# Event triggers fire on the CREATE TABLEs of the export with its login's rights; an extension's are its
# installer's choice.
EVENT_TRIGGERS = """
SELECT format('%I (runs %s)', e.evtname, e.evtfoid::regprocedure) FROM pg_event_trigger AS e
WHERE e.evtenabled <> 'D' AND NOT EXISTS (
    SELECT FROM pg_depend AS d WHERE d.classid = 'pg_event_trigger'::regclass AND d.objid = e.oid AND d.deptype = 'e')
ORDER BY 1
"""


def export_postgres(conn: psycopg.Connection, store: str, business_id: str, target_dsn: str,
                    quiet: bool) -> ExportReport:
    report = ExportReport("postgresql")
    foreign = connect_foreign(target_dsn, "target", quiet=quiet)  # autocommit: transaction() is a real BEGIN
    target, schema, label = foreign.conn, foreign.schema, foreign.label
    names = [*TABLES, "whatsmeow_version"]
    try:
        triggers = [r[0] for r in target.execute(EVENT_TRIGGERS)]
        if triggers:
            raise ApplierError(f"the target {label} has event triggers that would run as this login on the "
                               f"export's CREATE TABLE: {', '.join(triggers)}; export into a database without them")
        existing = target.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE c.relname LIKE 'whatsmeow\\_%' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
            "AND n.nspname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1 LIMIT 3").fetchall()
        if existing:
            raise ApplierError(f"the target {label} is not empty: it has "
                               f"{', '.join(r[0] for r in existing)}; export writes only into a database without "
                               "whatsmeow tables")
        with target.transaction():
            # As dbutil does: its version table, then upstream's v0 -> v15 file, then the version row. Upstream's
            # text names its tables bare, so it runs with the schema alone on the path, pg_catalog ahead of it.
            target.execute("SELECT pg_catalog.set_config('search_path', pg_catalog.quote_ident(%s), TRUE)",
                           (schema,))
            target.execute(DBUTIL_VERSION_TABLE)
            target.execute(upstream_v15_text())
            target.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', TRUE)")
            foreign_parts = [r[0] for r in target.execute(FOREIGN_DEPENDENCIES, (schema, names))]
            if foreign_parts:
                raise ApplierError(f"the target {label}: upstream's tables would rest on objects of that database, "
                                   f"not built-ins: {'; '.join(foreign_parts)}; nothing was exported")
            with target.cursor() as cur:
                for table in TABLES:
                    begun = time.monotonic()
                    qualified = sql.Identifier(schema, table)
                    columns = [r[0] for r in target.execute(
                        "SELECT attname::text FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                        "AND NOT attisdropped ORDER BY attnum", (qualified.as_string(target),))]
                    with conn.cursor().copy(_select(store, table, columns, business_id)) as out, cur.copy(
                            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                                qualified, sql.SQL(", ").join(map(sql.Identifier, columns)))) as sink:
                        for block in out:
                            sink.write(block)
                    report.rows[table] = cur.rowcount
                    say(quiet, f"exported {table}: {cur.rowcount} rows in {time.monotonic() - begun:.2f}s")
            version_table = sql.Identifier(schema, "whatsmeow_version")
            target.execute(sql.SQL("DELETE FROM {}").format(version_table))
            target.execute(sql.SQL("INSERT INTO {} (version, compat) VALUES (%s, %s)").format(version_table),
                           (UPSTREAM_VERSION, UPSTREAM_COMPAT))
    finally:
        target.close()
    return report


def _sqlite_value(type_: str):
    # As whatsmeow's Go driver (mattn/go-sqlite3) writes them: a bool as the integer 1 or 0, a UUID as
    # google/uuid's canonical text, bytea as a BLOB (an empty one stays an empty BLOB), the rest as is.
    if type_ == "uuid":
        return lambda v: None if v is None else str(v)
    if type_ == "boolean":
        return lambda v: None if v is None else int(v)
    return None


def export_sqlite(conn: psycopg.Connection, store: str, business_id: str, path: Path, quiet: bool) -> ExportReport:
    report = ExportReport("sqlite")
    if path.exists() or path.is_symlink():
        raise ApplierError(f"the target {path} exists; export writes a new SQLite file only")
    if not path.parent.is_dir():
        raise ApplierError(f"the target's folder {path.parent} does not exist")
    # Built in a folder only this process may enter, made with a fresh random name, in a file created
    # exclusively and readable by its owner alone; linked into place when complete, which never replaces
    # or follows anything at the path.
    private = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    partial = private / path.name
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        db = sqlite3.connect(partial, isolation_level=None)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            # As dbutil sends it: the whole file in one call, so sqlite_master keeps upstream's text.
            db.executescript(f"BEGIN;\n{DBUTIL_VERSION_TABLE};\n{upstream_v15_text()}")
            for table in TABLES:
                begun = time.monotonic()
                columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
                types = _types(conn, store, table, columns)
                converters = [_sqlite_value(t) for t in types]
                with conn.cursor().copy(_select(store, table, columns, business_id)) as out:
                    out.set_types(types)
                    rows = (tuple(v if f is None else f(v) for f, v in zip(converters, row)) for row in out.rows())
                    count = db.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                        rows).rowcount
                report.rows[table] = count
                say(quiet, f"exported {table}: {count} rows in {time.monotonic() - begun:.2f}s")
            db.execute("DELETE FROM whatsmeow_version")
            db.execute("INSERT INTO whatsmeow_version (version, compat) VALUES (?, ?)",
                       (UPSTREAM_VERSION, UPSTREAM_COMPAT))
            db.execute("COMMIT")
        finally:
            db.close()
        try:
            os.link(partial, path, follow_symlinks=False)  # never replaces a file that appeared meanwhile
        except FileExistsError:
            raise ApplierError(f"the target {path} appeared while exporting; it was left alone") from None
    except sqlite3.Error as exc:
        raise ApplierError(f"cannot write the SQLite file {path}: {exc}") from exc
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return report


def export_tenant(conn: psycopg.Connection, business_id: str, target: str, quiet: bool = False) -> ExportReport:
    store = conn.execute("SELECT current_schema()").fetchone()[0]
    started = time.monotonic()
    _store_reader(conn, business_id)
    try:
        if not _has_rows(conn, store, business_id):
            raise ApplierError(f"the store has no rows of tenant {business_id}; nothing was exported")
        if is_postgres(target):
            report = export_postgres(conn, store, business_id, target, quiet)
            where = redact(target)
        else:
            report = export_sqlite(conn, store, business_id, Path(target), quiet)
            where = target
    finally:
        conn.rollback()
        conn.autocommit, conn.read_only = True, False
    with conn.transaction():
        record_event(conn, business_id, "export", {"target": report.target_kind, "to": where, "rows": report.rows})
    say(quiet, f"exported {sum(report.rows.values())} rows of tenant {business_id} in "
               f"{time.monotonic() - started:.2f}s to {where}")
    return report

