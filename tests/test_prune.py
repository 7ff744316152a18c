"""`prune` and whatsmeow_prune: what the store can no longer read goes, and no answer changes.

The store is the catalogue's seed for several tenants sharing every key, plus a
history of superseded mutation MACs in upstream PR #1240's proportions, expired
buffer rows and old message secrets. Every read of the catalogue must answer
the same after pruning, except the old message secrets a horizon was asked for.
"""

from __future__ import annotations

import json
import signal
import time

import psycopg
import pytest
from runners import applier, psql as run_psql, start_applier
from store import (
    OUR_JID,
    blob,
    load_queries,
    params,
    seed,
    superseded_history,
    tenant_rows,
)

QUERIES = load_queries()
READS = sorted(name for name, q in QUERIES.items() if q.verb == "SELECT")
TENANTS = ("acme", "globex", "initech")
SECOND_JID = "15550003333:12@s.whatsapp.net"
NOW_MS = "(extract(epoch FROM now()) * 1000)::BIGINT"
OLD_MESSAGE = "3EB0OLDSECRET"
# Per tenant: 60 and 40 index MACs at 42 or 43 versions each, and two old versions of the seeded one.
PRUNABLE_MACS = (30 * 41 + 30 * 42) + (20 * 41 + 20 * 42) + 2


def build_store(conn: psycopg.Connection) -> None:
    for tenant in TENANTS:
        seed(conn, tenant)
        superseded_history(conn, tenant, OUR_JID, 60, collection="regular")
        superseded_history(conn, tenant, SECOND_JID, 40)
        values = params(tenant)
        # Older versions of the seeded index MAC, which the catalogue reads at version 3.
        for version in (1, 2):
            QUERIES["putAppStateMutationMACsQuery"].run(
                conn, {**values, "version": version, "value_mac": blob(tenant, f"old value_mac {version}", 32)})
        # The seeded buffer rows are recent; one more of each is past upstream's horizon.
        conn.execute(f"UPDATE whatsmeow_event_buffer SET insert_timestamp = {NOW_MS} WHERE business_id = %s",
                     (tenant,))
        conn.execute(f"UPDATE whatsmeow_retry_buffer SET timestamp = {NOW_MS} WHERE business_id = %s", (tenant,))
        QUERIES["putBufferedEventQuery"].run(conn, {**values, "ciphertext_hash": blob(tenant, "old event", 32),
                                                    "insert_timestamp": 1_000})
        QUERIES["addOutgoingEventQuery"].run(conn, {**values, "message_id": "3EB0EXPIRED", "timestamp": 1_000})
        # A message secret from long ago, next to the seeded one.
        QUERIES["putMsgSecret"].run(conn, {**values, "message_id": OLD_MESSAGE})
        conn.execute("UPDATE whatsmeow_message_secrets SET stored_at = now() - INTERVAL '100 days' "
                     "WHERE business_id = %s AND message_id = %s", (tenant, OLD_MESSAGE))


def answers(conn: psycopg.Connection, tenant: str) -> dict[str, list[tuple]]:
    return {name: QUERIES[name].run(conn, params(tenant)).fetchall() for name in READS}


def old_secret(conn: psycopg.Connection, tenant: str) -> list[tuple]:
    return QUERIES["getMsgSecret"].run(conn, {**params(tenant), "message_id": OLD_MESSAGE}).fetchall()


def superseded(conn: psycopg.Connection, tenant: str) -> int:
    return conn.execute(
        "SELECT count(*) - count(DISTINCT (jid, name, index_mac)) FROM whatsmeow_app_state_mutation_macs "
        "WHERE business_id = %s", (tenant,)).fetchone()[0]


def newest_macs(conn: psycopg.Connection, tenant: str) -> list[tuple]:
    return conn.execute(
        "SELECT DISTINCT ON (jid, name, index_mac) jid, name, index_mac, version, value_mac "
        "FROM whatsmeow_app_state_mutation_macs WHERE business_id = %s "
        "ORDER BY jid, name, index_mac, version DESC", (tenant,)).fetchall()


def ok(result, code: int = 0):
    assert result.returncode == code, result.stdout + result.stderr
    return result


@pytest.fixture
def store(db, db_dsn):
    build_store(db)
    return db, db_dsn


def test_the_generator_reproduces_the_reported_proportion(store):
    conn, _ = store
    total, distinct = conn.execute(
        "SELECT count(*), count(DISTINCT index_mac) FROM whatsmeow_app_state_mutation_macs "
        "WHERE business_id = 'acme' AND jid = %s AND name = 'regular'", (OUR_JID,)).fetchone()
    assert 0.975 < 1 - distinct / total < 0.978


def test_pruning_one_tenant_changes_no_answer_and_no_other_tenant(store):
    conn, dsn = store
    before = {tenant: answers(conn, tenant) for tenant in TENANTS}
    others_before = {tenant: tenant_rows(conn, tenant) for tenant in TENANTS if tenant != "acme"}
    newest_before = newest_macs(conn, "acme")
    assert old_secret(conn, "acme")
    assert all(rows for rows in before["acme"].values()), "every read finds the tenant's rows"

    result = ok(applier("prune", "--business-id", "acme", "--message-secrets-older-than", "90d", "--batch-size", "7",
                        "--json", "--dsn", dsn))

    removed = json.loads(result.stdout)["removed"]
    assert removed == {
        "whatsmeow_app_state_mutation_macs": PRUNABLE_MACS,
        "whatsmeow_message_secrets": 1,
        "whatsmeow_event_buffer": 1,
        "whatsmeow_retry_buffer": 1,
    }
    assert {tenant: answers(conn, tenant) for tenant in TENANTS} == before
    assert {tenant: tenant_rows(conn, tenant) for tenant in TENANTS if tenant != "acme"} == others_before
    assert superseded(conn, "acme") == 0
    assert newest_macs(conn, "acme") == newest_before
    assert old_secret(conn, "acme") == [], "by design: the secret was older than the horizon"
    assert old_secret(conn, "globex")


