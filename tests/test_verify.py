"""`verify`: the live schema against the package's own definition of its version.

Each test changes one thing in a fresh store and expects exactly that change to
be reported as missing, extra or altered; untouched and converted stores verify
clean, and stores the package does not define are refused.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from runners import applier
from store import LATEST_VERSION, UPSTREAM_VERSION
from upstream import make_store

from applier import catalog, rls, verify
from applier.upgrade import upgrade

ROOT = Path(__file__).resolve().parent.parent




def test_clean_install_verifies_with_exit_0_and_prints_nothing(db_dsn):
    result = applier("verify", "--dsn", db_dsn)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert f"schema public matches the package's v{LATEST_VERSION} definition" in result.stderr


def test_dropped_index_is_missing_and_fails_with_exit_1(db, db_dsn):
    db.execute("DROP INDEX whatsmeow_retry_buffer_timestamp_idx")
    result = applier("verify", "--dsn", db_dsn)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "missing index whatsmeow_retry_buffer.whatsmeow_retry_buffer_timestamp_idx: CREATE INDEX "
        'whatsmeow_retry_buffer_timestamp_idx ON whatsmeow_retry_buffer USING btree (business_id, our_jid, "timestamp")'
    ]


def test_dropped_trigger_of_the_event_log_is_missing(db):
    db.execute("DROP TRIGGER whatsmeow_device_removed_event ON whatsmeow_device")
    assert verify.differences(db) == [
        "missing trigger whatsmeow_device.whatsmeow_device_removed_event: CREATE TRIGGER "
        "whatsmeow_device_removed_event AFTER DELETE ON whatsmeow_device FOR EACH ROW EXECUTE FUNCTION "
        "whatsmeow_log_device_event()"
    ]


def test_changed_default_is_altered(db):
    db.execute("ALTER TABLE whatsmeow_device ALTER COLUMN platform SET DEFAULT 'android'")
    assert verify.differences(db) == [
        "altered column whatsmeow_device.platform: default \"''::text\" -> \"'android'::text\""
    ]


def test_dropped_default_reads_as_none(db):
    db.execute("ALTER TABLE whatsmeow_device ALTER COLUMN platform DROP DEFAULT")
    assert verify.differences(db) == ["altered column whatsmeow_device.platform: default \"''::text\" -> none"]


def test_extra_column_is_extra(db):
    db.execute("ALTER TABLE whatsmeow_contacts ADD COLUMN nickname TEXT")
    assert verify.differences(db) == ["extra column whatsmeow_contacts.nickname: text"]


def test_extra_index_added_by_a_dba_is_extra(db):
    db.execute("CREATE INDEX whatsmeow_contacts_full_name_idx ON whatsmeow_contacts (business_id, full_name)")
    assert verify.differences(db) == [
        "extra index whatsmeow_contacts.whatsmeow_contacts_full_name_idx: CREATE INDEX "
        "whatsmeow_contacts_full_name_idx ON whatsmeow_contacts USING btree (business_id, full_name)"
    ]


def test_constraint_left_not_valid_and_changed_function_are_altered(db):
    fk = db.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'whatsmeow_sessions'::regclass "
                    "AND contype = 'f'").fetchone()[0]
    db.execute(f"ALTER TABLE whatsmeow_sessions DROP CONSTRAINT {fk}")
    db.execute(f"""ALTER TABLE whatsmeow_sessions ADD CONSTRAINT {fk} FOREIGN KEY (business_id, our_jid)
                   REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE ON UPDATE CASCADE NOT VALID""")
    db.execute("""CREATE OR REPLACE FUNCTION whatsmeow_business_id_is_valid(business_id TEXT) RETURNS BOOLEAN
                  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT business_id ~ '^[a-z]{1,64}$' $$""")
    lines = verify.differences(db)
    assert [line.split(":", 1)[0] for line in lines] == [
        f"altered constraint whatsmeow_sessions.{fk}",
        "altered function whatsmeow_business_id_is_valid(business_id text)",
    ]
    assert "validated True -> False" in lines[0]
    assert "+AS $function$ SELECT business_id ~ '^[a-z]{1,64}$' $function$" in lines[1]


def test_rls_on_every_table_verifies_and_one_table_left_out_or_a_changed_policy_is_altered(db):
    rls.enable(db, force=True)
    assert verify.differences(db) == []
    db.execute("ALTER TABLE whatsmeow_sessions DISABLE ROW LEVEL SECURITY")
    db.execute("ALTER POLICY whatsmeow_tenant_isolation ON whatsmeow_contacts USING (TRUE)")
    policy, flags = verify.differences(db)
    assert policy.startswith("altered policy whatsmeow_contacts.whatsmeow_tenant_isolation: using differs")
    assert "-(business_id =" in policy and policy.endswith("+true")
    assert flags == "altered row security whatsmeow_sessions: enabled True -> False"


def test_rls_disabled_again_verifies_although_the_tenant_function_stays(db):
    rls.enable(db)
    rls.disable(db)
    assert db.execute("SELECT to_regproc('whatsmeow_set_tenant')").fetchone()[0] is not None
    assert verify.differences(db) == []


def test_verify_changes_nothing_and_leaves_no_scratch_schema(db):
    db.execute("DROP INDEX whatsmeow_retry_buffer_timestamp_idx")
    before = catalog.snapshot(db)
    assert len(verify.differences(db)) == 1
    assert catalog.snapshot(db) == before
    assert db.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'whatsmeow\\_verify%'").fetchall() == []
    assert db.execute("SHOW search_path").fetchone()[0] == '"$user", public'


def test_converted_upstream_store_verifies_clean(empty_dsn):
    make_store(empty_dsn, UPSTREAM_VERSION)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        upgrade(conn, adopt_business_id="acme", quiet=True)
    result = applier("verify", "--dsn", empty_dsn)
    assert result.returncode == 0, result.stdout + result.stderr


def test_store_in_a_schema_of_its_own_verifies_and_reports_in_it(empty_dsn):
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA tenancy")
        conn.execute("SET search_path = tenancy")
        upgrade(conn, quiet=True)
        assert verify.differences(conn) == []
        conn.execute("DROP INDEX whatsmeow_event_buffer_business_id_insert_timestamp_idx")
        [line] = verify.differences(conn)
    index = "whatsmeow_event_buffer_business_id_insert_timestamp_idx"
    assert line.startswith(f"missing index whatsmeow_event_buffer.{index}: CREATE INDEX {index}")
    assert " ON whatsmeow_event_buffer USING btree" in line


@pytest.mark.parametrize("kind", ["empty", "upstream"])
def test_verify_refuses_an_empty_or_upstream_database_with_exit_2(empty_dsn, kind):
    if kind == "upstream":
        make_store(empty_dsn, UPSTREAM_VERSION)
    result = applier("verify", "--dsn", empty_dsn)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    expected = {
        "empty": "error: the database holds no whatsmeow store; nothing to verify",
        "upstream": "error: the database holds an upstream single-tenant whatsmeow store at v15",
    }[kind]
    assert message.startswith(expected)
    assert result.stdout == ""
