"""`tenant list`, `tenant purge`, `tenant rename` and the tenant event log they and the device triggers write.

Three tenants hold a full store each (the catalogue's seed, sharing every natural key), acme with a second
device; every purge and rename must touch only the tenant it names, down to the last row of every table.
"""

from __future__ import annotations

import json
import subprocess

import psycopg
import pytest
from psycopg import sql
from rls_helpers import APP, OWNER, set_role, sqlstate_of
from runners import applier
from store import EVENT_LOG, LATEST_VERSION, OUR_JID, TENANT_TABLES, blob, load_queries, params, seed, superseded_history, tenant_rows

from applier import audit, rls, tenant
from applier.errors import ApplierError

QUERIES = load_queries()
TENANTS = ("acme", "globex", "initech")
SECOND_JID = "15550003333:12@s.whatsapp.net"
KEY_COLUMNS = ("registration_id", "noise_key", "identity_key", "signed_pre_key", "signed_pre_key_id",
               "signed_pre_key_sig", "adv_key", "adv_details", "adv_account_sig", "adv_account_sig_key",
               "adv_device_sig")


def ok(result, code: int = 0) -> subprocess.CompletedProcess:
    assert result.returncode == code, result.stderr
    return result


@pytest.fixture
def store(db, db_dsn):
    for tenant in TENANTS:
        seed(db, tenant)
    superseded_history(db, "acme", SECOND_JID, 10)
    return db, db_dsn


def events(conn: psycopg.Connection, **where) -> list[dict]:
    clause = sql.SQL(" AND ").join(sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(v))
                                   for k, v in where.items()) if where else sql.SQL("TRUE")
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(sql.SQL("SELECT * FROM whatsmeow_tenant_events WHERE {} ORDER BY id").format(clause)).fetchall()


def rows_of(conn: psycopg.Connection, tenant: str) -> dict[str, int]:
    return {t: n for t, rows in tenant_rows(conn, tenant).items() if (n := len(rows))}


# ---------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------

def test_list_counts_every_tenants_devices_and_rows_per_table(store):
    conn, dsn = store
    listed = {t["business_id"]: t for t in json.loads(ok(applier("tenant", "list", "--json", "--dsn", dsn)).stdout)}

    assert set(listed) == set(TENANTS)
    for tenant in TENANTS:
        expected = rows_of(conn, tenant)
        assert {table: v["rows"] for table, v in listed[tenant]["tables"].items()} == expected
        assert listed[tenant]["rows"] == sum(expected.values())
        assert listed[tenant]["approx_bytes"] > 0
        assert all(v["approx_bytes"] > 0 for v in listed[tenant]["tables"].values())
    assert listed["acme"]["devices"] == sorted([OUR_JID, SECOND_JID])
    assert listed["globex"]["devices"] == [OUR_JID]
    superseded = conn.execute("SELECT count(*) - count(DISTINCT (jid, name, index_mac)) FROM "
                              "whatsmeow_app_state_mutation_macs WHERE business_id = 'acme'").fetchone()[0]
    assert listed["acme"]["prunable_mutation_macs"] == superseded > 0
    assert listed["globex"]["prunable_mutation_macs"] == 0
    text = ok(applier("tenant", "list", "--dsn", dsn)).stdout
    assert "3 tenants" in text and "approximation" in text


def test_list_under_forced_row_level_security_asks_for_bypassrls(store):
    conn, dsn = store
    rls.create_roles(conn)
    rls.enable(conn, force=True)
    with conn.transaction():
        conn.execute(sql.SQL("CREATE ROLE tenant_lister LOGIN IN ROLE {}").format(sql.Identifier(OWNER)))
    try:
        listed = applier("tenant", "list", "--dsn", f"{dsn} user=tenant_lister")
        assert listed.returncode == 2
        assert "BYPASSRLS" in listed.stderr and "forced" in listed.stderr
    finally:
        conn.execute("DROP ROLE tenant_lister")


# ---------------------------------------------------------------------------------------------
# purge
# ---------------------------------------------------------------------------------------------

