"""The upgrade files: dbutil's format, one version truth, one source of DDL."""

from __future__ import annotations

import re

import psycopg
import pytest
from runners import psql as run_psql
from store import UPSTREAM_VERSION, seed
from upstream import digests, make_store, upstream_columns

from applier import catalog
from applier.steps import (
    FILE_NAME,
    MULTI_TENANT_SINCE,
    UPGRADES_DIR,
    Step,
    latest_compat,
    latest_version,
    load_steps,
    parse_step,
    plan,
)
from applier.database import read_state
from applier.upgrade import execute, transactions, upgrade

ROOT = UPGRADES_DIR.parent
# The multi-tenant line: v16 and v17 were numbered after upstream's v15; from v1000 on it is out of
# upstream's reach (18-multi-tenant-version-line.sql).
LAST_OLD_LINE_VERSION = 17
VERSION_LINE = 1000
# The steps after the one that moved the store onto the line, in order.
ON_THE_LINE = [step.name for _, step in sorted(load_steps().items()) if step.from_version >= VERSION_LINE]
# go.mau.fi/util/dbutil's header pattern, as upstream parses it.
DBUTIL_HEADER = re.compile(r"^-- (?:v(\d+) -> )?v(\d+)(?: \(compatible with v(\d+)\+\))?: (.+)$")


def test_every_file_has_a_dbutil_header_and_a_kebab_name():
    for path in sorted(UPGRADES_DIR.iterdir()):
        assert FILE_NAME.match(path.name), path.name
        assert DBUTIL_HEADER.match(path.read_text().split("\n", 1)[0]), path.name


def test_steps_chain_in_file_order_with_one_jump_to_the_multi_tenant_line():
    steps = sorted(load_steps().values(), key=lambda step: step.name)
    assert steps[0].from_version == 0 and steps[0].to_version == latest_version(load_steps())
    chained = steps[1:]
    # Upstream's replayed steps v3..v15, then this package's: file prefixes 03, 04, ... without a gap.
    assert [int(step.name[:2]) for step in chained] == list(range(3, 3 + len(chained)))
    assert all(step.to_version == step.from_version + 1 for step in chained)
    for before, after in zip(chained, chained[1:]):
        jump = (before.to_version, after.from_version) == (LAST_OLD_LINE_VERSION, VERSION_LINE - 1)
        assert after.from_version == before.to_version or jump, (before.name, after.name)
    assert latest_version(load_steps()) >= VERSION_LINE


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


# ---------------------------------------------------------------------------
# dbutil's rule, reproduced (go.mau.fi/util/dbutil: upgradetable.go, upgrades.go)
# ---------------------------------------------------------------------------


def dbutil_table(steps) -> list:
    """UpgradeTable as dbutil builds it from the files: one slot per version a step starts from,
    padded with empty slots up to the highest, so its length is that version + 1."""
    table = [None] * (max(step.from_version for step in steps) + 1)
    for step in steps:
        table[step.from_version] = step
    return table


def dbutil_open(table: list, version: int, compat: int) -> tuple[int, int, list[str]]:
    """dbutil's Upgrade: refuse a compat above len(table), else walk the table from `version`,
    stepping over empty slots, and record each step's to-version and compat."""
    if compat > len(table):
        raise ValueError(f"unsupported database schema version: currently on v{version} "
                         f"(compatible down to v{compat}), latest known: v{len(table)}")
    ran = []
    while version < len(table):
        step = table[version]
        if step is None:
            version += 1
            continue
        ran.append(step.name)
        version, compat = step.to_version, step.compat
    return version, compat, ran


def upstream_table(known: int) -> list:
    """An upstream whatsmeow that knows `known` versions: its v0 -> v15 fresh install, then one step per
    version from v3 on (its v15 table has 15 slots, v1 -> v2 being empty), as its files will be."""
    fresh = Step(UPGRADES_DIR / "00-latest-schema.sql", 0, 15, 8, "upstream", True, "")
    later = [Step(UPGRADES_DIR / f"{n:02}-upstream.sql", n - 1, n, 8, "upstream", True, "")
             for n in range(3, known + 1)]
    return dbutil_table([fresh, *later])


