"""Test data: tenants that share every natural key, written through the query catalogue."""

from __future__ import annotations

from pathlib import Path

import psycopg

from applier.queries import load_queries
from applier.seed import OUR_JID, PEER_LID, PEER_PN, SEED, TENANT_TABLES, blob, params, seed  # noqa: F401
from applier.steps import MULTI_TENANT_SINCE, latest_compat, latest_version, load_steps

ROOT = Path(__file__).resolve().parent.parent

# Versions as the steps define them, so a new step changes no test line.
STEPS = load_steps()
LATEST_VERSION = latest_version(STEPS)
LATEST_COMPAT = latest_compat(STEPS)
# The newest upstream version, the one the conversion starts from.
UPSTREAM_VERSION = MULTI_TENANT_SINCE - 1

# Columns the multi-tenant line adds beyond business_id, on purpose (docs/schema.md):
# no upstream query names them, and a tenant export leaves them out.
ADDED_COLUMNS = {("whatsmeow_message_secrets", "stored_at")}

# The tenant event log (upgrades/20-tenant-event-log.sql): a whatsmeow_ table that names its
# tenant in a column called tenant, so it is the owner's and not a tenant table.
EVENT_LOG = "whatsmeow_tenant_events"
# The owner's allow-list of foreign triggers, rules, policies and foreign keys (v1003).
ALLOWED_OBJECTS = "whatsmeow_allowed_table_objects"

DEVICE_CHILDREN = tuple(t for t in TENANT_TABLES if t not in ("whatsmeow_device", "whatsmeow_lid_map"))


def tenant_rows(conn: psycopg.Connection, tenant: str) -> dict[str, list[tuple]]:
    """Every row of one tenant in every table, for before/after comparisons."""
    return {
        table: conn.execute(f"SELECT * FROM {table} WHERE business_id = %s ORDER BY 1, 2, 3", (tenant,)).fetchall()
        for table in TENANT_TABLES
    }


def insert_device(conn: psycopg.Connection, tenant: str, jid: str = OUR_JID) -> None:
    load_queries()["insertDeviceQuery"].run(conn, {**params(tenant), "jid": jid})


# Upstream PR #1240's account: 97.65 % of mutation MACs superseded, which is
# 42.55 versions per index MAC on average; 42 and 43 alternate here (97.647 %).
SUPERSEDED_VERSIONS = (42, 43)


def superseded_history(conn: psycopg.Connection, tenant: str, jid: str, index_macs: int,
                       collection: str = "regular_high") -> int:
    """A device (created if missing) whose app-state collection re-set each of `index_macs` index MACs
    42 or 43 times, as whatsmeow writes them; returns the rows written."""
    if not conn.execute("SELECT FROM whatsmeow_device WHERE business_id = %s AND jid = %s", (tenant, jid)).fetchone():
        insert_device(conn, tenant, jid)
    low, high = SUPERSEDED_VERSIONS
    conn.execute(
        "INSERT INTO whatsmeow_app_state_version (business_id, jid, name, version, hash) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (business_id, jid, name) DO UPDATE SET version = excluded.version",
        (tenant, jid, collection, high, blob(tenant, "hash", 128)),
    )
    return conn.execute(
        """
        INSERT INTO whatsmeow_app_state_mutation_macs (business_id, jid, name, version, index_mac, value_mac)
        SELECT %(b)s, %(jid)s, %(name)s, v, sha256(('index ' || i)::BYTEA),
               sha256((%(b)s || ' ' || %(jid)s || ' ' || i || ' ' || v)::BYTEA)
        FROM generate_series(1, %(n)s) AS i
        CROSS JOIN LATERAL generate_series(1, CASE WHEN i %% 2 = 0 THEN %(low)s ELSE %(high)s END) AS v
        """,
        {"b": tenant, "jid": jid, "name": collection, "n": index_macs, "low": low, "high": high},
    ).rowcount


def columns(conn: psycopg.Connection, table: str) -> list[str]:
    """A table's columns by name, so that stores whose columns were appended in another order compare equal;
    none for a table that does not exist (yet, at an older upstream version)."""
    return [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attname", (table,))]