def test_purge_removes_every_row_of_the_tenant_and_nothing_of_any_other(store):
    conn, dsn = store
    others = {t: tenant_rows(conn, t) for t in TENANTS if t != "acme"}
    before = rows_of(conn, "acme")
    assert "whatsmeow_lid_map" in before, "the map has no foreign key to the device: purge must find it itself"

    result = ok(applier("tenant", "purge", "--business-id", "acme", "--yes", "--batch-size", "3", "--json",
                        "--dsn", dsn))

    assert rows_of(conn, "acme") == {}
    assert {t: tenant_rows(conn, t) for t in TENANTS if t != "acme"} == others
    removed = json.loads(result.stdout)["removed"]
    assert {t: n for t, n in removed.items() if n} == before
    [event] = events(conn, tenant="acme", action="purge")
    assert event["details"]["rows"] == removed and event["details"]["total"] == sum(before.values())
    assert event["details"]["completed"] is True and event["details"]["device"] is None
    assert (event["acting_role"], event["session_role"]) == ("postgres", "postgres")
    removed_devices = {e["details"]["jid"] for e in events(conn, tenant="acme", action="device_removed")}
    assert removed_devices == {OUR_JID, SECOND_JID}


def test_purge_of_one_device_removes_it_and_what_hangs_off_it(store):
    conn, dsn = store
    others = {t: tenant_rows(conn, t) for t in TENANTS if t != "acme"}
    acme_before = tenant_rows(conn, "acme")

    ok(applier("tenant", "purge", "--business-id", "acme", "--device", SECOND_JID, "--yes", "--batch-size", "4",
               "--dsn", dsn))

    after = tenant_rows(conn, "acme")
    for table in TENANT_TABLES:
        # The first device's rows stay as they were; the map belongs to the tenant, not to a device.
        kept = [r for r in acme_before[table] if SECOND_JID not in r]
        assert after[table] == kept, table
    assert not conn.execute("SELECT FROM whatsmeow_device WHERE business_id = 'acme' AND jid = %s",
                            (SECOND_JID,)).fetchone()
    assert after["whatsmeow_privacy_tokens"] == acme_before["whatsmeow_privacy_tokens"]
    assert {t: tenant_rows(conn, t) for t in TENANTS if t != "acme"} == others
    [event] = events(conn, tenant="acme", action="purge")
    assert event["details"]["device"] == SECOND_JID
    assert event["details"]["rows"]["whatsmeow_app_state_mutation_macs"] > 0
    assert "whatsmeow_lid_map" not in event["details"]["rows"]


def test_purge_of_a_device_with_privacy_tokens_removes_them(store):
    conn, dsn = store
    ok(applier("tenant", "purge", "--business-id", "globex", "--device", OUR_JID, "--yes", "--dsn", dsn))
    assert rows_of(conn, "globex") == {"whatsmeow_lid_map": 1}


@pytest.mark.parametrize(("args", "message"), [
    (("--business-id", "acme"), "without --yes"),
    (("--business-id", "acme", "--device", "nobody@s.whatsapp.net", "--yes"), "has no device"),
    (("--business-id", "nobody", "--yes"), "does not exist"),
    (("--business-id", "ac me", "--yes"), "invalid --business-id"),
    (("--business-id", "", "--yes"), "invalid --business-id"),
    (("--business-id", "acme", "--yes", "--batch-size", "0"), "invalid --batch-size"),
])
def test_purge_refuses_bad_input_and_changes_nothing(store, args, message):
    conn, dsn = store
    before = {t: tenant_rows(conn, t) for t in TENANTS}
    logged = len(events(conn))
    result = applier("tenant", "purge", *args, "--dsn", dsn)
    assert result.returncode == 2
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert message in error
    assert {t: tenant_rows(conn, t) for t in TENANTS} == before
    assert len(events(conn)) == logged


def test_purge_without_yes_shows_what_it_would_remove(store):
    conn, dsn = store
    result = applier("tenant", "purge", "--business-id", "globex", "--dsn", dsn)
    assert result.returncode == 2
    assert "would remove 1 rows of whatsmeow_lid_map" in result.stderr


