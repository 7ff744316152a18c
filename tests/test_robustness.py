"""The applier under the conditions services and DBAs create: parallel starts, crashes, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from runners import applier, start_applier
from runners import psql as run_psql
from store import LATEST_COMPAT, LATEST_VERSION, STEPS, UPSTREAM_VERSION
from upstream import digests, make_store, upstream_columns

from applier import catalog
from applier.database import ADVISORY_LOCK_KEY, APPLICATION_NAME
from applier.steps import plan


def picture(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        has_version = conn.execute("SELECT to_regclass('whatsmeow_version')").fetchone()[0]
        version = conn.execute("SELECT * FROM whatsmeow_version").fetchall() if has_version else None
        return catalog.snapshot(conn), digests(conn, upstream_columns(conn)), version


def test_parallel_upgrades_apply_each_step_once_and_all_succeed(empty_dsn):
    procs = [start_applier("upgrade", "--dsn", empty_dsn) for _ in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 0, 0, 0]
    assert sum(f"applied v0 -> v{LATEST_VERSION}" in err for _, err in results) == 1
    assert sum(f"already at v{LATEST_VERSION}" in err for _, err in results) == 3


def test_a_second_applier_gives_up_after_lock_timeout_and_changes_nothing(empty_dsn):
    with psycopg.connect(empty_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        before = picture(empty_dsn)
        started = time.monotonic()
        result = applier("upgrade", "--dsn", empty_dsn, "--lock-timeout", "1")
        assert result.returncode == 2
        assert time.monotonic() - started < 30
        assert "--lock-timeout" in result.stderr and str(ADVISORY_LOCK_KEY) in result.stderr
        assert picture(empty_dsn) == before


def test_dry_run_prints_the_exact_sql_which_psql_can_run_and_changes_nothing(empty_dsn, new_database, psql):
    before = picture(empty_dsn)
    result = applier("upgrade", "--dry-run", "--dsn", empty_dsn)
    assert result.returncode == 0, result.stderr
    assert picture(empty_dsn) == before
    assert result.stdout.startswith("BEGIN;\n") and result.stdout.rstrip().endswith("COMMIT;")
    assert "-- upgrades/00-latest-schema.sql" in result.stdout
    assert f"INSERT INTO whatsmeow_version (version, compat) VALUES ({LATEST_VERSION}, {LATEST_COMPAT});" in result.stdout
    # Running the printed script gives exactly what the applier gives.
    by_script = new_database()
    ran = run_psql(psql, by_script, stdin=result.stdout)
    assert ran.returncode == 0, ran.stderr
    applier("upgrade", "--dsn", empty_dsn)
    assert picture(by_script)[::2] == picture(empty_dsn)[::2]


def test_dry_run_of_a_conversion_shows_the_tenant_setting_and_every_step_in_one_transaction(empty_dsn):
    make_store(empty_dsn, 12)
    before = picture(empty_dsn)
    result = applier("upgrade", "--dry-run", "--adopt-business-id", "acme", "--dsn", empty_dsn)
    assert result.returncode == 0
    assert picture(empty_dsn) == before
    assert result.stdout.count("BEGIN;") == 1
    assert "SELECT set_config('whatsmeow.adopt_business_id', 'acme', true);" in result.stdout
    files = [line.split("/")[1] for line in result.stdout.splitlines() if line.startswith("-- upgrades/")]
    assert files == [step.name for step in plan(12, 8, STEPS)]
    assert files[:3] == ["13-retry-buffer.sql", "14-nct-salt.sql", "15-companion-meta-nonce.sql"]


def test_status_json_has_the_documented_shape(db_dsn):
    result = applier("status", "--json", "--dsn", db_dsn)
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert set(doc) == {"version", "compat", "latest_version", "store", "pending", "problem", "rls", "tenants"}
    assert (doc["rls"], doc["tenants"]) == ("off", 0)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE whatsmeow_sessions ENABLE ROW LEVEL SECURITY")
    assert json.loads(applier("status", "--json", "--dsn", db_dsn).stdout)["rls"] == "partial"


def test_status_of_an_upstream_store_names_the_flag_and_lists_the_conversion(empty_dsn):
    make_store(empty_dsn, UPSTREAM_VERSION)
    result = applier("status", "--json", "--dsn", empty_dsn)
    doc = json.loads(result.stdout)
    assert result.returncode == 2
    assert doc["store"] == "upstream-single-tenant" and "--adopt-business-id" in doc["problem"]
    assert [step["to"] for step in doc["pending"]] == [step.to_version for step in plan(UPSTREAM_VERSION, 8, STEPS)]


def test_quiet_upgrade_prints_nothing_on_success(empty_dsn):
    result = applier("upgrade", "--quiet", "--dsn", empty_dsn)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_missing_database_says_so_in_one_line(pg_cluster):
    result = applier("upgrade", "--dsn", pg_cluster.dsn("no_such_database"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot connect")
    assert 'database "no_such_database" does not exist; create it or fix the DSN' in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_password_says_so_without_showing_it(pg_cluster):
    hba = pg_cluster.datadir / "pg_hba.conf"
    rule = "local all password_probe scram-sha-256\n"
    if rule not in hba.read_text():
        hba.write_text(rule + hba.read_text())
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS password_probe")
        conn.execute("CREATE ROLE password_probe LOGIN PASSWORD 'right-one'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.2)
    dsn = f"host={pg_cluster.socketdir} port=5432 dbname=postgres user=password_probe password=wrong-one"
    result = applier("status", "--dsn", dsn)
    assert result.returncode == 2
    assert "password authentication failed" in result.stderr and "check the password" in result.stderr
    assert "wrong-one" not in result.stderr


def test_permission_denied_names_the_file_and_says_to_use_the_owner(empty_dsn, pg_cluster):
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS unprivileged_probe")
        conn.execute("CREATE ROLE unprivileged_probe LOGIN")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    before = picture(empty_dsn)
    result = applier("upgrade", "--dsn", f"{empty_dsn} user=unprivileged_probe")
    assert result.returncode == 2
    assert "SQLSTATE 42501" in result.stderr and "owns the whatsmeow tables" in result.stderr
    assert picture(empty_dsn) == before


def _wait_for_backend(conn, condition, timeout=30, gone=False):
    """Wait until an applier backend matches `condition` (or, with gone, until none is left)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = conn.execute(
            f"SELECT pid FROM pg_stat_activity WHERE application_name = %s AND ({condition} OR %s)",
            (APPLICATION_NAME, gone),
        ).fetchall()
        if bool(rows) != gone:
            return
        time.sleep(0.05)
    raise AssertionError("applier backend still there" if gone else f"no applier backend with {condition}")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "interrupt"])
