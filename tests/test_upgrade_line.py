"""The upgrade files: dbutil's format, one version truth, one source of DDL."""

from __future__ import annotations

import re

import psycopg
from runners import psql as run_psql

from applier import catalog
from applier.steps import (
    FILE_NAME,
    MULTI_TENANT_SINCE,
    UPGRADES_DIR,
    latest_compat,
    latest_version,
    load_steps,
    parse_step,
)
from applier.upgrade import upgrade

ROOT = UPGRADES_DIR.parent
# go.mau.fi/util/dbutil's header pattern, as upstream parses it.
DBUTIL_HEADER = re.compile(r"^-- (?:v(\d+) -> )?v(\d+)(?: \(compatible with v(\d+)\+\))?: (.+)$")


def test_every_file_has_a_dbutil_header_and_a_kebab_name():
    for path in sorted(UPGRADES_DIR.iterdir()):
        assert FILE_NAME.match(path.name), path.name
        assert DBUTIL_HEADER.match(path.read_text().split("\n", 1)[0]), path.name


def test_file_prefix_matches_header_without_gaps_or_duplicates():
    steps = load_steps()
    for step in steps.values():
        prefix = int(step.name[:2])
        assert prefix == (0 if step.from_version == 0 else step.to_version), step.name
    # Upstream's replayed steps v3..v15, then ours: one step per version, no gap, no second path.
    chained = sorted(s.to_version for s in steps.values() if s.from_version != 0)
    assert chained == list(range(3, latest_version(steps) + 1))
    assert all(s.from_version == s.to_version - 1 for s in steps.values() if s.from_version != 0)
    assert steps[0].to_version == latest_version(steps)


def test_fresh_install_step_reaches_the_latest_version_in_one_transaction():
    fresh = parse_step(UPGRADES_DIR / "00-latest-schema.sql")
    steps = load_steps()
    assert (fresh.from_version, fresh.to_version, fresh.compat, fresh.transaction) == (
        0, latest_version(steps), latest_compat(steps), True)
    # Upstream code must refuse the multi-tenant line: its compat is past every upstream version.
    assert latest_compat(steps) >= MULTI_TENANT_SINCE


def test_psql_entry_point_writes_the_latest_version_row():
    text = (ROOT / "schema" / "latest.sql").read_text()
    version = latest_version(load_steps())
    assert f"VALUES ({version}, {latest_compat(load_steps())})" in text
    assert "\\ir ../upgrades/00-latest-schema.sql" in text




def test_psql_install_and_applier_install_give_the_same_catalog(psql, new_database):
    by_psql, by_applier = new_database(), new_database()
    result = run_psql(psql, by_psql, "-f", str(ROOT / "schema" / "latest.sql"))
    assert result.returncode == 0, result.stderr
    with psycopg.connect(by_applier, autocommit=True) as conn:
        upgrade(conn, quiet=True)
        expected = catalog.snapshot(conn)
        applier_version = conn.execute("SELECT version, compat FROM whatsmeow_version").fetchall()
    with psycopg.connect(by_psql, autocommit=True) as conn:
        assert catalog.differences(expected, catalog.snapshot(conn)) == []
        assert conn.execute("SELECT version, compat FROM whatsmeow_version").fetchall() == applier_version
    assert expected["columns"] and expected["constraints"] and expected["indexes"] and expected["functions"]


def test_psql_install_into_a_non_empty_database_fails_and_changes_nothing(psql, db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        before = catalog.snapshot(conn)
        result = run_psql(psql, db_dsn, "-f", str(ROOT / "schema" / "latest.sql"))
        assert result.returncode != 0
        assert "already" in result.stderr
        assert catalog.differences(before, catalog.snapshot(conn)) == []
