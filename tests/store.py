"""Test data: tenants that share every natural key, written through the query catalogue."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg

from applier.queries import load_queries
from applier.steps import MULTI_TENANT_SINCE, latest_compat, latest_version, load_steps

ROOT = Path(__file__).resolve().parent.parent

# Versions as the steps define them, so a new step changes no test line.
STEPS = load_steps()
LATEST_VERSION = latest_version(STEPS)
LATEST_COMPAT = latest_compat(STEPS)
# The newest upstream version, the one the conversion starts from.
UPSTREAM_VERSION = MULTI_TENANT_SINCE - 1

TENANT_TABLES = (
    "whatsmeow_device",
    "whatsmeow_identity_keys",
    "whatsmeow_pre_keys",
    "whatsmeow_sessions",
    "whatsmeow_sender_keys",
    "whatsmeow_app_state_sync_keys",
    "whatsmeow_app_state_version",
    "whatsmeow_app_state_mutation_macs",
    "whatsmeow_contacts",
    "whatsmeow_chat_settings",
    "whatsmeow_message_secrets",
    "whatsmeow_privacy_tokens",
    "whatsmeow_nct_salt",
    "whatsmeow_lid_map",
    "whatsmeow_event_buffer",
    "whatsmeow_retry_buffer",
)
# Columns the multi-tenant line adds beyond business_id, on purpose (docs/schema.md):
# no upstream query names them, and a tenant export leaves them out.
ADDED_COLUMNS = {("whatsmeow_message_secrets", "stored_at")}

# The tenant event log (upgrades/20-tenant-event-log.sql): a whatsmeow_ table that names its
# tenant in a column called tenant, so it is the owner's and not a tenant table.
EVENT_LOG = "whatsmeow_tenant_events"
# The owner's allow-list of foreign triggers, rules, policies and foreign keys (v1003).
ALLOWED_OBJECTS = "whatsmeow_allowed_table_objects"

DEVICE_CHILDREN = tuple(t for t in TENANT_TABLES if t not in ("whatsmeow_device", "whatsmeow_lid_map"))

OUR_JID = "15550001111:7@s.whatsapp.net"
PEER_PN = "15550002222"
PEER_LID = "98765432100"


def blob(tenant: str, label: str, size: int) -> bytes:
    """Bytes that differ per tenant, so each tenant's rows are recognisable."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{tenant}/{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


def params(tenant: str, revision: int = 0) -> dict:
    """Values for every catalogue parameter: natural keys shared by all tenants, payloads per tenant.

    A later `revision` keeps the natural keys and changes every payload, and the
    keys that plain inserts need fresh (pre-key id, MAC version, ciphertext hash).
    """
    tenant_label = tenant
    tenant = f"{tenant}#{revision}" if revision else tenant
    values = {
        "business_id": tenant_label,
        "jid": OUR_JID,
        "our_jid": OUR_JID,
        "lid": PEER_LID,
        "other_lid": "11111111111",
        "pn": PEER_PN,
        "pns": [PEER_PN],
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
        "their_id": f"{PEER_PN}:1",
        "their_ids": [f"{PEER_PN}:1", f"{PEER_PN}:2"],
        "their_id_pattern": f"{PEER_PN}:%",
        "identity": blob(tenant, "identity", 32),
        "session": blob(tenant, "session", 300),
        "pn_signal": PEER_PN,
        "lid_signal": PEER_LID,
        "key_id": 42 + revision,
        "key": blob(tenant, "key", 32),
        "uploaded": False,
        "count": 10,
        "chat_id": "120363000000000000@g.us",
        "sender_id": f"{PEER_PN}:1",
        "sender_key": blob(tenant, "sender_key", 100),
        "sync_key_id": b"\x00\x01sync",
        "key_data": blob(tenant, "key_data", 64),
        "timestamp": 1_700_000_000 + revision,
        "fingerprint": blob(tenant, "fingerprint", 20),
        "name": "regular_high",
        "version": 3 + revision,
        "hash": blob(tenant, "hash", 128),
        "index_mac": blob("shared", "index_mac", 32),
        "index_macs": [blob("shared", "index_mac", 32)],
        "value_mac": blob(tenant, "value_mac", 32),
        "their_jid": f"{PEER_PN}@s.whatsapp.net",
        "first_name": f"First {tenant}",
        "full_name": f"Full {tenant}",
        "redacted_phone": f"+1 555***22 ({tenant})",
        "chat_jid": f"{PEER_LID}@lid",
        "alt_chat_jid": f"{PEER_PN}@s.whatsapp.net",
        "muted_until": 1_800_000_000 + revision,
        "pinned": True,
        "archived": True,
        "sender_jid": f"{PEER_PN}@s.whatsapp.net",
        "message_id": "3EB0C0FFEE",
        "token": blob(tenant, "token", 24),
        "sender_timestamp": 1_700_000_100,
        "expiry_seconds": 1_800_000_000,
        "salt": blob(tenant, "salt", 32),
        "ciphertext_hash": blob(f"shared#{revision}", "ciphertext", 32),
        "plaintext": blob(tenant, "plaintext", 200),
        "server_timestamp": 1_700_000_000,
        "insert_timestamp": 1_000,
        "expiry_ms": 1_800_000_000_000,
        "format": f"proto{revision}",
    }
    return values


# Catalogue writes, in an order that satisfies the foreign keys: one full store per tenant.
SEED = (
    "insertDeviceQuery",
    "putLIDMappingQuery",
    "putIdentityQuery",
    "putSessionQuery",
    "insertPreKeyQuery",
    "putSenderKeyQuery",
    "putAppStateSyncKeyQuery",
    "putAppStateVersionQuery",
    "putAppStateMutationMACsQuery",
    "putContactNameQuery",
    "putRedactedPhoneQuery",
    "putPushNameQuery",
    "putBusinessNameQuery",
    "putChatSettingQuery/muted_until",
    "putMsgSecret",
    "putPrivacyTokens",
    "putNCTSaltQuery",
    "putBufferedEventQuery",
    "addOutgoingEventQuery",
)


def seed(conn: psycopg.Connection, tenant: str) -> None:
    queries = load_queries()
    values = params(tenant)
    for name in SEED:
        queries[name].run(conn, values)


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
