"""The applier as users run it: exit codes, messages, refusals that change nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from runners import applier
from store import LATEST_COMPAT, LATEST_VERSION

from applier import __version__, catalog
from applier.commands.demo import DEVICE as DEMO_DEVICE
from applier.database import redact, resolve_dsn
from applier.embedded import Cluster, find_bindir, server_user
from applier.sqlfile import sql_error
from applier.steps import UPGRADES_DIR, Step, latest_compat, latest_version, load_steps
from applier.upstream_store import upstream_v15_script

ROOT = Path(__file__).resolve().parent.parent




def state(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT * FROM whatsmeow_version").fetchall() if conn.execute(
            "SELECT to_regclass('whatsmeow_version')").fetchone()[0] else None
        return catalog.snapshot(conn), rows


def test_upgrade_installs_then_reports_current_on_the_second_run(empty_dsn):
    first = applier("upgrade", "--dsn", empty_dsn)
    assert first.returncode == 0, first.stderr
    assert f"applied v0 -> v{LATEST_VERSION}" in first.stderr
    second = applier("upgrade", "--dsn", empty_dsn)
    assert second.returncode == 0
    assert f"already at v{LATEST_VERSION}" in second.stderr
    assert "applied" not in second.stderr


def test_status_json_lists_the_pending_step_and_exits_1_until_applied(empty_dsn):
    pending = applier("status", "--json", "--dsn", empty_dsn)
    assert pending.returncode == 1
    doc = json.loads(pending.stdout)
    assert doc["version"] == 0 and doc["latest_version"] == LATEST_VERSION and doc["store"] == "empty"
    assert [(s["from"], s["to"], s["file"]) for s in doc["pending"]] == [(0, LATEST_VERSION, "00-latest-schema.sql")]
    applier("upgrade", "--dsn", empty_dsn)
    current = applier("status", "--json", "--dsn", empty_dsn)
    assert current.returncode == 0
    doc = json.loads(current.stdout)
    assert (doc["version"], doc["compat"], doc["store"], doc["pending"], doc["tenants"]) == (
        LATEST_VERSION, LATEST_COMPAT, "multi-tenant", [], 0)


def test_database_newer_than_the_package_is_refused_with_exit_3_and_left_alone(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE whatsmeow_version SET version = %s, compat = %s", (LATEST_VERSION + 2, LATEST_VERSION + 1))
    before = state(db_dsn)
    result = applier("upgrade", "--dsn", db_dsn)
    assert result.returncode == 3
    assert all(f"v{n}" in result.stderr for n in (LATEST_VERSION + 2, LATEST_VERSION + 1, LATEST_VERSION))
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert state(db_dsn) == before
    assert applier("status", "--dsn", db_dsn).returncode == 3
    # Every command that would change it refuses the same way, before any change.
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        catalog_before = catalog.snapshot(conn)
    for command in (("audit",), ("rls", "enable"), ("rls", "roles"), ("rls", "disable"), ("verify",)):
        refused = applier(*command, "--dsn", db_dsn)
        assert refused.returncode == 3, (command, refused.stderr)
        assert "newer than this package" in refused.stderr
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert catalog.snapshot(conn) == catalog_before
        assert conn.execute("SELECT to_regnamespace('whatsmeow_audit')").fetchone()[0] is None


def test_status_of_a_half_converted_store_reports_no_rls_and_no_tenant_count(empty_dsn):
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(upstream_v15_script())
        # What an interrupted online conversion leaves: some tables keyed, the version still upstream's.
        conn.execute("ALTER TABLE whatsmeow_device ADD COLUMN business_id TEXT NOT NULL DEFAULT 'acme'")
    result = applier("status", "--json", "--dsn", empty_dsn)
    doc = json.loads(result.stdout)
    assert (doc["store"], doc["rls"], doc["tenants"]) == ("conversion-in-progress", None, None)
    assert result.returncode == 2 and "--online" in doc["problem"]


def test_upstream_single_tenant_store_is_refused_and_left_alone(empty_dsn):
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(upstream_v15_script())
    before = state(empty_dsn)
    result = applier("upgrade", "--dsn", empty_dsn)
    assert result.returncode == 2
    assert "single-tenant" in result.stderr and "v15" in result.stderr
    assert state(empty_dsn) == before


def test_unreachable_server_gives_one_error_line_and_exit_2_with_password_hidden():
    result = applier("upgrade", "--dsn", "postgresql://app:s3cret@127.0.0.1:1/whatsmeow", env={"PGCONNECT_TIMEOUT": "2"})
    assert result.returncode == 2
    assert "s3cret" not in result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "cannot connect" in errors[0]


def test_failed_statement_is_reported_with_file_line_column_and_sqlstate(db):
    step = Step(UPGRADES_DIR / "99-broken-example.sql", LATEST_VERSION, LATEST_VERSION + 1, LATEST_COMPAT,
                "example", True, "-- vN: example\nSELECT 1;\nSELECT no_such_column\nFROM whatsmeow_device;\n")
    with pytest.raises(psycopg.Error) as exc:
        db.execute(step.sql)
    message = str(sql_error(step.name, step.sql, exc.value))
    assert message.startswith("99-broken-example.sql:3:8: ")
    assert "no_such_column" in message and "SQLSTATE 42703" in message


def test_dsn_comes_from_flag_then_database_url_then_libpq_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-env/db")
    monkeypatch.setenv("PGHOST", "pg-host")
    assert resolve_dsn("host=flag") == ("host=flag", "--dsn")
    assert resolve_dsn(None) == ("postgresql://from-env/db", "DATABASE_URL")
    monkeypatch.delenv("DATABASE_URL")
    assert resolve_dsn(None) == ("", "PG* environment")


def test_redact_hides_passwords_in_urls_and_key_value_dsns():
    assert "hunter2" not in redact("postgresql://u:hunter2@h/db")
    assert "hunter2" not in redact("host=h user=u password=hunter2")
    assert "user=u" in redact("host=h user=u password=hunter2")


def test_without_any_dsn_the_embedded_default_is_started_reused_and_upgraded():
    home = Path(tempfile.mkdtemp(prefix="whatsmeow-tenancy-embedded-"))
    home.chmod(0o755)
    env = {"WHATSMEOW_TENANCY_HOME": str(home)}
    try:
        first = applier("upgrade", env=env)
        assert first.returncode == 0, first.stderr
        assert "(embedded default)" in first.stderr and f"applied v0 -> v{LATEST_VERSION}" in first.stderr
        second = applier("status", "--json", env=env)
        assert second.returncode == 0
        assert json.loads(second.stdout)["version"] == LATEST_VERSION
        demo = applier("demo", env=env)
        assert demo.returncode == 0
        assert "acme sees sessions: ['15550002222:0']" in demo.stdout
        assert "[('globex', '15550003333:0')]" in demo.stdout
        assert json.loads(applier("status", "--json", env=env).stdout)["tenants"] == 0, "the demo rolls back"
        # It stays up after each command; `embedded` shows and stops it, as whatever user runs us.
        state = json.loads(applier("embedded", "status", "--json", env=env).stdout)
        assert (state["home"], state["initialised"], state["running"]) == (str(home), True, True)
        stop = applier("embedded", "stop", env=env)
        assert stop.returncode == 0 and "is stopped" in stop.stderr
        assert json.loads(applier("embedded", "status", "--json", env=env).stdout)["running"] is False
        assert applier("embedded", "start", "--quiet", env=env).returncode == 0
        assert json.loads(applier("embedded", "status", "--json", env=env).stdout)["running"] is True
    finally:
        Cluster(home, find_bindir(), server_user()).stop()
        shutil.rmtree(home, ignore_errors=True)


def test_demo_leaves_existing_tenants_alone_and_still_shows_isolation(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(DEMO_DEVICE, {"b": "acme", "jid": "15550001111:1@s.whatsapp.net", "k32": b"\x01" * 32,
                                   "k64": b"\x02" * 64})
    demo = applier("demo", "--dsn", db_dsn)
    assert demo.returncode == 0, demo.stderr
    assert "two tenants, acme-demo1 and globex-demo1" in demo.stdout
    assert "[('globex-demo1', '15550003333:0')]" in demo.stdout


def test_version_names_the_package_and_the_schema_it_installs():
    result = applier("--version")
    steps = load_steps()
    assert result.stdout.strip() == (
        f"whatsmeow-tenancy {__version__} (schema v{latest_version(steps)}, compatible with v{latest_compat(steps)}+)"
    )


def test_usage_errors_name_the_program_as_it_was_run():
    script = Path(sys.executable).parent / "whatsmeow-tenancy"
    result = subprocess.run([str(script), "no-such-command"], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and result.stderr.startswith("usage: whatsmeow-tenancy ")
    assert applier("no-such-command").stderr.startswith("usage: python -m applier ")


def test_help_lists_exit_codes_and_an_example_for_every_command():
    for command in ("upgrade", "status", "demo"):
        result = applier(command, "--help")
        assert result.returncode == 0
        assert "example:" in result.stdout and "exit codes" in result.stdout
