"""Every query of the catalogue, run for two tenants that share every natural key.

For a read, tenant A's answer must be the same whether or not tenant B's
identical keys exist. For a write, tenant B's rows must not change. Both must
actually find or touch A's rows, so a query that matched nothing cannot pass.
"""

from __future__ import annotations

import re

import pytest
from store import (
    OUR_JID,
    PEER_LID,
    PEER_PN,
    SEED,
    load_queries,
    params,
    seed,
    tenant_rows,
)

QUERIES = load_queries()
A, B = "tenant-a", "tenant_b"


def test_catalogue_covers_every_upstream_store_query():
    expected = {
        # container.go
        "getAllDevicesQuery", "getDeviceQuery", "insertDeviceQuery", "deleteDeviceQuery",
        # lidmap.go
        "deleteExistingLIDMappingQuery", "putLIDMappingQuery", "getLIDForPNQuery", "getPNForLIDQuery",
        "getAllLIDMappingsQuery", "getManyLIDsForPNsQuery",
        # store.go
        "putIdentityQuery", "deleteAllIdentitiesQuery", "deleteIdentityQuery", "getIdentityQuery",
        "getSessionQuery", "hasSessionQuery", "getManySessionQueryPostgres", "putSessionQuery",
        "deleteAllSessionsQuery", "deleteSessionQuery", "migratePNToLIDSessionsQuery",
        "deleteAllIdentityKeysQuery", "migratePNToLIDIdentityKeysQuery", "deleteAllSenderKeysQuery",
        "migratePNToLIDSenderKeysQuery", "getLastPreKeyIDQuery", "insertPreKeyQuery", "getUnuploadedPreKeysQuery",
        "getPreKeyQuery", "deletePreKeyQuery", "markPreKeysAsUploadedQuery", "getUploadedPreKeyCountQuery",
        "getSenderKeyQuery", "putSenderKeyQuery", "putAppStateSyncKeyQuery", "getAllAppStateSyncKeysQuery",
        "getAppStateSyncKeyQuery", "getLatestAppStateSyncKeyIDQuery", "putAppStateVersionQuery",
        "getAppStateVersionQuery", "deleteAppStateVersionQuery", "putAppStateMutationMACsQuery",
        "deleteAppStateMutationMACsQueryPostgres", "getAppStateMutationMACQuery", "putContactNameQuery",
        "putRedactedPhoneQuery", "putPushNameQuery", "putBusinessNameQuery", "getContactQuery",
        "getAllContactsQuery", "putChatSettingQuery/muted_until", "putChatSettingQuery/pinned",
        "putChatSettingQuery/archived", "getChatSettingsQuery", "putMsgSecret", "getMsgSecret",
        "putPrivacyTokens", "getPrivacyToken", "deleteExpiredPrivacyTokens", "putNCTSaltQuery", "getNCTSaltQuery",
        "deleteNCTSaltQuery", "getBufferedEventQuery", "putBufferedEventQuery", "clearBufferedEventPlaintextQuery",
        "deleteOldBufferedHashesQuery", "getOutgoingEventQuery", "addOutgoingEventQuery",
        "deleteOldOutgoingEventsQuery",
    }
    assert set(QUERIES) ^ expected == set(), f"missing: {expected - set(QUERIES)}, extra: {set(QUERIES) - expected}"


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_filters_on_business_id_first_and_names_each_parameter(name):
    query = QUERIES[name]
    placeholders = {int(n) for n in re.findall(r"\$(\d+)", query.sql)}
    assert placeholders == set(range(1, len(query.params) + 1)), "each named parameter is used, and only those"
    assert query.params[0] == "business_id"
    if query.verb != "INSERT" or "SELECT" in query.sql:
        assert "business_id = $1" in query.sql


@pytest.fixture
def two_tenants(db):
    seed(db, A)
    seed(db, B)
    return db


def _forget_tenant(conn, tenant):
    conn.execute("DELETE FROM whatsmeow_device WHERE business_id = %s", (tenant,))
    conn.execute("DELETE FROM whatsmeow_lid_map WHERE business_id = %s", (tenant,))


