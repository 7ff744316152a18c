"""`audit` and the views of audits/: each defect planted in a fresh store is found and named.

Each test plants one defect in its own copy of the latest schema and expects the
audit to fail on the right check, naming the object; a clean store, with or
without row-level security, passes.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from runners import applier
from runners import psql as run_psql
from store import LATEST_VERSION, OUR_JID, seed, superseded_history

from applier import audit, rls

ROOT = Path(__file__).resolve().parent.parent
AUDIT_FILES = sorted((ROOT / "audits").glob("[0-9][0-9]-*.sql"))
INSUFFICIENT_PRIVILEGE = "42501"




def findings(conn: psycopg.Connection, check: str | None = None) -> list[tuple[str, str]]:
    """(object, problem) of every finding, or of one check's, after re-applying audits/."""
    audit.apply_audits(conn)
    return [(f.object, f.problem) for f in audit.read_findings(conn)[1] if check in (None, f.check)]


def objects(conn: psycopg.Connection, check: str) -> list[str]:
    return [obj for obj, _ in findings(conn, check)]


def foreign_key(conn: psycopg.Connection, table: str) -> str:
    return conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
                        (table,)).fetchone()[0]


# ---------------------------------------------------------------------------
# Clean stores pass
# ---------------------------------------------------------------------------


def test_clean_install_passes_the_audit_with_exit_0(db_dsn):
    result = applier("audit", "--dsn", db_dsn)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: no findings in 18 checks" in result.stdout
    assert "FAIL" not in result.stdout


@pytest.mark.parametrize("force", [False, True], ids=["enabled", "forced"])
def test_clean_install_with_rls_and_roles_everywhere_passes(db, force):
    seed(db, "acme")
    rls.create_roles(db)
    rls.enable(db, force=force)
    assert findings(db) == []


# ---------------------------------------------------------------------------
# Row-level security
# ---------------------------------------------------------------------------


def test_rls_disabled_on_one_table_after_enabling_all_fails_the_audit_naming_it(db, db_dsn):
    rls.enable(db)
    db.execute("ALTER TABLE whatsmeow_sessions DISABLE ROW LEVEL SECURITY")
    result = applier("audit", "--dsn", db_dsn)
    assert result.returncode == 1
    assert "whatsmeow_sessions: row-level security is off, while it is on for 15 of the 16" in result.stdout
    assert objects(db, "row_security") == ["whatsmeow_sessions"]


def test_dropped_policy_leaves_a_table_with_rls_on_and_no_tenant_policy(db):
    rls.enable(db)
    db.execute("DROP POLICY whatsmeow_tenant_isolation ON whatsmeow_contacts")
    [(obj, problem)] = findings(db, "row_security")
    assert obj == "whatsmeow_contacts" and "no permissive policy keyed on the transaction's tenant" in problem


def test_permissive_policy_not_keyed_on_the_tenant_is_a_finding(db):
    rls.enable(db)
    db.execute("CREATE POLICY peek ON whatsmeow_nct_salt FOR SELECT USING (business_id = 'acme' OR TRUE)")
    db.execute("CREATE POLICY narrow ON whatsmeow_nct_salt AS RESTRICTIVE USING (our_jid IS NOT NULL)")
    assert objects(db, "row_security") == ["policy peek on whatsmeow_nct_salt"]


def test_earlier_policy_forms_are_judged_by_what_they_isolate(db):
    rls.enable(db)
    # Earlier releases called the function: the same isolation, so still keyed.
    db.execute("ALTER POLICY whatsmeow_tenant_isolation ON whatsmeow_contacts "
               "USING (business_id = whatsmeow_current_tenant()) WITH CHECK (business_id = whatsmeow_current_tenant())")
    # The Citus form has no transaction stamp: without Citus it honours a tenant left on a pooled connection.
    citus_form = ("business_id = CASE WHEN pg_catalog.current_setting('app.current_business_id', TRUE) "
                  "OPERATOR(pg_catalog.<>) '' THEN pg_catalog.current_setting('app.current_business_id', TRUE) END")
    db.execute(f"ALTER POLICY whatsmeow_tenant_isolation ON whatsmeow_nct_salt USING ({citus_form}) WITH CHECK ({citus_form})")
    assert sorted(objects(db, "row_security")) == ["policy whatsmeow_tenant_isolation on whatsmeow_nct_salt",
                                                   "whatsmeow_nct_salt"]


def test_rls_forced_on_some_tables_only_names_the_unforced_ones(db):
    rls.enable(db, force=True)
    db.execute("ALTER TABLE whatsmeow_pre_keys NO FORCE ROW LEVEL SECURITY")
    assert objects(db, "row_security") == ["whatsmeow_pre_keys"]


