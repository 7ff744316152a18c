"""`tenant import`: an upstream single-tenant store's rows become one tenant's, in one transaction.

The source (PostgreSQL or a whatsmeow SQLite file, v2 to v15, applier/sources.py) is
read-only and never changed. Upstream's shape at the source's version is built in
temporary tables of the import's transaction (applier/upstream_store.py) and the source
checked against it. A v15 source streams straight into the store with COPY, business_id
in front; an older one is copied into the temporary tables, stepped to v15 there by
upstream's own steps, then inserted; so is a v15 one where row-level security applies to
the role, which COPY cannot write through. Conflicts are found before any row is written;
a conflict, an error or a kill leaves the store as it was, and the import is logged with
its counts in the same transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from applier.errors import ApplierError
from applier.sources import PostgresSource, SqliteSource
from applier.tenancy import name_tenant, record_event, say
from applier.upstream_store import (
    TABLES, UPSTREAM_VERSION, Shape, build_shape, drop_temp, shape_problems, step_to_v15, temp_shape,
)

TOKENS = "whatsmeow_privacy_tokens"
LID_MAP = "whatsmeow_lid_map"
# Upstream keeps privacy tokens after their device is deleted (no foreign key); the store cannot.
WITH_DEVICE = "WHERE EXISTS (SELECT 1 FROM {devices} AS d WHERE d.jid = t.our_jid)"
WITHOUT_DEVICE = "WHERE NOT EXISTS (SELECT 1 FROM {devices} AS d WHERE d.jid = t.our_jid)"


@dataclass
class ImportReport:
    source_kind: str
    source_version: int
    rows: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)


def _temp(table: str) -> sql.Identifier:
    return sql.Identifier("pg_temp", table)


def _into(table: sql.Composable, columns: list[str], business_id: bool) -> sql.Composable:
    names = (["business_id"] if business_id else []) + columns
    return sql.SQL("{} ({})").format(table, sql.SQL(", ").join(map(sql.Identifier, names)))


# The tenant's own LID mappings, copied next to the source's: a temporary table may not be joined with a
# table Citus distributes, and on plain PostgreSQL the copy is as small as the tenant's map.
EXISTING_LID_MAP = sql.Identifier("pg_temp", "existing_lid_map")


def copy_existing_lid_map(conn: psycopg.Connection, store: str, business_id: str) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(EXISTING_LID_MAP))
    conn.execute(sql.SQL("CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT lid, pn FROM {} WHERE business_id = %s")
                 .format(EXISTING_LID_MAP, sql.Identifier(store, LID_MAP)), (business_id,))


def find_conflicts(conn: psycopg.Connection, store: str, business_id: str, devices: list[str]) -> list[str]:
    """Every source key the tenant already holds: its devices, and LID mappings that disagree."""
    found = [f"whatsmeow_device (business_id, jid) = ({business_id}, {jid}): the tenant already has this device"
             for (jid,) in conn.execute(
                 sql.SQL("SELECT jid FROM {} WHERE business_id = %s AND jid = ANY(%s) ORDER BY jid").format(
                     sql.Identifier(store, "whatsmeow_device")), (business_id, devices))]
    query = sql.SQL(
        """
        SELECT 'lid', t.lid, d.pn, t.pn FROM {temp} AS t
        JOIN {map} AS d ON d.lid = t.lid AND d.pn <> t.pn
        UNION ALL
        SELECT 'pn', t.pn, d.lid, t.lid FROM {temp} AS t
        JOIN {map} AS d ON d.pn = t.pn AND d.lid <> t.lid
        ORDER BY 1, 2
        """).format(temp=_temp(LID_MAP), map=EXISTING_LID_MAP)
    for key, value, theirs, ours in conn.execute(query):
        other = "pn" if key == "lid" else "lid"
        found.append(f"whatsmeow_lid_map (business_id, {key}) = ({business_id}, {value}): the tenant maps it to "
                     f"{other} {theirs}, the source to {ours}")
    return found


def _load(conn: psycopg.Connection, source, shape: Shape, tables: list[str]) -> None:
    """The source's tables, as they are, into the temporary tables of its version."""
    with conn.cursor() as cur:
        for table in tables:
            columns, types = zip(*shape[table])
            source.copy_to(cur, _into(_temp(table), list(columns), False), table, list(columns), list(types))