READS = sorted(name for name, q in QUERIES.items() if q.verb == "SELECT")
WRITES = sorted(name for name, q in QUERIES.items() if q.verb != "SELECT" and name not in SEED)


@pytest.mark.parametrize("name", READS)
def test_read_answers_for_tenant_a_alone_when_tenant_b_shares_every_key(two_tenants, name):
    query = QUERIES[name]
    with_b = query.run(two_tenants, params(A)).fetchall()
    _forget_tenant(two_tenants, B)
    without_b = query.run(two_tenants, params(A)).fetchall()
    assert with_b, f"{name} found nothing for tenant A"
    assert with_b == without_b


@pytest.mark.parametrize("name", WRITES + list(SEED))
def test_write_for_tenant_a_changes_a_and_leaves_tenant_b_untouched(two_tenants, name):
    query = QUERIES[name]
    # Inserts and upserts bring new payloads for the same natural keys; deletes and updates aim at the seeded rows.
    values = params(A) if query.verb in ("DELETE", "UPDATE") else params(A, revision=1)
    if name == "putLIDMappingQuery":
        values["pn"] = "15550009999"  # the same mapping again is skipped by design; a new phone updates it
    a_before = tenant_rows(two_tenants, A)
    b_before = tenant_rows(two_tenants, B)
    cur = query.run(two_tenants, values)
    assert tenant_rows(two_tenants, B) == b_before
    if name == "putMsgSecret":
        assert cur.rowcount == 0, "DO NOTHING keeps the first secret stored for a message"
    else:
        assert cur.rowcount > 0, f"{name} touched no row of tenant A"
        assert tenant_rows(two_tenants, A) != a_before


def test_upsert_on_a_key_tenant_b_also_has_updates_only_tenant_a(two_tenants):
    new_session = b"new session of A"
    QUERIES["putSessionQuery"].run(two_tenants, {**params(A), "session": new_session})
    got = {
        row[0]: row[1]
        for row in two_tenants.execute(
            "SELECT business_id, session FROM whatsmeow_sessions WHERE our_jid = %s AND their_id = %s",
            (OUR_JID, params(A)["their_id"]),
        )
    }
    assert got == {A: new_session, B: params(B)["session"]}


def test_message_secret_lookup_uses_only_the_tenants_own_lid_map(two_tenants):
    # Both tenants stored the secret under the LID chat; tenant B maps the peer's phone elsewhere.
    two_tenants.execute("UPDATE whatsmeow_lid_map SET lid = '55555' WHERE business_id = %s", (B,))
    by_phone = {**params(A), "chat_jid": f"{PEER_PN}@s.whatsapp.net"}
    assert QUERIES["getMsgSecret"].run(two_tenants, by_phone).fetchall() == [
        (params(A)["key"], params(A)["sender_jid"])
    ]
    assert QUERIES["getMsgSecret"].run(two_tenants, {**by_phone, "business_id": B}).fetchall() == []
    by_lid_sender = {**params(A), "sender_jid": f"{PEER_LID}@lid"}
    assert QUERIES["getMsgSecret"].run(two_tenants, by_lid_sender).fetchall() == [
        (params(A)["key"], params(A)["sender_jid"])
    ]


def test_privacy_token_lookup_by_alternate_jid_stays_in_tenant(two_tenants):
    two_tenants.execute("DELETE FROM whatsmeow_lid_map WHERE business_id = %s", (B,))
    by_lid = {**params(A), "their_jid": f"{PEER_LID}@lid"}
    assert QUERIES["getPrivacyToken"].run(two_tenants, by_lid).fetchone()[0] == params(A)["token"]
    assert QUERIES["getPrivacyToken"].run(two_tenants, {**by_lid, "business_id": B}).fetchall() == []


def test_pn_to_lid_migration_moves_only_the_tenants_sessions(two_tenants):
    QUERIES["migratePNToLIDSessionsQuery"].run(two_tenants, params(A))
    rows = two_tenants.execute(
        "SELECT business_id, their_id FROM whatsmeow_sessions WHERE their_id LIKE %s ORDER BY 1",
        (f"{PEER_LID}:%",),
    ).fetchall()
    assert rows == [(A, f"{PEER_LID}:1")]