# ---------------------------------------------------------------------------
# Tenant keys and foreign keys
# ---------------------------------------------------------------------------


def test_dropped_foreign_key_leaves_the_table_without_a_cascade_from_the_device(db):
    db.execute(f"ALTER TABLE whatsmeow_sessions DROP CONSTRAINT {foreign_key(db, 'whatsmeow_sessions')}")
    assert objects(db, "device_cascade") == ["whatsmeow_sessions"]


def test_a_whatsmeow_table_the_package_did_not_create_is_a_finding_and_no_tenant_table(db, db_dsn):
    db.execute("CREATE TABLE whatsmeow_extra (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE whatsmeow_keyed (business_id TEXT NOT NULL PRIMARY KEY)")
    result = applier("audit", "--dsn", db_dsn)
    assert result.returncode == 1
    assert "whatsmeow_extra: is not one of the package's tables (owned by postgres)" in result.stdout
    assert sorted(objects(db, "foreign_tables")) == ["whatsmeow_extra", "whatsmeow_keyed"]
    assert objects(db, "tenant_keys") == [] and objects(db, "row_security") == []


def test_foreign_key_whose_first_pair_is_not_business_id_crosses_tenants(db):
    db.execute("ALTER TABLE whatsmeow_contacts ADD COLUMN device_business_id TEXT")
    db.execute("""
        ALTER TABLE whatsmeow_contacts ADD FOREIGN KEY (device_business_id, our_jid)
            REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE ON UPDATE CASCADE""")
    crossing = db.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'whatsmeow_contacts'::regclass "
                          "AND contype = 'f' AND conkey[1] <> 1").fetchone()[0]
    [(obj, problem)] = findings(db, "tenant_keys")
    assert obj == f"{crossing} on whatsmeow_contacts"
    assert "not business_id -> business_id" in problem
    # The same key has no index leading with its columns.
    assert objects(db, "unindexed_foreign_keys") == [obj]


def test_unique_index_and_business_id_of_another_type_are_findings(db):
    db.execute("CREATE UNIQUE INDEX whatsmeow_lid_map_pn_idx ON whatsmeow_lid_map (pn)")
    db.execute("ALTER TABLE whatsmeow_nct_salt ALTER COLUMN business_id TYPE VARCHAR(64)")
    assert sorted(objects(db, "tenant_keys")) == ["whatsmeow_lid_map_pn_idx on whatsmeow_lid_map",
                                                  "whatsmeow_nct_salt"]


# ---------------------------------------------------------------------------
# Indexes and constraints
# ---------------------------------------------------------------------------


def test_duplicate_and_prefix_indexes_are_findings_but_partial_expression_and_unique_ones_are_not(db):
    db.execute("CREATE INDEX sessions_prefix_idx ON whatsmeow_sessions (business_id, our_jid)")
    db.execute("CREATE INDEX retry_copy_idx ON whatsmeow_retry_buffer (business_id, our_jid, timestamp)")
    db.execute("CREATE INDEX sessions_empty_idx ON whatsmeow_sessions (business_id, our_jid) WHERE session IS NULL")
    db.execute("CREATE INDEX contacts_name_idx ON whatsmeow_contacts (business_id, lower(full_name))")
    db.execute("CREATE UNIQUE INDEX contacts_unique_idx ON whatsmeow_contacts (business_id, our_jid)")
    found = dict(findings(db, "redundant_indexes"))
    assert found == {
        "sessions_prefix_idx on whatsmeow_sessions":
            "its columns (business_id, our_jid) are a leading prefix of whatsmeow_sessions_pkey "
            "(business_id, our_jid, their_id)",
        "retry_copy_idx on whatsmeow_retry_buffer":
            'duplicates whatsmeow_retry_buffer_timestamp_idx (business_id, our_jid, "timestamp")',
    }


def test_constraint_left_not_valid_is_a_finding(db):
    db.execute("ALTER TABLE whatsmeow_device ADD CONSTRAINT platform_is_short CHECK (length(platform) < 100) NOT VALID")
    [(obj, problem)] = findings(db, "not_valid_constraints")
    assert obj == "platform_is_short on whatsmeow_device" and "VALIDATE CONSTRAINT platform_is_short" in problem


def test_invalid_index_left_by_a_failed_concurrent_build_is_a_finding(db):
    db.execute("INSERT INTO whatsmeow_lid_map (business_id, lid, pn) VALUES ('acme', '1a@lid', '1@s'), "
               "('acme', '1b@lid', '2@s')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY lid_map_first_idx ON whatsmeow_lid_map (business_id, left(lid, 1))")
    assert objects(db, "invalid_indexes") == ["lid_map_first_idx on whatsmeow_lid_map"]


