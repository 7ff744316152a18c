"""A device and its app-state history, written as whatsmeow writes them, for the benchmarks that need
one large device (bench/retention.py, bench/tenant_purge.py)."""

from __future__ import annotations

import hashlib

import psycopg

from applier.queries import load_queries

# Upstream PR #1240's account: 97.65 % of mutation MACs superseded, which is
# 42.55 versions per index MAC on average; 42 and 43 alternate here (97.647 %).
SUPERSEDED_VERSIONS = (42, 43)


def blob(tenant: str, label: str, size: int) -> bytes:
    """Bytes that differ per tenant and label."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{tenant}/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


def device_values(tenant: str, jid: str) -> dict:
    """The parameters of whatsmeow's insertDeviceQuery for one device."""
    return {
        "business_id": tenant,
        "jid": jid,
        "lid": "98765432100",
        "registration_id": 12345,
        "noise_key": blob(tenant, "noise", 32),
        "identity_key": blob(tenant, "identity_key", 32),
        "signed_pre_key": blob(tenant, "spk", 32),
        "signed_pre_key_id": 1,
        "signed_pre_key_sig": blob(tenant, "spk_sig", 64),
        "adv_key": blob(tenant, "adv", 32),
        "adv_details": blob(tenant, "adv_details", 40),
        "adv_account_sig": blob(tenant, "adv_account_sig", 64),
        "adv_account_sig_key": blob(tenant, "adv_account_sig_key", 32),
        "adv_device_sig": blob(tenant, "adv_device_sig", 64),
        "platform": f"platform of {tenant}",
        "business_name": f"Business of {tenant}",
        "push_name": f"Push name of {tenant}",
        "facebook_uuid": None,
        "lid_migration_ts": 0,
        "companion_meta_nonce": "",
    }


def insert_device(conn: psycopg.Connection, tenant: str, jid: str) -> None:
    load_queries()["insertDeviceQuery"].run(conn, device_values(tenant, jid))


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
