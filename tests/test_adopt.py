"""Converting an existing upstream single-tenant store into a tenant, without losing a row."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from runners import applier
from runners import psql as run_psql
from store import LATEST_COMPAT, LATEST_VERSION, STEPS, UPSTREAM_VERSION, load_queries, params, seed, tenant_rows
from upstream import digests, make_store, upstream_columns

from applier import catalog
from applier.errors import ApplierError
from applier.steps import plan
from applier.upgrade import upgrade
from applier.upstream_store import UPSTREAM_V2_SQL

ROOT = Path(__file__).resolve().parent.parent


def snapshot_all(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        cols = upstream_columns(conn)
        return catalog.snapshot(conn), digests(conn, cols), conn.execute("SELECT * FROM whatsmeow_version").fetchall()


@pytest.mark.parametrize(
    ("version", "pre_dbutil"),
    [(15, False), (8, False), (7, True), (2, True), (12, False)],
    ids=["v15", "v8", "v7-pre-dbutil", "v2-pre-dbutil", "v12"],
)
def test_conversion_keeps_every_row_and_reaches_the_fresh_install_schema(
    empty_dsn, fresh_catalog, version, pre_dbutil
):
    make_store(empty_dsn, version, pre_dbutil=pre_dbutil)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        before_cols = upstream_columns(conn)
        before = digests(conn, before_cols)
        assert all(count > 0 for count, _ in before.values())
        upgrade(conn, adopt_business_id="acme", quiet=True)
        after = digests(conn, before_cols)
        assert catalog.differences(fresh_catalog, catalog.snapshot(conn)) == []
        assert conn.execute("SELECT version, compat FROM whatsmeow_version").fetchall() == [(LATEST_VERSION, LATEST_COMPAT)]
        owners = {
            table: conn.execute(f"SELECT array_agg(DISTINCT business_id) FROM {table}").fetchone()[0]
            for table in before_cols
        }
    if version < 5:
        # Upstream's v5 step rewrites account JIDs; every other column is carried over untouched.
        before.pop("whatsmeow_device")
    for table in before:
        assert after[table] == before[table], table
    assert set(map(tuple, owners.values())) == {("acme",)}


def test_replayed_upstream_steps_reach_upstreams_own_v15_schema(new_database):
    replayed, described = new_database(), new_database()
    make_store(replayed, UPSTREAM_VERSION, replayed=True)
    make_store(described, UPSTREAM_VERSION)
    with psycopg.connect(replayed) as a, psycopg.connect(described) as b:
        assert catalog.differences(catalog.snapshot(b), catalog.snapshot(a)) == []


def test_converted_store_serves_the_query_catalogue_and_takes_a_second_tenant(empty_dsn):
    make_store(empty_dsn, UPSTREAM_VERSION)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        upgrade(conn, adopt_business_id="acme", quiet=True)
        adopted = tenant_rows(conn, "acme")
        seed(conn, "globex")
        rows = load_queries()["getIdentityQuery"].run(
            conn, {**params("acme"), "our_jid": "15550001111:7@s.whatsapp.net", "their_id": "1555_000%22:2"}
        ).fetchall()
        assert rows == [(bytes([1]) * 32,)]
        assert tenant_rows(conn, "acme") == adopted




def test_single_tenant_store_without_the_flag_is_refused_naming_version_and_flag(empty_dsn):
    make_store(empty_dsn, 8)
    before = snapshot_all(empty_dsn)
    result = applier("upgrade", "--dsn", empty_dsn)
    assert result.returncode == 2
    assert "v8" in result.stderr and "--adopt-business-id" in result.stderr
    assert snapshot_all(empty_dsn) == before


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "semi;colon", "caf\u00e9"])
def test_invalid_business_id_is_refused_and_nothing_changes_not_even_upstream_steps(empty_dsn, bad):
    make_store(empty_dsn, 8)
    before = snapshot_all(empty_dsn)
    result = applier("upgrade", "--dsn", empty_dsn, "--adopt-business-id", bad)
    assert result.returncode == 2
    assert "business_id" in result.stderr
    assert snapshot_all(empty_dsn) == before


def test_a_converted_store_is_never_converted_twice_and_another_tenant_is_refused(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        seed(conn, "acme")
    before = snapshot_all(db_dsn)
    # The loser of two concurrent conversions with different tenants arrives here.
    other = applier("upgrade", "--dsn", db_dsn, "--adopt-business-id", "other")
    assert other.returncode == 2
    assert "already converted and its devices belong to acme; nothing was changed" in other.stderr
    same = applier("upgrade", "--dsn", db_dsn, "--adopt-business-id", "acme")
    assert same.returncode == 0 and "nothing to convert" in same.stderr
    assert snapshot_all(db_dsn) == before


def test_psql_conversion_without_a_business_id_names_the_psql_variable(psql, empty_dsn):
    make_store(empty_dsn, UPSTREAM_VERSION)
    before = snapshot_all(empty_dsn)
    result = run_psql(psql, empty_dsn, "-f", str(ROOT / "schema" / "adopt.sql"))
    assert result.returncode == 3
    assert "-v business_id=ID" in result.stderr and "SET whatsmeow" not in result.stderr
    assert snapshot_all(empty_dsn) == before


def test_v1_store_is_refused_with_the_version_to_upgrade_to_first(empty_dsn):
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(UPSTREAM_V2_SQL.read_text())
        conn.execute("UPDATE whatsmeow_version SET version = 1")
        with pytest.raises(ApplierError, match="older than v2"):
            upgrade(conn, adopt_business_id="acme", quiet=True)


def test_orphaned_privacy_tokens_are_the_one_thing_dropped_and_are_reported(empty_dsn, capfd):
    make_store(empty_dsn, UPSTREAM_VERSION)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO whatsmeow_privacy_tokens VALUES ('15550009999:3@s.whatsapp.net', 'x', 'tok', 1, NULL)")
        notices = []
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary))
        upgrade(conn, adopt_business_id="acme", quiet=True)
        assert notices == ["removed 1 privacy tokens of devices that no longer exist"]
        assert conn.execute("SELECT count(*) FROM whatsmeow_privacy_tokens WHERE our_jid = '15550009999:3@s.whatsapp.net'"
                            ).fetchone()[0] == 0




def test_psql_conversion_gives_the_same_schema_and_rows(psql, empty_dsn, fresh_catalog):
    make_store(empty_dsn, UPSTREAM_VERSION)
    with psycopg.connect(empty_dsn) as conn:
        cols = upstream_columns(conn)
        before = digests(conn, cols)
    result = run_psql(psql, empty_dsn, "-v", "business_id=acme", "-f", str(ROOT / "schema" / "adopt.sql"))
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_dsn) as conn:
        assert catalog.differences(fresh_catalog, catalog.snapshot(conn)) == []
        assert digests(conn, cols) == before


def test_psql_conversion_without_a_business_id_fails_clearly_and_rolls_back(psql, empty_dsn):
    make_store(empty_dsn, UPSTREAM_VERSION)
    before = snapshot_all(empty_dsn)
    result = run_psql(psql, empty_dsn, "-f", str(ROOT / "schema" / "adopt.sql"))
    assert result.returncode != 0
    assert "needs the business_id" in result.stderr
    assert snapshot_all(empty_dsn) == before


def test_conversion_step_run_the_way_dbutil_runs_it_reads_the_setting(empty_dsn, fresh_catalog):
    make_store(empty_dsn, UPSTREAM_VERSION)
    with psycopg.connect(empty_dsn, options="-c whatsmeow.adopt_business_id=acme") as conn:
        # dbutil: each step in its own transaction with its version row.
        for step in plan(UPSTREAM_VERSION, 8, STEPS):
            conn.execute(step.sql)
            conn.execute("DELETE FROM whatsmeow_version")
            conn.execute("INSERT INTO whatsmeow_version VALUES (%s, %s)", (step.to_version, step.compat))
            conn.commit()
        assert catalog.differences(fresh_catalog, catalog.snapshot(conn)) == []
        assert conn.execute("SELECT DISTINCT business_id FROM whatsmeow_sessions").fetchall() == [("acme",)]


def test_conversion_step_without_the_setting_raises_and_leaves_the_store(empty_dsn):
    make_store(empty_dsn, UPSTREAM_VERSION)
    before = snapshot_all(empty_dsn)
    step = (ROOT / "upgrades" / "16-adopt-single-tenant-store.sql").read_text()
    with psycopg.connect(empty_dsn) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="needs the business_id"):
            conn.execute(step)
        conn.rollback()
    assert snapshot_all(empty_dsn) == before