# ---------------------------------------------------------------------------
# Privileges
# ---------------------------------------------------------------------------


def test_security_definer_function_without_search_path_is_a_finding(db):
    body = "LANGUAGE sql SECURITY DEFINER AS $$ SELECT count(*) FROM whatsmeow_device $$"
    db.execute(f"CREATE FUNCTION whatsmeow_count_devices() RETURNS BIGINT {body}")
    db.execute(f"CREATE FUNCTION whatsmeow_count_pinned() RETURNS BIGINT SET search_path = public {body}")
    assert objects(db, "definer_functions") == ["whatsmeow_count_devices()"]


def test_truncate_granted_to_a_non_owner_is_a_finding(db, make_role):
    role = make_role()
    db.execute(sql.SQL("GRANT TRUNCATE ON whatsmeow_sessions TO {}").format(sql.Identifier(role)))
    [(obj, problem)] = findings(db, "truncate_grants")
    assert obj == "whatsmeow_sessions" and f"TRUNCATE is granted to {role}" in problem


def test_view_readable_by_public_over_a_tenant_table_is_a_finding_even_through_another_view(db):
    db.execute("CREATE SCHEMA reports")
    db.execute("CREATE VIEW reports.sessions AS SELECT business_id, their_id FROM whatsmeow_sessions")
    db.execute("CREATE VIEW reports.peers AS SELECT DISTINCT their_id FROM reports.sessions")
    db.execute("CREATE VIEW reports.versions AS SELECT version FROM whatsmeow_version")
    db.execute("GRANT SELECT ON reports.peers, reports.versions TO PUBLIC")
    [(obj, problem)] = findings(db, "public_views")
    assert obj == "reports.peers" and "reads whatsmeow_sessions" in problem


def test_login_role_owning_a_table_with_rls_enabled_but_not_forced_is_a_finding_until_forced(db, make_role):
    owner = make_role("LOGIN")
    db.execute(sql.SQL("ALTER TABLE whatsmeow_nct_salt OWNER TO {}").format(sql.Identifier(owner)))
    assert findings(db, "rls_bypass") == []  # row-level security off: ownership changes nothing
    rls.enable(db)
    [(obj, problem)] = findings(db, "rls_bypass")
    assert obj == f"role {owner}" and "owns whatsmeow_nct_salt" in problem
    rls.enable(db, force=True)
    assert findings(db, "rls_bypass") == []


def test_application_role_that_can_bypass_rls_is_a_finding(db, make_role):
    app = make_role("BYPASSRLS")
    db.execute("SELECT set_config('whatsmeow.app_role', %s, FALSE)", (app,))
    [(obj, problem)] = findings(db, "rls_bypass")
    assert obj == f"role {app}" and "it has BYPASSRLS" in problem