def test_without_a_horizon_message_secrets_stay_and_every_tenant_is_pruned(store):
    conn, dsn = store
    before = {tenant: answers(conn, tenant) for tenant in TENANTS}
    secrets = conn.execute("SELECT count(*) FROM whatsmeow_message_secrets").fetchone()[0]

    ok(applier("prune", "--dsn", dsn))

    assert {tenant: answers(conn, tenant) for tenant in TENANTS} == before
    assert [superseded(conn, tenant) for tenant in TENANTS] == [0, 0, 0]
    assert conn.execute("SELECT count(*) FROM whatsmeow_message_secrets").fetchone()[0] == secrets
    assert conn.execute(f"SELECT count(*) FROM whatsmeow_event_buffer WHERE insert_timestamp < {NOW_MS} - "
                        "14 * 86400000").fetchone()[0] == 0
    # A second run finds nothing left.
    assert json.loads(ok(applier("prune", "--json", "--quiet", "--dsn", dsn)).stdout)["removed"] == {
        "whatsmeow_app_state_mutation_macs": 0, "whatsmeow_event_buffer": 0, "whatsmeow_retry_buffer": 0}


def test_the_dry_run_counts_exactly_what_a_run_removes_and_changes_nothing(store):
    conn, dsn = store
    rows_before = {tenant: tenant_rows(conn, tenant) for tenant in TENANTS}
    dry = json.loads(ok(applier("prune", "--dry-run", "--json", "--message-secrets-older-than", "12w",
                                "--dsn", dsn)).stdout)
    assert {tenant: tenant_rows(conn, tenant) for tenant in TENANTS} == rows_before
    assert {(c["business_id"], c["table"]) for c in dry} == {
        (tenant, table) for tenant in TENANTS for table in (
            "whatsmeow_app_state_mutation_macs", "whatsmeow_message_secrets", "whatsmeow_event_buffer",
            "whatsmeow_retry_buffer")}
    removed = json.loads(ok(applier("prune", "--json", "--message-secrets-older-than", "12w",
                                    "--dsn", dsn)).stdout)["removed"]
    for table, count in removed.items():
        assert count == sum(c["prunable"] for c in dry if c["table"] == table), table
    text = ok(applier("prune", "--dry-run", "--dsn", dsn)).stdout
    assert "prunable: 0 of" in text and "acme" in text


def test_psql_runs_the_same_work(store, psql):
    conn, dsn = store
    before = answers(conn, "globex")
    result = run_psql(psql, dsn, "-c", "CALL whatsmeow_prune(business_id => 'globex')")
    assert result.returncode == 0, result.stderr
    assert f"prune: whatsmeow_app_state_mutation_macs: {PRUNABLE_MACS} removed" in result.stderr
    assert superseded(conn, "globex") == 0 and superseded(conn, "acme") > 0
    assert answers(conn, "globex") == before


@pytest.mark.parametrize("args, message", [
    (["--business-id", "bad id"], "invalid business_id 'bad id'"),
    (["--message-secrets-older-than", "90"], "invalid age '90'"),
    (["--message-secrets-older-than", "0d"], "invalid age '0d'"),
    (["--batch-size", "0"], "invalid --batch-size 0"),
])
def test_bad_input_is_refused_with_its_name_and_changes_nothing(store, args, message):
    conn, dsn = store
    before = {tenant: tenant_rows(conn, tenant) for tenant in TENANTS}
    result = ok(applier("prune", *args, "--dsn", dsn), 2)
    assert f"error: {message}" in result.stderr
    assert {tenant: tenant_rows(conn, tenant) for tenant in TENANTS} == before


def test_a_store_before_the_retention_step_is_told_to_upgrade(empty_dsn):
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE whatsmeow_version (version INTEGER, compat INTEGER)")
        conn.execute("INSERT INTO whatsmeow_version VALUES (0, 0)")
    result = ok(applier("prune", "--dsn", empty_dsn), 2)
    assert "error: prune: this database holds a" in result.stderr and "not a multi-tenant one" in result.stderr


def test_new_secrets_record_when_they_were_stored(db):
    seed(db, "acme")
    age = db.execute("SELECT now() - stored_at FROM whatsmeow_message_secrets WHERE business_id = 'acme'").fetchone()
    assert age[0].total_seconds() < 60


def test_an_interrupted_prune_keeps_its_batches_and_a_second_run_finishes(db, db_dsn):
    rows = superseded_history(db, "acme", OUR_JID, 2000)
    newest = newest_macs(db, "acme")
    # Small batches and an early interrupt: the rest of the run must outlast the way of a signal to the
    # server (a fast server pruned all 83,000 superseded rows in 50-row batches before it arrived).
    process = start_applier("prune", "--batch-size", "10", "--dsn", db_dsn)
    deadline = time.monotonic() + 60
    while db.execute("SELECT count(*) FROM whatsmeow_app_state_mutation_macs").fetchone()[0] > rows - 1000:
        assert time.monotonic() < deadline and process.poll() is None, "the prune ended before it was interrupted"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2, stderr
    assert "interrupted: the batches already committed stay removed; run prune again" in stderr
    left = superseded(db, "acme")
    assert 0 < left < rows - 2000 - 1000 + 10
    assert newest_macs(db, "acme") == newest

    ok(applier("prune", "--dsn", db_dsn))
    assert superseded(db, "acme") == 0
    assert newest_macs(db, "acme") == newest