def test_purge_under_forced_row_level_security_names_the_tenant_per_batch(store):
    conn, dsn = store
    rls.create_roles(conn)
    rls.enable(conn, force=True)
    others = {t: tenant_rows(conn, t) for t in TENANTS if t != "acme"}  # a superuser still sees every row
    with conn.transaction():
        conn.execute(sql.SQL("CREATE ROLE tenant_purger LOGIN IN ROLE {}").format(sql.Identifier(OWNER)))
    try:
        ok(applier("tenant", "purge", "--business-id", "acme", "--yes", "--batch-size", "5",
                   "--dsn", f"{dsn} user=tenant_purger"))
    finally:
        conn.execute("DROP ROLE tenant_purger")
    assert rows_of(conn, "acme") == {}
    assert {t: tenant_rows(conn, t) for t in TENANTS if t != "acme"} == others
    [event] = events(conn, tenant="acme", action="purge")
    assert event["session_role"] == "tenant_purger" and event["acting_role"] == "tenant_purger"


# ---------------------------------------------------------------------------------------------
# rename
# ---------------------------------------------------------------------------------------------

def test_rename_moves_every_row_and_keeps_its_content(store):
    conn, dsn = store
    before = tenant_rows(conn, "acme")
    others = {t: tenant_rows(conn, t) for t in TENANTS if t != "acme"}
    counts = rows_of(conn, "acme")

    result = ok(applier("tenant", "rename", "--business-id", "acme", "--to", "acme-eu", "--json", "--dsn", dsn))

    assert rows_of(conn, "acme") == {}
    after = tenant_rows(conn, "acme-eu")
    assert after.keys() == before.keys()
    for table in TENANT_TABLES:
        # business_id is the first column of every table; everything else is unchanged.
        moved = sorted((r[1:] for r in after[table]), key=repr)
        assert moved == sorted((r[1:] for r in before[table]), key=repr), table
        assert all(r[0] == "acme-eu" for r in after[table])
    assert after["whatsmeow_lid_map"], "the map has no foreign key: rename moves it itself"
    assert {t: tenant_rows(conn, t) for t in TENANTS if t != "acme"} == others
    assert {t: n for t, n in json.loads(result.stdout)["rows"].items() if n} == counts
    [event] = events(conn, action="rename")
    assert event["tenant"] == "acme-eu"
    assert event["details"]["from"] == "acme" and event["details"]["to"] == "acme-eu"
    assert {t: n for t, n in event["details"]["rows"].items() if n} == counts
    # The catalogue reads the renamed tenant as it read the old one.
    values = params("acme")
    assert QUERIES["getDeviceQuery"].run(conn, {**values, "business_id": "acme-eu"}).fetchall()
    assert not events(conn, action="device_rekeyed"), "moving a device to another tenant is not a re-key"


@pytest.mark.parametrize(("old", "new", "message"), [
    ("acme", "globex", "tenant globex already exists"),
    ("nobody", "fresh", "tenant nobody does not exist"),
    ("acme", "acme", "same tenant"),
    ("acme", "bad id!", "invalid --to"),
    ("x" * 65, "fresh", "invalid --business-id"),
])
def test_rename_refuses_bad_input_and_changes_nothing(store, old, new, message):
    conn, dsn = store
    before = {t: tenant_rows(conn, t) for t in TENANTS}
    result = applier("tenant", "rename", "--business-id", old, "--to", new, "--dsn", dsn)
    assert result.returncode == 2
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert message in error
    assert {t: tenant_rows(conn, t) for t in TENANTS} == before
    assert not events(conn, action="rename")


def test_rename_refuses_a_new_id_that_only_the_lid_map_holds(store):
    conn, dsn = store
    QUERIES["putLIDMappingQuery"].run(conn, params("orphan"))
    result = applier("tenant", "rename", "--business-id", "acme", "--to", "orphan", "--dsn", dsn)
    assert result.returncode == 2 and "whatsmeow_lid_map" in result.stderr


def test_rename_under_forced_row_level_security_is_refused_for_a_role_bound_by_it(store):
    conn, dsn = store
    rls.create_roles(conn)
    rls.enable(conn, force=True)
    before = tenant_rows(conn, "acme")
    with conn.transaction():
        conn.execute(sql.SQL("CREATE ROLE tenant_renamer LOGIN IN ROLE {}").format(sql.Identifier(OWNER)))
    try:
        result = applier("tenant", "rename", "--business-id", "acme", "--to", "acme-eu",
                         "--dsn", f"{dsn} user=tenant_renamer")
    finally:
        conn.execute("DROP ROLE tenant_renamer")
    assert result.returncode == 2 and "BYPASSRLS" in result.stderr
    assert tenant_rows(conn, "acme") == before


