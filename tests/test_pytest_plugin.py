"""Isolation tests of a service's own queries against the multi-tenant whatsmeow store.

They use only the fixtures of the whatsmeow-tenancy pytest plugin, which pytest loads by itself
once the package is installed: no conftest.py is needed.
"""

import psycopg
import pytest

# The service's queries, with $1, $2, … named after the store columns they bind.
CONTACTS_OF_DEVICE = """
SELECT their_jid, push_name FROM whatsmeow_contacts
WHERE business_id = $1 AND our_jid = $2
"""
FORGET_PEER = """
DELETE FROM whatsmeow_sessions
WHERE business_id = $1 AND our_jid = $2 AND their_id = $3
"""


def test_the_contacts_query_keeps_to_its_tenant(whatsmeow_assert_isolated):
    whatsmeow_assert_isolated(CONTACTS_OF_DEVICE, ["business_id", "our_jid"])


def test_the_cleanup_touches_only_its_tenant(whatsmeow_assert_isolated):
    whatsmeow_assert_isolated(FORGET_PEER, ["business_id", "our_jid", "their_id"])


def test_a_query_that_forgets_the_tenant_fails_with_the_other_tenants_rows(whatsmeow_assert_isolated):
    with pytest.raises(AssertionError) as failure:
        whatsmeow_assert_isolated("SELECT push_name FROM whatsmeow_contacts WHERE our_jid = $1", ["our_jid"])
    assert "reads-other-tenant" in str(failure.value)
    assert "Push name of tenant_b" in str(failure.value)  # the leaking row itself
    assert "whatsmeow_contacts" in str(failure.value)


def test_a_delete_that_reaches_the_other_tenant_fails(whatsmeow_assert_isolated):
    with pytest.raises(AssertionError, match="writes-other-tenant.*whatsmeow_sessions"):
        whatsmeow_assert_isolated("DELETE FROM whatsmeow_sessions WHERE our_jid = $1", ["our_jid"], plans=False)


def test_the_application_sees_only_its_tenants_contacts(whatsmeow_tenant_conn, whatsmeow_tenants):
    rows = whatsmeow_tenant_conn.execute("SELECT business_id, push_name FROM whatsmeow_contacts").fetchall()
    assert rows == [(whatsmeow_tenants.a, f"Push name of {whatsmeow_tenants.a}")]


def test_the_application_cannot_write_a_row_for_the_other_tenant(whatsmeow_tenant_conn, whatsmeow_tenants):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        whatsmeow_tenant_conn.execute(
            "INSERT INTO whatsmeow_nct_salt (business_id, our_jid, salt) VALUES (%s, %s, %s)",
            (whatsmeow_tenants.b, "15550009999:1@s.whatsapp.net", b"salt"),
        )


def test_two_tenants_with_the_same_device_jid_each_see_their_own(whatsmeow_connect, whatsmeow_tenants):
    seen = {}
    for tenant in (whatsmeow_tenants.a, whatsmeow_tenants.b):
        conn = whatsmeow_connect(tenant)
        seen[tenant] = conn.execute("SELECT business_id, jid, push_name FROM whatsmeow_device").fetchall()
    jid = whatsmeow_tenants.values(whatsmeow_tenants.a)["jid"]
    assert seen == {
        tenant: [(tenant, jid, f"Push name of {tenant}")] for tenant in (whatsmeow_tenants.a, whatsmeow_tenants.b)
    }


def test_without_a_tenant_the_application_reads_nothing(whatsmeow_store, whatsmeow_tenants):
    with whatsmeow_store.connect() as conn:
        assert conn.execute("SELECT count(*) FROM whatsmeow_sessions").fetchone() == (0,)
