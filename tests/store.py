"""Test data: tenants that share every natural key, written through the query catalogue."""

from __future__ import annotations

from pathlib import Path

import psycopg

from applier.queries import load_queries  # noqa: F401
from applier.seed import (  # noqa: F401
    OUR_JID, PEER_LID, PEER_PN, SEED, SUPERSEDED_VERSIONS, TENANT_TABLES, blob, insert_device, params, seed,
    superseded_history,
)
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


def columns(conn: psycopg.Connection, table: str) -> list[str]:
    """A table's columns by name, so that stores whose columns were appended in another order compare equal;
    none for a table that does not exist (yet, at an older upstream version)."""
    return [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attname", (table,))]