def import_store(conn: psycopg.Connection, business_id: str, source: PostgresSource | SqliteSource,
                 dry_run: bool = False, quiet: bool = False) -> ImportReport:
    """Import (or with dry_run, count and check) in one transaction on `conn`; raises on any conflict."""
    report = ImportReport(source.kind, source.version)
    store = conn.execute("SELECT current_schema()").fetchone()[0]
    started = time.monotonic()
    with conn.transaction(force_rollback=dry_run):
        name_tenant(conn, business_id)
        shape = build_shape(conn, source.version)
        problems = shape_problems(shape, source.shape(), source.version)
        if problems:
            raise ApplierError(f"the source {source.label} is not upstream's v{source.version} store: "
                               f"{'; '.join(problems)}; nothing was imported")
        # Only an SQLite file streams straight into the store, the tenant written in front of each row by
        # this process. A PostgreSQL source's rows land in the temporary tables first, so that nothing that
        # answers on that connection sees or chooses the tenant: the target writes it. PostgreSQL refuses COPY
        # FROM into a table whose row-level security applies to the role: then SQLite rows go that way too.
        direct = source.kind == "sqlite" and source.version == UPSTREAM_VERSION and not conn.execute(
            "SELECT row_security_active(%s::regclass)",
            (sql.Identifier(store, "whatsmeow_device").as_string(conn),)).fetchone()[0]
        if direct:  # only the LID map is compared row by row; devices by their JIDs
            _load(conn, source, shape, [LID_MAP])
            devices = source.device_jids()
        else:
            _load(conn, source, shape, [t for t in TABLES if t in shape])
            step_to_v15(conn, source.version)
            shape = temp_shape(conn)
            devices = [r[0] for r in conn.execute("SELECT jid FROM pg_temp.whatsmeow_device")]
        copy_existing_lid_map(conn, store, business_id)
        report.conflicts = find_conflicts(conn, store, business_id, devices)
        target = {table: sql.Identifier(store, table) for table in TABLES}
        lid_new = sql.SQL("FROM {temp} AS t WHERE NOT EXISTS (SELECT 1 FROM {map} AS d "
                          "WHERE d.lid = t.lid AND d.pn = t.pn)").format(temp=_temp(LID_MAP), map=EXISTING_LID_MAP)
        lid_rows = conn.execute(sql.SQL("SELECT count(*) {}").format(lid_new)).fetchone()[0]
        lid_total = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_temp(LID_MAP))).fetchone()[0]
        if direct:
            orphans = source.count(TOKENS, WITHOUT_DEVICE.format(devices="whatsmeow_device"))
        else:
            orphans = conn.execute(sql.SQL("SELECT count(*) FROM {} AS t " + WITHOUT_DEVICE).format(
                _temp(TOKENS), devices=_temp("whatsmeow_device"))).fetchone()[0]
        report.skipped = {"privacy tokens without a device": orphans,
                          "LID mappings the tenant already has": lid_total - lid_rows}
        if dry_run:
            for table in TABLES:
                if table == LID_MAP:
                    report.rows[table] = lid_rows
                elif direct:
                    where = WITH_DEVICE.format(devices="whatsmeow_device") if table == TOKENS else ""
                    report.rows[table] = source.count(table, where)
                else:
                    report.rows[table] = conn.execute(
                        sql.SQL("SELECT count(*) FROM {}").format(_temp(table))).fetchone()[0] - (
                        orphans if table == TOKENS else 0)
            return report
        if report.conflicts:
            for conflict in report.conflicts:
                say(quiet, f"conflict: {conflict}")
            more = f" (and {len(report.conflicts) - 1} more, listed above)" if len(report.conflicts) > 1 else ""
            raise ApplierError(f"refusing the import into tenant {business_id}: {report.conflicts[0]}{more}; "
                               "nothing was imported")
        with conn.cursor() as cur:
            for table in TABLES:
                begun = time.monotonic()
                columns, types = (list(x) for x in zip(*shape[table]))
                try:
                    if direct and table != LID_MAP:
                        where = WITH_DEVICE.format(devices="whatsmeow_device") if table == TOKENS else ""
                        count = source.copy_to(cur, _into(target[table], columns, True), table, columns, types,
                                               prefix=business_id, where=where)
                    else:
                        rest = lid_new if table == LID_MAP else sql.SQL("FROM {} AS t {}").format(
                            _temp(table), sql.SQL(WITH_DEVICE).format(devices=_temp("whatsmeow_device"))
                            if table == TOKENS else sql.SQL(""))
                        # Every row written is counted, and so is any written outside the tenant: none can
                        # be, and the import stops before commit if one were.
                        count, outside = cur.execute(sql.SQL(
                            "WITH written AS (INSERT INTO {} SELECT {}, {} {} RETURNING business_id) "
                            "SELECT count(*), count(*) FILTER (WHERE business_id <> {}) FROM written").format(
                            _into(target[table], columns, True), sql.Literal(business_id),
                            sql.SQL(", ").join(sql.Identifier("t", c) for c in columns), rest,
                            sql.Literal(business_id))).fetchone()
                        if outside:
                            raise ApplierError(f"{table}: {outside} rows would have been written outside tenant "
                                               f"{business_id}; nothing was imported")
                except psycopg.errors.IntegrityError as exc:
                    detail = f" ({exc.diag.message_detail})" if exc.diag.message_detail else ""
                    raise ApplierError(f"{table}: {exc.diag.message_primary}{detail}; nothing was imported") from exc
                report.rows[table] = count
                say(quiet, f"imported {table}: {count} rows in {time.monotonic() - begun:.2f}s")
        drop_temp(conn, shape)
        record_event(conn, business_id, "import", {
            "source": source.kind, "from": source.label, "source_version": source.version,
            "rows": report.rows, "skipped": report.skipped})
    say(quiet, f"imported {sum(report.rows.values())} rows into tenant {business_id} in "
               f"{time.monotonic() - started:.2f}s")
    return report
