"""Tenant lifecycle: list tenants, purge a tenant or one device, rename a tenant, and log each operation.

Every operation is written to the event log (upgrades/20-tenant-event-log.sql) through
applier.tenancy.record_event, the one entry for it, also for import and export.
The tenant tables are those `rls status` reports (docs/schema.md): whatsmeow_ tables with a
business_id column, partitions excluded.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from applier.database import StoreState, require_store
from applier.errors import ApplierError
from applier.rls import read_status
from applier.tenancy import event_log_since, name_tenant, record_event

DEVICE_TABLE = "whatsmeow_device"
MAC_TABLE = "whatsmeow_app_state_mutation_macs"
# How long a batch or the rename waits for a row the application holds.
LOCK_TIMEOUT = "10s"


@dataclass(frozen=True)
class TenantTable:
    name: str
    key: tuple[str, ...]  # primary key columns after business_id, for walking the table in key order
    device_column: str | None  # the column naming the device; None when rows belong to the tenant only
    depth: int  # foreign-key distance from the device table: children are removed before parents


def check_store(state: StoreState) -> None:
    require_store(state, event_log_since(), "tenant commands", "the event log")


def tenant_tables(conn: psycopg.Connection) -> list[TenantTable]:
    names = [t.table for t in read_status(conn)]
    rows = conn.execute(
        """
        SELECT c.oid::regclass::text,
               ARRAY(SELECT a.attname::text FROM unnest(pk.conkey) WITH ORDINALITY AS k (attnum, n)
                     JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = k.attnum
                     WHERE a.attname <> 'business_id' ORDER BY k.n),
               fk.column_name, fk.parent
        FROM unnest(%s::regclass[]) AS t (oid)
        JOIN pg_class AS c ON c.oid = t.oid
        LEFT JOIN pg_constraint AS pk ON pk.conrelid = c.oid AND pk.contype = 'p'
        LEFT JOIN LATERAL (
            SELECT a.attname::text AS column_name, f.confrelid::regclass::text AS parent
            FROM pg_constraint AS f JOIN pg_attribute AS a ON a.attrelid = f.conrelid AND a.attnum = f.conkey[2]
            WHERE f.conrelid = c.oid AND f.contype = 'f' ORDER BY f.conname LIMIT 1
        ) AS fk ON TRUE
        """,
        (names,),
    ).fetchall()
    parents = {name: parent for name, _, _, parent in rows}

    def depth(name: str) -> int:
        return 0 if name == DEVICE_TABLE else 1 + (depth(parents[name]) if parents.get(name) in parents else 0)

    tables = []
    for name, key, column, _ in rows:
        if not key:
            raise ApplierError(f"tenant table {name} has no primary key; `audit` reports it")
        tables.append(TenantTable(name, tuple(key), "jid" if name == DEVICE_TABLE else column, depth(name)))
    return sorted(tables, key=lambda t: (-t.depth, t.name))


def rls_blocks_owner(conn: psycopg.Connection) -> bool:
    """Row-level security forced on some tenant table, and this role subject to it."""
    forced = any(t.forced for t in read_status(conn))
    return forced and not conn.execute(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()[0]


def is_distributed(conn: psycopg.Connection) -> bool:
    """The store has been distributed with Citus (schema/citus-distribute.sql)."""
    if not conn.execute("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')").fetchone()[0]:
        return False
    return conn.execute("SELECT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = %s::regclass)",
                        (DEVICE_TABLE,)).fetchone()[0]


# ---------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------

def list_tenants(conn: psycopg.Connection) -> list[dict]:
    """Every tenant: devices, rows and approximate bytes per table, prunable mutation MACs."""
    if rls_blocks_owner(conn):
        raise ApplierError("row-level security is forced on the store's tables, so this role sees no tenant's rows "
                           "without naming one; run `tenant list` as a role with BYPASSRLS (or a superuser)")
    tenants: dict[str, dict] = {}
    with conn.transaction():  # one snapshot for every table
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for table in sorted(tenant_tables(conn), key=lambda t: t.name):
            prunable = (sql.SQL("count(*) - count(DISTINCT (jid, name, index_mac))") if table.name == MAC_TABLE
                        else sql.SQL("0"))
            query = sql.SQL("SELECT business_id, count(*), coalesce(sum(pg_column_size(t.*)), 0), {} "
                            "FROM {} AS t GROUP BY business_id").format(prunable, sql.SQL(table.name))
            for business_id, rows, size, macs in conn.execute(query):
                entry = tenants.setdefault(business_id, {
                    "business_id": business_id, "devices": [], "rows": 0, "approx_bytes": 0,
                    "prunable_mutation_macs": 0, "tables": {},
                })
                entry["tables"][table.name] = {"rows": rows, "approx_bytes": int(size)}
                entry["rows"] += rows
                entry["approx_bytes"] += int(size)
                entry["prunable_mutation_macs"] += macs
        for business_id, jid in conn.execute(f"SELECT business_id, jid FROM {DEVICE_TABLE} ORDER BY 1, 2"):
            tenants[business_id]["devices"].append(jid)
    return [tenants[b] for b in sorted(tenants)]


# ---------------------------------------------------------------------------------------------
# purge
# ---------------------------------------------------------------------------------------------

@contextmanager
def _in_tenant(conn: psycopg.Connection, business_id: str | None) -> Iterator[psycopg.Connection]:
    """A transaction that names the tenant (for forced row-level security), or none if None."""
    with conn.transaction():
        name_tenant(conn, business_id)
        yield conn


def count_rows(conn: psycopg.Connection, tables: list[TenantTable], business_id: str,
               device: str | None = None, *, name: bool = True) -> dict[str, int]:
    """Rows of the tenant (or of one device) per table; a device purge leaves tables without a device column.
    `name`: name the tenant in a transaction of its own; otherwise count in the caller's."""
    counts = {}
    with _in_tenant(conn, business_id if name else None):
        for t in tables:
            if device is not None and t.device_column is None:
                continue
            where = sql.SQL("business_id = %s") + (sql.SQL(" AND {} = %s").format(sql.Identifier(t.device_column))
                                                  if device is not None else sql.SQL(""))
            counts[t.name] = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE ").format(sql.SQL(t.name)) + where,
                                          (business_id, device) if device is not None else (business_id,)
                                          ).fetchone()[0]
    return counts