def test_a_conversion_killed_mid_step_leaves_the_store_as_it_was_and_the_next_run_succeeds(empty_dsn, how):
    make_store(empty_dsn, UPSTREAM_VERSION)
    before = picture(empty_dsn)
    # Activity is watched from its own connection: inside a transaction it would be a frozen snapshot.
    with psycopg.connect(empty_dsn, autocommit=True) as blocker, \
            psycopg.connect(empty_dsn, autocommit=True) as watcher:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE whatsmeow_sessions IN ACCESS SHARE MODE")
        proc = start_applier("upgrade", "--adopt-business-id", "acme", "--dsn", empty_dsn)
        # The conversion is now inside its transaction, waiting for the lock.
        _wait_for_backend(watcher, "wait_event_type = 'Lock'")
        proc.send_signal(how)
        code = proc.wait(timeout=60)
        blocker.execute("ROLLBACK")
        _wait_for_backend(watcher, "false", timeout=30, gone=True)
    if how == signal.SIGINT:
        assert code == 2
        assert "interrupted" in proc.stderr.read()
    assert picture(empty_dsn) == before
    result = applier("upgrade", "--adopt-business-id", "acme", "--dsn", empty_dsn)
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT version, compat FROM whatsmeow_version").fetchall() == [(LATEST_VERSION, LATEST_COMPAT)]


def test_console_script_runs_the_same_program():
    script = Path(sys.executable).parent / "whatsmeow-tenancy"
    result = subprocess.run([str(script), "upgrade", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "--adopt-business-id" in result.stdout and "--dry-run" in result.stdout and "exit codes" in result.stdout