def databases_the_package_writes() -> dict[str, tuple[int, int]]:
    """The version row of every store the package produces: a fresh install, a conversion, and an
    upgrade from each earlier multi-tenant version, each walked the way dbutil walks it."""
    table = dbutil_table(load_steps().values())
    rows = {"fresh install": dbutil_open(table, 0, 0)[:2]}
    for start, compat in ((UPSTREAM_VERSION, 8), (12, 8), (16, 16), (17, 16)):
        rows[f"from v{start}"] = dbutil_open(table, start, compat)[:2]
    return rows


def test_reproduction_matches_upstreams_refusal_of_the_old_line():
    # What upstream v15 printed for a v17 store of this package, before the renumbering.
    with pytest.raises(ValueError, match=re.escape("currently on v17 (compatible down to v16), latest known: v15")):
        dbutil_open(upstream_table(15), 17, 16)
    # ...and what its next release would have done: take the store for its own.
    assert dbutil_open(upstream_table(16), 17, 16)[:2] == (17, 16)


@pytest.mark.parametrize("known", [15, 16, 17, 18, 25, 50, 100, 250, 500, 998, VERSION_LINE - 1])
def test_upstream_with_any_count_of_versions_below_a_thousand_refuses_every_store_of_the_package(known):
    table = upstream_table(known)
    for origin, (version, compat) in databases_the_package_writes().items():
        with pytest.raises(ValueError, match="unsupported database schema version"):
            dbutil_open(table, version, compat)
        assert (version, compat) == (latest_version(load_steps()), latest_compat(load_steps())), origin


def test_a_go_fork_embedding_upgrades_builds_upgrades_and_reopens_every_store():
    table = dbutil_table(load_steps().values())
    latest = (latest_version(load_steps()), latest_compat(load_steps()))
    assert len(table) == latest[0] >= VERSION_LINE
    assert dbutil_open(table, 0, 0) == (*latest, ["00-latest-schema.sql"])
    assert dbutil_open(table, 17, 16) == (*latest, ["18-multi-tenant-version-line.sql", *ON_THE_LINE])
    assert dbutil_open(table, 16, 16)[2] == [
        "17-prefix-ranges-and-partial-pre-key-index.sql", "18-multi-tenant-version-line.sql", *ON_THE_LINE]
    # Reopened by the same code: accepted, nothing to run.
    assert dbutil_open(table, *latest) == (*latest, [])


def test_the_applier_walks_the_same_steps_as_dbutil():
    steps = load_steps()
    table = dbutil_table(steps.values())
    for version, compat in ((0, 0), (12, 8), (UPSTREAM_VERSION, 8), (16, 16), (17, 16), (VERSION_LINE, VERSION_LINE)):
        assert [step.name for step in plan(version, compat, steps)] == dbutil_open(table, version, compat)[2]


def test_a_v17_store_moves_onto_the_version_line_with_an_ordinary_upgrade(empty_dsn, fresh_catalog):
    make_store(empty_dsn, UPSTREAM_VERSION)
    steps = load_steps()
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        # v17 as it was released: conversion and v17 step, each with its version row, as dbutil runs them.
        execute(conn, transactions(read_state(conn), [steps[15], steps[16]], "acme"), quiet=True)
        assert conn.execute("SELECT version, compat FROM whatsmeow_version").fetchall() == [(17, 16)]
        seed(conn, "globex")
        columns = upstream_columns(conn)
        before = digests(conn, columns)

        applied = upgrade(conn, quiet=True)

        assert [step.name for step in applied] == ["18-multi-tenant-version-line.sql", *ON_THE_LINE]
        assert conn.execute("SELECT version, compat FROM whatsmeow_version").fetchall() == [
            (latest_version(steps), latest_compat(steps))]
        assert digests(conn, columns) == before
        assert catalog.differences(fresh_catalog, catalog.snapshot(conn)) == []