def _delete_batches(conn: psycopg.Connection, t: TenantTable, business_id: str, device: str | None,
                    batch_size: int) -> int:
    """Delete in key order, one committed transaction per batch; each batch starts after the last key seen, so
    no batch walks the index entries of rows deleted before it."""
    key = sql.SQL(", ").join(sql.Identifier(c) for c in t.key)
    removed = 0
    after: tuple | None = None
    while True:
        conditions = [sql.SQL("business_id = %s")]
        values: list = [business_id]
        if device is not None:
            conditions.append(sql.SQL("{} = %s").format(sql.Identifier(t.device_column)))
            values.append(device)
        if after is not None:
            conditions.append(sql.SQL("({}) > ({})").format(key, sql.SQL(", ").join([sql.Placeholder()] * len(after))))
            values.extend(after)
        query = sql.SQL(
            "WITH chunk AS (SELECT ctid AS row_id, {key} FROM {table} WHERE {where} ORDER BY {key} LIMIT %s), "
            "gone AS (DELETE FROM {table} WHERE business_id = %s AND ctid = ANY(ARRAY(SELECT row_id FROM chunk)) "
            "RETURNING 1) "
            "SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM chunk), last.* FROM (SELECT) AS one "
            "LEFT JOIN (SELECT {key} FROM chunk ORDER BY {desc} LIMIT 1) AS last ON TRUE"
        ).format(key=key, table=sql.SQL(t.name), where=sql.SQL(" AND ").join(conditions),
                 desc=sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(c)) for c in t.key))
        with _in_tenant(conn, business_id):
            gone, scanned, *after_row = conn.execute(query, [*values, batch_size, business_id]).fetchone()
        removed += gone
        if scanned < batch_size:
            return removed
        after = tuple(after_row)