@pytest.mark.parametrize(("version", "compat", "code", "message"), [
    (1001, 1000, 2, "needs v1002"),
    (LATEST_VERSION + 1, LATEST_VERSION + 1, 3, "newer"),
])
def test_tenant_commands_refuse_an_older_or_newer_store(db, db_dsn, version, compat, code, message):
    db.execute("UPDATE whatsmeow_version SET version = %s, compat = %s", (version, compat))
    for args in (("list",), ("purge", "--business-id", "acme", "--yes"), ("rename", "--business-id", "a", "--to", "b")):
        result = applier("tenant", *args, "--dsn", db_dsn)
        assert result.returncode == code and message in result.stderr, result.stderr


# ---------------------------------------------------------------------------------------------
# The event log
# ---------------------------------------------------------------------------------------------

def test_devices_added_removed_and_rekeyed_are_logged_by_whatever_path(db):
    values = {**params("acme"), "jid": SECOND_JID}
    QUERIES["insertDeviceQuery"].run(db, values)
    # whatsmeow saves the device on every change of its name or LID: an upsert that logs nothing new.
    QUERIES["insertDeviceQuery"].run(db, {**values, "push_name": "renamed", "lid": "123@lid"})
    assert [e["action"] for e in events(db, tenant="acme")] == ["device_added"]
    # A key that changes, by any UPDATE, is logged with the names of the changed columns only.
    db.execute("UPDATE whatsmeow_device SET identity_key = %s, signed_pre_key_id = 2 WHERE jid = %s",
               (blob("acme", "new identity", 32), SECOND_JID))
    db.execute("UPDATE whatsmeow_device SET identity_key = identity_key WHERE jid = %s", (SECOND_JID,))
    QUERIES["deleteDeviceQuery"].run(db, values)

    logged = events(db, tenant="acme")
    assert [e["action"] for e in logged] == ["device_added", "device_rekeyed", "device_removed"]
    assert [e["details"] for e in logged] == [
        {"jid": SECOND_JID, "lid": values["lid"]},
        {"jid": SECOND_JID, "lid": "123@lid", "changed": ["identity_key", "signed_pre_key_id"]},
        {"jid": SECOND_JID, "lid": "123@lid"},
    ]
    assert all(e["acting_role"] == e["session_role"] == "postgres" for e in logged)


def test_the_log_holds_no_key_material(store):
    conn, dsn = store
    conn.execute("UPDATE whatsmeow_device SET noise_key = %s WHERE business_id = 'acme' AND jid = %s",
                 (blob("acme", "rotated", 32), OUR_JID))
    ok(applier("tenant", "rename", "--business-id", "globex", "--to", "globex2", "--dsn", dsn))
    ok(applier("tenant", "purge", "--business-id", "acme", "--yes", "--dsn", dsn))
    text = " ".join(json.dumps(e, default=str) for e in events(conn))
    assert events(conn, action="device_rekeyed")
    for tenant in ("acme", "globex"):
        for column in KEY_COLUMNS[1:]:
            value = params(tenant)[column]
            if isinstance(value, bytes):
                assert value.hex() not in text and value.hex().upper() not in text, column
    assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                        "AND atttypid = 'bytea'::regtype", (EVENT_LOG,)).fetchone()[0] == 0


def test_the_application_role_cannot_read_change_or_delete_the_log(db):
    rls.create_roles(db)
    rls.enable(db)
    seed(db, "acme")
    set_role(db, APP)
    try:
        for statement in ("SELECT * FROM whatsmeow_tenant_events",
                          "UPDATE whatsmeow_tenant_events SET tenant = 'x'",
                          "DELETE FROM whatsmeow_tenant_events",
                          "TRUNCATE whatsmeow_tenant_events",
                          "INSERT INTO whatsmeow_tenant_events (tenant, action, acting_role, session_role) "
                          "VALUES ('acme', 'purge', 'x', 'x')",
                          "SELECT whatsmeow_record_tenant_event('acme', 'purge', '{}')"):
            assert sqlstate_of(db, statement) == "42501", statement
        # Its own device changes are still logged, with the owner's rights, and name it.
        with db.transaction():
            db.execute("SELECT whatsmeow_set_tenant('acme')")
            assert QUERIES["deleteDeviceQuery"].run(db, params("acme")).rowcount == 1
    finally:
        db.execute("RESET ROLE")
    [event] = events(db, action="device_removed")
    assert (event["tenant"], event["acting_role"], event["session_role"]) == ("acme", APP, "postgres")