def test_audit_views_are_readable_by_the_owner_role_only_not_by_public_or_a_plain_role(db, make_role):
    # Default privileges that would open every new view to PUBLIC are undone.
    db.execute("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC")
    owner, plain = make_role(), make_role()
    db.execute("SELECT set_config('whatsmeow.owner_role', %s, FALSE)", (owner,))
    assert findings(db) == []
    public = db.execute("""
        SELECT c.relname FROM pg_class AS c, aclexplode(c.relacl) AS g
        WHERE c.relnamespace = 'whatsmeow_audit'::regnamespace AND g.grantee = 0
    """).fetchall()
    assert public == []
    db.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(plain)))
    for view in ("findings", "tenants", "whatsmeow_tables"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as denied:
            db.execute(f"SELECT * FROM whatsmeow_audit.{view}")
        assert denied.value.sqlstate == INSUFFICIENT_PRIVILEGE
    db.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
    assert db.execute("SELECT count(*) FROM whatsmeow_audit.findings").fetchone() == (0,)


# ---------------------------------------------------------------------------
# psql, information sections, JSON and errors
# ---------------------------------------------------------------------------


def test_audit_sql_runs_twice_in_a_row_with_psql(psql, db_dsn):
    files = [arg for path in AUDIT_FILES for arg in ("-f", str(path))]
    for _ in range(2):
        result = run_psql(psql, db_dsn, *files)
        assert result.returncode == 0, result.stderr
    count = "SELECT count(*) FROM whatsmeow_audit.findings"
    result = subprocess.run([str(psql), "-X", "-At", "-d", db_dsn, "-c", count], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "0"


def test_tenants_are_counted_and_a_tenant_without_a_device_is_reported_without_failing(db, db_dsn):
    seed(db, "acme")
    seed(db, "globex")
    db.execute("DELETE FROM whatsmeow_event_buffer WHERE business_id = 'globex'")
    db.execute("INSERT INTO whatsmeow_lid_map (business_id, lid, pn) VALUES ('initech', '1', '2')")
    result = applier("audit", "--json", "--dsn", db_dsn)
    assert result.returncode == 0, result.stdout
    tenants = json.loads(result.stdout)["information"]["tenants"]["rows"]
    assert [(t["business_id"], t["devices"]) for t in tenants] == [("acme", 1), ("globex", 1), ("initech", 0)]
    assert tenants[2]["rows_per_table"] == {"whatsmeow_lid_map": 1}
    assert tenants[0]["total_rows"] == tenants[1]["total_rows"] + 1
    text = applier("audit", "--dsn", db_dsn).stdout
    assert "tenants with rows but no device:\n    initech: whatsmeow_lid_map 1" in text


def test_each_tenants_bytes_and_superseded_mutation_macs_are_shown(db, db_dsn):
    seed(db, "acme")
    seed(db, "globex")
    superseded_history(db, "acme", OUR_JID, 20)
    info = json.loads(applier("audit", "--json", "--dsn", db_dsn).stdout)["information"]
    bytes_ = {t["business_id"]: t["bytes_per_table"] for t in info["tenants"]["rows"]}
    for tenant in ("acme", "globex"):
        assert bytes_[tenant].keys() == info["tenants"]["rows"][0]["rows_per_table"].keys()
        # The rows' own bytes: more than the key columns alone, less than a page per row.
        for table, size in bytes_[tenant].items():
            rows, keys = db.execute(f"SELECT count(*), sum(octet_length(business_id)) FROM {table} "
                                    "WHERE business_id = %s", (tenant,)).fetchone()
            assert keys < size < 8192 * rows, table
    macs = "whatsmeow_app_state_mutation_macs"
    assert bytes_["acme"][macs] > 20 * bytes_["globex"][macs]
    history = {r["business_id"]: r for r in info["mutation_mac_history"]["rows"]}
    assert (history["acme"]["mac_rows"], history["acme"]["superseded_rows"]) == (1 + 10 * 42 + 10 * 43, 830)
    assert (history["globex"]["superseded_rows"], history["globex"]["superseded_percent"]) == (0, 0)
    text = applier("audit", "--dsn", db_dsn).stdout
    assert f"superseded mutation MACs (never read again; `prune` removes them):\n    {'acme':<24} {830:>12} of {851:>12} rows (97.5%)\n" in text


def test_json_lists_every_check_in_order_with_its_findings(db, db_dsn):
    db.execute("CREATE INDEX sessions_prefix_idx ON whatsmeow_sessions (business_id, our_jid)")
    result = applier("audit", "--json", "--dsn", db_dsn)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert set(doc) == {"schema", "version", "ok", "findings", "checks", "information"}
    assert (doc["schema"], doc["version"], doc["ok"], doc["findings"]) == ("public", LATEST_VERSION, False, 1)
    names = [row[0] for row in db.execute('SELECT "check" FROM whatsmeow_audit.checks ORDER BY position')]
    assert [c["check"] for c in doc["checks"]] == ["builtin_shadows", *names] and len(names) == 17
    failing = {c["check"]: [f["object"] for f in c["findings"]] for c in doc["checks"] if c["findings"]}
    assert failing == {"redundant_indexes": ["sessions_prefix_idx on whatsmeow_sessions"]}
    assert set(doc["information"]) == set(audit.INFORMATION)


def test_slow_statements_say_why_they_are_missing_and_never_fail_the_audit(db, db_dsn):
    result = applier("audit", "--json", "--dsn", db_dsn)
    [row] = json.loads(result.stdout)["information"]["slow_statements"]["rows"]
    assert "pg_stat_statements is not installed" in row["note"]
    db.execute("CREATE EXTENSION pg_stat_statements")
    result = applier("audit", "--json", "--dsn", db_dsn)
    assert result.returncode == 0
    section = json.loads(result.stdout)["information"]["slow_statements"]
    loaded = db.execute("SELECT count(*) FROM pg_settings WHERE name = 'shared_preload_libraries' "
                        "AND setting ~ 'pg_stat_statements'").fetchone()[0]
    if not loaded:
        assert "shared_preload_libraries" in section["unavailable"]
    assert "pg_stat_statements" in db.execute("SELECT pg_get_viewdef('whatsmeow_audit.slow_statements')").fetchone()[0]


def test_audit_refuses_an_empty_database_with_exit_2(empty_dsn):
    result = applier("audit", "--dsn", empty_dsn)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: the database holds no multi-tenant")
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT to_regnamespace('whatsmeow_audit')").fetchone() == (None,)