def purge(conn: psycopg.Connection, business_id: str, device: str | None, batch_size: int,
          quiet: bool) -> dict[str, int]:
    """Remove the tenant's rows (or one device's) from every tenant table, children first, in committed batches;
    log the event with the counts. An interrupted purge keeps what it committed and logs that."""
    tables = tenant_tables(conn)
    if device is not None:
        tables = [t for t in tables if t.device_column is not None]
    conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    removed = {t.name: 0 for t in tables}
    started = time.monotonic()
    completed = False
    try:
        for _ in range(3):
            for t in tables:
                n = _delete_batches(conn, t, business_id, device, batch_size)
                removed[t.name] += n
                if n and not quiet:
                    print(f"purge: {t.name}: {removed[t.name]} removed", file=sys.stderr, flush=True)
            # Rows a still-running application wrote meanwhile: another pass, then give up.
            if not any(count_rows(conn, tables, business_id, device).values()):
                completed = True
                break
        if not completed:
            raise ApplierError(f"tenant {business_id} is still being written to; stop its application and run purge "
                               "again")
    except KeyboardInterrupt:
        raise ApplierError("interrupted: the batches already committed stay removed; run purge again to "
                           "finish") from None
    finally:
        details = {"device": device, "rows": removed, "total": sum(removed.values()), "completed": completed,
                   "seconds": round(time.monotonic() - started, 3)}
        try:
            with conn.transaction():
                record_event(conn, business_id, "purge", details)
        except psycopg.Error:
            # After a failed purge, its own error says more than a failure to log it.
            if completed:
                raise
    return removed


# ---------------------------------------------------------------------------------------------
# rename
# ---------------------------------------------------------------------------------------------

def rename(conn: psycopg.Connection, old: str, new: str) -> dict[str, int]:
    """Move every row of tenant `old` to `new` in one transaction: the device table's ON UPDATE CASCADE
    foreign keys carry its children, and each table without one (whatsmeow_lid_map) is updated itself."""
    if is_distributed(conn):
        raise ApplierError("the store is distributed with Citus, which cannot update business_id, the distribution "
                           "column (and its foreign keys have no ON UPDATE CASCADE); move the tenant with "
                           f"`tenant export` of {old}, `tenant import` as {new}, then `tenant purge` of {old}")
    if rls_blocks_owner(conn):
        raise ApplierError("row-level security is forced on the store's tables, and a rename moves rows from one "
                           "tenant to another, which a transaction naming one tenant cannot; run it as a role with "
                           "BYPASSRLS (or a superuser), or for the rename turn forcing off with `rls enable`")
    tables = tenant_tables(conn)
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        before = count_rows(conn, tables, old, name=False)
        if not any(before.values()):
            raise ApplierError(f"tenant {old} does not exist: no table holds a row for it")
        taken = [table for table, n in count_rows(conn, tables, new, name=False).items() if n]
        if taken:
            raise ApplierError(f"tenant {new} already exists: {', '.join(taken)} hold rows for it; "
                               "choose another name or purge it first")
        conn.execute(f"UPDATE {DEVICE_TABLE} SET business_id = %s WHERE business_id = %s", (new, old))
        for t in tables:
            if t.name != DEVICE_TABLE:
                conn.execute(sql.SQL("UPDATE {} SET business_id = %s WHERE business_id = %s").format(sql.SQL(t.name)),
                             (new, old))
        left = {table: n for table, n in count_rows(conn, tables, old, name=False).items() if n}
        moved = count_rows(conn, tables, new, name=False)
        if left or moved != before:
            raise ApplierError(f"rename would leave rows behind ({left}) or change counts; nothing was changed")
        record_event(conn, new, "rename", {"from": old, "to": new, "rows": moved, "total": sum(moved.values())})
    return moved