def test_the_owner_role_owns_the_log_and_its_routines(db):
    rls.create_roles(db)
    owners = db.execute(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = %s UNION "
        "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE proname IN "
        "('whatsmeow_record_tenant_event', 'whatsmeow_log_device_event')", (EVENT_LOG,)).fetchall()
    assert owners == [(OWNER,)]
    config = db.execute("SELECT prosecdef, proconfig FROM pg_proc WHERE proname = 'whatsmeow_log_device_event'"
                        ).fetchone()
    assert config == (True, ["search_path=pg_catalog, public, pg_temp"])


def test_the_log_survives_the_purge_it_records(store):
    conn, dsn = store
    ok(applier("tenant", "purge", "--business-id", "acme", "--yes", "--dsn", dsn))
    assert [e["action"] for e in events(conn, tenant="acme")] == [
        "device_added", "device_added", "device_removed", "device_removed", "purge"]
    assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
                        (EVENT_LOG,)).fetchone()[0] == 0


def test_record_tenant_event_refuses_an_invalid_tenant_and_action(db):
    assert sqlstate_of(db, "SELECT whatsmeow_record_tenant_event('no way', 'purge', '{}')") == "22023"
    assert sqlstate_of(db, "SELECT whatsmeow_record_tenant_event('acme', 'sneeze', '{}')") == "23514"
    assert sqlstate_of(db, "SELECT whatsmeow_record_tenant_event('acme', 'export', '[1]')") == "23514"
    event_id = db.execute("SELECT whatsmeow_record_tenant_event('acme', 'export', '{\"rows\": 3}')").fetchone()[0]
    assert events(db, id=event_id)[0]["details"] == {"rows": 3}


def test_the_audit_reports_who_else_may_read_or_change_the_log(db):
    rls.create_roles(db)
    audit.apply_audits(db)

    def found() -> list[str]:
        return [row[0] for row in db.execute(
            "SELECT problem FROM whatsmeow_audit.findings WHERE \"check\" = 'event_log_grants' ORDER BY 1")]

    assert found() == []
    db.execute("CREATE ROLE tenant_auditor NOLOGIN")
    try:
        db.execute(f"GRANT SELECT ON {EVENT_LOG} TO tenant_auditor")
        assert found() == [], "an auditor may read it"
        db.execute(f"GRANT DELETE ON {EVENT_LOG} TO tenant_auditor")
        db.execute(f"GRANT SELECT ON {EVENT_LOG} TO {APP}")
        assert found() == [
            "DELETE granted to tenant_auditor: only the owner may change the tenant event log",
            "SELECT granted to whatsmeow_app: the application may not read or change the tenant event log",
        ]
        db.execute(f"REVOKE ALL ON {EVENT_LOG} FROM tenant_auditor, {APP}")
        db.execute(f"GRANT UPDATE ON {EVENT_LOG} TO PUBLIC")
        assert found() == ["UPDATE granted to PUBLIC: the application may not read or change the tenant event log"]
        db.execute(f"REVOKE ALL ON {EVENT_LOG} FROM PUBLIC")
        assert found() == []
    finally:
        db.execute(f"REVOKE ALL ON {EVENT_LOG} FROM tenant_auditor")
        db.execute("DROP ROLE tenant_auditor")


def test_rename_on_a_store_distributed_with_citus_is_refused_with_the_way_round(store, monkeypatch):
    # Citus is not installed here: the detection answers for a distributed store, and the refusal follows.
    conn, _ = store
    assert tenant.is_distributed(conn) is False
    before = tenant_rows(conn, "acme")
    monkeypatch.setattr(tenant, "is_distributed", lambda _conn: True)
    with pytest.raises(ApplierError, match=r"distributed with Citus.*`tenant export` of acme, `tenant import` as "
                                           r"acme-eu, then `tenant purge` of acme"):
        tenant.rename(conn, "acme", "acme-eu")
    assert tenant_rows(conn, "acme") == before
