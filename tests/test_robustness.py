"""The applier under the conditions services and DBAs create: parallel starts, crashes, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from upstream import digests, make_store, upstream_columns

from applier import catalog
from applier.database import ADVISORY_LOCK_KEY, APPLICATION_NAME

ROOT = Path(__file__).resolve().parent.parent


def environment(extra=None):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PG")}
    env.update(extra or {})
    return env


def _default_sigint() -> None:
    # A suite started in the background by a non-interactive shell inherits SIGINT ignored, and so
    # would the applier: give it the disposition a user's Ctrl-C meets.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args, **extra):
    return subprocess.Popen([sys.executable, "-m", "applier", *args], cwd=ROOT, env=environment(extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def applier(*args, **extra):
    proc = start(*args, **extra)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def picture(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        has_version = conn.execute("SELECT to_regclass('whatsmeow_version')").fetchone()[0]
        version = conn.execute("SELECT * FROM whatsmeow_version").fetchall() if has_version else None
        return catalog.snapshot(conn), digests(conn, upstream_columns(conn)), version


def test_parallel_upgrades_apply_each_step_once_and_all_succeed(empty_dsn):
    procs = [start("upgrade", "--dsn", empty_dsn) for _ in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 0, 0, 0]
    assert sum("applied v0 -> v17" in err for _, err in results) == 1
    assert sum("already at v17" in err for _, err in results) == 3


def test_a_second_applier_gives_up_after_lock_timeout_and_changes_nothing(empty_dsn):
    with psycopg.connect(empty_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        before = picture(empty_dsn)
        started = time.monotonic()
        code, _, err = applier("upgrade", "--dsn", empty_dsn, "--lock-timeout", "1")
        assert code == 2
        assert time.monotonic() - started < 30
        assert "--lock-timeout" in err and str(ADVISORY_LOCK_KEY) in err
        assert picture(empty_dsn) == before


def test_dry_run_prints_the_exact_sql_which_psql_can_run_and_changes_nothing(empty_dsn, new_database, psql):
    before = picture(empty_dsn)
    code, script, err = applier("upgrade", "--dry-run", "--dsn", empty_dsn)
    assert code == 0, err
    assert picture(empty_dsn) == before
    assert script.startswith("BEGIN;\n") and script.rstrip().endswith("COMMIT;")
    assert "-- upgrades/00-latest-schema.sql" in script
    assert "INSERT INTO whatsmeow_version (version, compat) VALUES (17, 16);" in script
    # Running the printed script gives exactly what the applier gives.
    by_script = new_database()
    result = subprocess.run([str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", by_script],
                            input=script, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    applier("upgrade", "--dsn", empty_dsn)
    assert picture(by_script)[::2] == picture(empty_dsn)[::2]


def test_dry_run_of_a_conversion_shows_the_tenant_setting_and_every_step_in_one_transaction(empty_dsn):
    make_store(empty_dsn, 12)
    before = picture(empty_dsn)
    code, script, _ = applier("upgrade", "--dry-run", "--adopt-business-id", "acme", "--dsn", empty_dsn)
    assert code == 0
    assert picture(empty_dsn) == before
    assert script.count("BEGIN;") == 1
    assert "SELECT set_config('whatsmeow.adopt_business_id', 'acme', true);" in script
    files = [line.split("/")[1] for line in script.splitlines() if line.startswith("-- upgrades/")]
    assert files == ["13-retry-buffer.sql", "14-nct-salt.sql", "15-companion-meta-nonce.sql",
                     "16-adopt-single-tenant-store.sql", "17-prefix-ranges-and-partial-pre-key-index.sql"]


def test_status_json_has_the_documented_shape(db_dsn):
    code, out, _ = applier("status", "--json", "--dsn", db_dsn)
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"version", "compat", "latest_version", "store", "pending", "problem", "rls", "tenants"}
    assert (doc["rls"], doc["tenants"]) == ("off", 0)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE whatsmeow_sessions ENABLE ROW LEVEL SECURITY")
    assert json.loads(applier("status", "--json", "--dsn", db_dsn)[1])["rls"] == "partial"


def test_status_of_an_upstream_store_names_the_flag_and_lists_the_conversion(empty_dsn):
    make_store(empty_dsn, 15)
    code, out, _ = applier("status", "--json", "--dsn", empty_dsn)
    doc = json.loads(out)
    assert code == 2
    assert doc["store"] == "upstream-single-tenant" and "--adopt-business-id" in doc["problem"]
    assert [step["to"] for step in doc["pending"]] == [16, 17]


def test_quiet_upgrade_prints_nothing_on_success(empty_dsn):
    assert applier("upgrade", "--quiet", "--dsn", empty_dsn) == (0, "", "")


def test_missing_database_says_so_in_one_line(pg_cluster):
    code, _, err = applier("upgrade", "--dsn", pg_cluster.dsn("no_such_database"))
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: cannot connect")
    assert 'database "no_such_database" does not exist; create it or fix the DSN' in err
    assert "Traceback" not in err


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
    code, _, err = applier("status", "--dsn", dsn)
    assert code == 2
    assert "password authentication failed" in err and "check the password" in err
    assert "wrong-one" not in err


def test_permission_denied_names_the_file_and_says_to_use_the_owner(empty_dsn, pg_cluster):
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS unprivileged_probe")
        conn.execute("CREATE ROLE unprivileged_probe LOGIN")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    before = picture(empty_dsn)
    code, _, err = applier("upgrade", "--dsn", f"{empty_dsn} user=unprivileged_probe")
    assert code == 2
    assert "SQLSTATE 42501" in err and "owns the whatsmeow tables" in err
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
    make_store(empty_dsn, 15)
    before = picture(empty_dsn)
    # Activity is watched from its own connection: inside a transaction it would be a frozen snapshot.
    with psycopg.connect(empty_dsn, autocommit=True) as blocker, \
            psycopg.connect(empty_dsn, autocommit=True) as watcher:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE whatsmeow_sessions IN ACCESS SHARE MODE")
        proc = start("upgrade", "--adopt-business-id", "acme", "--dsn", empty_dsn)
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
    code, _, err = applier("upgrade", "--adopt-business-id", "acme", "--dsn", empty_dsn)
    assert code == 0, err
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT version, compat FROM whatsmeow_version").fetchall() == [(17, 16)]


def test_console_script_runs_the_same_program():
    script = Path(sys.executable).parent / "whatsmeow-tenancy"
    result = subprocess.run([str(script), "upgrade", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "--adopt-business-id" in result.stdout and "--dry-run" in result.stdout and "exit codes" in result.stdout
