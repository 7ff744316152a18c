"""Real Go code against the package's databases: upstream whatsmeow refuses every multi-tenant
database, a fork that embeds upgrades/ opens it, and the multi-tenant fork's store API keeps two
tenants apart, with and without row-level security.

The programs come from tests/go/, built offline by `bash .ci/go`. Without them this module is
skipped, unless WHATSMEOW_TENANCY_REQUIRE_GO=1 (as in CI), where their absence fails the run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import goprograms
import psycopg
import pytest
from runners import applier
from runners import psql as run_psql
from store import LATEST_COMPAT, LATEST_VERSION, STEPS, UPSTREAM_VERSION, TENANT_TABLES
from upstream import digests, make_store, upstream_columns

from applier import catalog
from applier.database import read_state
from applier.upgrade import execute, transactions

ROOT = Path(__file__).resolve().parent.parent


GO_BIN = goprograms.require(module=True)

REFUSAL = "unsupported database schema version"
UPSTREAM_KNOWS = UPSTREAM_VERSION
APP_LOGIN = "fork_service"


def go(program: str, *args: str) -> dict:
    result = subprocess.run([str(GO_BIN / program), *args], capture_output=True, text=True, timeout=300)
    assert result.stdout, f"{program} printed nothing; stderr:\n{result.stderr}"
    report = json.loads(result.stdout.splitlines()[-1])
    assert result.returncode == (0 if report.get("opened", report.get("ok")) else 1), result
    return report


def state(dsn: str) -> tuple:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return catalog.snapshot(conn), conn.execute("SELECT * FROM whatsmeow_version").fetchall()


# ---------------------------------------------------------------------------------------------
# Upstream whatsmeow against the package's databases
# ---------------------------------------------------------------------------------------------

def test_upstream_builds_its_own_v15_store_on_an_empty_database(empty_dsn):
    report = go("upstream-check", "open", empty_dsn)
    assert report == {"opened": True, "known_versions": UPSTREAM_KNOWS, "version": 15, "compat": 8}
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'whatsmeow%'")}
        with_business_id = conn.execute(
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'business_id'").fetchone()[0]
    assert tables == {*TENANT_TABLES, "whatsmeow_version"}
    assert with_business_id == 0


# Every step after upstream's v15, from the files: a new step is covered without a test change.
LATER_STEPS = sorted((s for s in STEPS.values() if s.from_version >= UPSTREAM_VERSION), key=lambda s: s.to_version)


def _stepped(dsn: str, to_version: int) -> None:
    make_store(dsn, UPSTREAM_VERSION)
    with psycopg.connect(dsn, autocommit=True) as conn:
        while (current := read_state(conn)).version < to_version:
            step = next(s for s in LATER_STEPS if s.from_version >= current.version)
            execute(conn, transactions(current, [step], "acme"), quiet=True)
        assert read_state(conn).version == to_version


def _made(how: str, dsn: str, psql: Path) -> None:
    if how == "applier-install":
        result = applier("upgrade", "--dsn", dsn)
    elif how == "psql-install":
        result = run_psql(psql, dsn, "-f", str(ROOT / "schema" / "latest.sql"))
    elif how == "applier-convert":
        make_store(dsn, UPSTREAM_VERSION)
        result = applier("upgrade", "--adopt-business-id", "acme", "--dsn", dsn)
    elif how == "applier-convert-online":
        make_store(dsn, UPSTREAM_VERSION)
        result = applier("upgrade", "--adopt-business-id", "acme", "--online", "--dsn", dsn)
    elif how == "psql-adopt":
        make_store(dsn, UPSTREAM_VERSION)
        result = run_psql(psql, dsn, "-v", "business_id=acme", "-f", str(ROOT / "schema" / "adopt.sql"))
    else:
        _stepped(dsn, int(how.removeprefix("step-v")))
        return
    assert result.returncode == 0, result.stderr


MADE = ["applier-install", "psql-install", "applier-convert", "applier-convert-online", "psql-adopt",
        *(f"step-v{s.to_version}" for s in LATER_STEPS)]


@pytest.mark.parametrize("how", MADE)
def test_upstream_refuses_the_database_and_a_fork_embedding_upgrades_opens_it(how, empty_dsn, psql):
    _made(how, empty_dsn, psql)
    before = state(empty_dsn)
    version, compat = before[1][0]
    assert compat > UPSTREAM_KNOWS

    # Upstream as released, and upstream as if it had published every version short of the compat.
    for args, known in ((["open"], UPSTREAM_KNOWS), (["padded", str(compat - 1)], compat - 1)):
        report = go("upstream-check", *args, empty_dsn)
        assert not report["opened"] and report["unsupported"], report
        assert report["error"] == (
            f"failed to upgrade database: {REFUSAL}: currently on v{version} "
            f"(compatible down to v{compat}), latest known: v{known}"), report
        assert state(empty_dsn) == before, "a refusal must change nothing"

    # The fork of docs/go-fork.md: upgrades/ in place of upstream's takes it to the latest version
    # (twice: the second run finds nothing to do),
    for _ in range(2):
        report = go("upstream-check", "embedded", empty_dsn)
        assert report["opened"], report
        assert (report["version"], report["compat"]) == (LATEST_VERSION, LATEST_COMPAT)
    # where upstream, even with 999 versions, refuses it.
    for args in (["open"], ["padded", "999"]):
        assert go("upstream-check", *args, empty_dsn)["unsupported"]


# Steps written before the line moved to v1000 (18-multi-tenant-version-line.sql).
VERSION_LINE = 1000
OLD_LINE = [step for step in LATER_STEPS if step.compat < VERSION_LINE]


@pytest.mark.parametrize("to_version", [step.to_version for step in OLD_LINE], ids=lambda v: f"v{v}")
def test_stores_left_on_the_old_line_would_open_in_an_upstream_with_that_many_versions(to_version, empty_dsn):
    # Why the line moved to v1000: a v16 or v17 store (compat 16) is refused by upstream v15 only;
    # an upstream release that knows 16 versions would take it for its own. Upgrade such stores.
    _stepped(empty_dsn, to_version)
    compat = state(empty_dsn)[1][0][1]
    assert compat < VERSION_LINE
    assert go("upstream-check", "padded", str(compat), empty_dsn)["opened"]


def test_the_embedded_table_knows_the_latest_version():
    # A stale build (upgrades/ changed since bash .ci/go) would test yesterday's steps.
    assert go("upstream-check", "table")["known_versions"] == LATEST_VERSION, "rebuild with: bash .ci/go"


def test_only_an_upstream_that_knew_as_many_versions_as_the_compat_would_open_it(db_dsn):
    # dbutil compares compat with the number of versions it knows: the line's one limit.
    assert not go("upstream-check", "padded", str(LATEST_COMPAT - 1), db_dsn)["opened"]
    assert go("upstream-check", "padded", str(LATEST_COMPAT), db_dsn)["opened"]


@pytest.mark.parametrize("route", ["applier", "applier-online", "psql-adopt"])
def test_a_store_written_by_upstream_is_converted_in_place_without_a_byte_lost(empty_dsn, fresh_catalog, psql, route):
    report = go("upstream-check", "fill", empty_dsn)
    assert report["opened"] and (report["version"], report["compat"]) == (15, 8), report
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        columns = upstream_columns(conn)
        before = digests(conn, columns)
    assert set(before) == set(TENANT_TABLES) and all(count > 0 for count, _ in before.values()), before

    if route == "psql-adopt":
        result = run_psql(psql, empty_dsn, "-v", "business_id=acme", "-f", str(ROOT / "schema" / "adopt.sql"))
    else:
        online = ["--online"] if route == "applier-online" else []
        result = applier("upgrade", "--adopt-business-id", "acme", *online, "--dsn", empty_dsn)
    assert result.returncode == 0, result.stderr

    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        assert digests(conn, columns) == before
        assert catalog.differences(fresh_catalog, catalog.snapshot(conn)) == []
        tenants = {table: conn.execute(f"SELECT array_agg(DISTINCT business_id) FROM {table}").fetchone()[0]
                   for table in TENANT_TABLES}
    assert set(map(tuple, tenants.values())) == {("acme",)}
    assert go("upstream-check", "open", empty_dsn)["unsupported"]
    assert go("upstream-check", "embedded", empty_dsn)["opened"]


# ---------------------------------------------------------------------------------------------
# The multi-tenant fork's store API on the package's schema
# ---------------------------------------------------------------------------------------------

def _rows_per_tenant(dsn: str) -> dict[str, dict[str, int]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            table: dict(conn.execute(f"SELECT business_id, count(*) FROM {table} GROUP BY 1").fetchall())
            for table in TENANT_TABLES
        }


def _check_exercise(report: dict, dsn: str) -> None:
    assert report["ok"], report["error"]
    assert report["device_jid"] == "15550001111:7@s.whatsapp.net"
    # Two calls fail in the fork as released, on any schema, its own included: a VALUES list built as
    # one row constructor, and a table no upgrade of the fork creates.
    assert report["fork_defects"] == {
        "PutAllContactNames": "ERROR: INSERT has more target columns than expressions (SQLSTATE 42601)",
        "PutManyRedactedPhones": "failed to insert redacted phone for 15550003333@s.whatsapp.net: "
                                 'ERROR: relation "whatsmeow_redacted_phones" does not exist (SQLSTATE 42P01)',
    }
    assert sum(report["operations"].values()) > 150 and report["checks"] > 100
    rows = _rows_per_tenant(dsn)
    # acme keeps a full store; globex deleted its device, which takes every row but its LID map.
    assert {t for t, counts in rows.items() if counts.get("acme")} == set(TENANT_TABLES) - {
        "whatsmeow_nct_salt", "whatsmeow_retry_buffer"}  # the fork predates both
    assert {t for t, counts in rows.items() if counts.get("globex")} == {"whatsmeow_lid_map"}
    # The forms whatsmeow writes: types.JID.String() for the device, SignalAddress() for peers.
    assert report["signal_addresses"] == ["15550002222:1", "15550002222:2", "11122233344_1:1"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT business_id, jid FROM whatsmeow_device").fetchall() == [
            ("acme", "15550001111:7@s.whatsapp.net")]
        assert conn.execute("SELECT business_id, their_id FROM whatsmeow_sessions ORDER BY 2").fetchall() == [
            ("acme", "11122233344_1:1"), ("acme", "15550002222:1"), ("acme", "15550002222:2")]


@pytest.mark.parametrize("program", ["fork-store", "fork-store-tenantdb"])
def test_fork_store_keeps_two_tenants_sharing_every_jid_apart(db_dsn, program):
    _check_exercise(go(program, "exercise", db_dsn, "acme", "globex"), db_dsn)


@pytest.fixture
def forced_rls_app_dsn(db_dsn):
    for args in (["rls", "roles"], ["rls", "enable", "--force"]):
        result = applier(*args, "--dsn", db_dsn)
        assert result.returncode == 0, result.stderr
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {APP_LOGIN}")
        conn.execute(f"CREATE ROLE {APP_LOGIN} LOGIN IN ROLE whatsmeow_app")
    yield db_dsn.replace("user=postgres", f"user={APP_LOGIN}")
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {APP_LOGIN}")
        conn.execute(f"DROP ROLE {APP_LOGIN}")


def test_fork_store_without_the_tenant_wrapper_is_refused_under_row_level_security(forced_rls_app_dsn):
    report = go("fork-store", "exercise", forced_rls_app_dsn, "acme", "globex")
    assert not report["ok"]
    assert report["error"].startswith("PutDevice for tenant acme: ") and "(SQLSTATE 42501)" in report["error"]


def test_fork_store_with_the_tenant_wrapper_keeps_tenants_apart_under_forced_rls(forced_rls_app_dsn, db_dsn):
    report = go("fork-store-tenantdb", "-wrap", "exercise", forced_rls_app_dsn, "acme", "globex")
    assert report["wrapped"]
    _check_exercise(report, db_dsn)


def test_tenant_wrapper_cost(new_database, template_db, forced_rls_app_dsn, psql):
    # The pool, the wrapper with a trivial statement in the call's place, and the wrapper, on a
    # store without policies (the wrapper needs only the tenant functions), then the wrapper as
    # the application's login under forced row-level security.
    plain_dsn = new_database(template_db)
    result = run_psql(psql, plain_dsn, "-f", str(ROOT / "rls" / "tenant-context.sql"))
    assert result.returncode == 0, result.stderr
    iterations = "300"
    targets = {"pool": f"pool={plain_dsn}", "one more statement": f"floor={plain_dsn}",
               "wrapper": f"wrap={plain_dsn}", "wrapper, forced RLS": f"wrap={forced_rls_app_dsn}"}
    report = go("fork-store-tenantdb", "bench", "acme", iterations, *targets.values())
    assert report["ok"] and report["iterations"] == 300
    runs = dict(zip(targets, report["microseconds_per_op"]))
    assert list(runs) == list(targets) and all(run["mean"] > 0 for run in runs.values())
    print(f"\nµs per store call, mean of {iterations}, interleaved: " + ", ".join(runs))
    for name in sorted(runs["pool"]):
        print(f"  {name:<18}" + "".join(f"{run[name]:9.1f}" for run in runs.values()))


def test_bench_names_a_target_it_cannot_use():
    report = go("fork-store-tenantdb", "bench", "acme", "10", "postgres:///x")
    assert not report["ok"] and report["error"] == 'bad target "postgres:///x": want pool=DSN, wrap=DSN or floor=DSN'
    report = go("fork-store", "bench", "acme", "10", "wrap=dbname=x")
    assert not report["ok"] and "the tenant wrapper needs fork-store-tenantdb" in report["error"]
