"""schema/citus-distribute.sql and the invariants Citus needs, on every PostgreSQL major.

Here the script runs through psql against stand-ins for create_reference_table
and create_distributed_table that record their calls and refuse what Citus
refuses (ON UPDATE CASCADE on a foreign key, a foreign key to a table not
distributed yet), so its call order is checked on every major of the matrix.
The invariants are checked on the normally installed schema. The script on a
real Citus cluster is tests/test_citus_cluster.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from runners import psql as run_psql
from store import TENANT_TABLES, seed, tenant_rows

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "schema" / "citus-distribute.sql"

STUBS = """
CREATE TABLE citus_calls (
    seq SERIAL PRIMARY KEY,
    function TEXT NOT NULL,
    table_name TEXT NOT NULL,
    distribution_column TEXT,
    colocate_with TEXT
);

-- Stands in for Citus's pg_catalog.pg_dist_partition, which the script reads at the end.
CREATE TABLE pg_dist_partition (logicalrelid REGCLASS PRIMARY KEY);

CREATE FUNCTION create_reference_table(table_name REGCLASS)
RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO citus_calls (function, table_name) VALUES ('create_reference_table', table_name::TEXT);
    INSERT INTO pg_dist_partition VALUES (table_name);
END
$$;

CREATE FUNCTION create_distributed_table(table_name REGCLASS, distribution_column TEXT,
                                         colocate_with TEXT DEFAULT 'default')
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    refused TEXT;
BEGIN
    SELECT string_agg(conname, ', ') INTO refused
    FROM pg_constraint WHERE conrelid = table_name AND contype = 'f' AND confupdtype NOT IN ('a', 'r');
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION 'SET NULL, SET DEFAULT or CASCADE is not supported in ON UPDATE operation '
                        'when distribution key included in the foreign constraint (%)', refused;
    END IF;
    SELECT string_agg(c.confrelid::REGCLASS::TEXT, ', ') INTO refused
    FROM pg_constraint AS c
    WHERE c.conrelid = table_name AND c.contype = 'f' AND c.confrelid <> c.conrelid
      AND NOT EXISTS (SELECT FROM citus_calls AS k WHERE k.table_name = c.confrelid::REGCLASS::TEXT);
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION '% references % which is not distributed yet', table_name, refused;
    END IF;
    INSERT INTO citus_calls (function, table_name, distribution_column, colocate_with)
    VALUES ('create_distributed_table', table_name::TEXT, distribution_column, colocate_with);
    INSERT INTO pg_dist_partition VALUES (table_name);
END
$$;
"""

FOREIGN_KEYS = """
    SELECT con.conrelid::REGCLASS::TEXT, con.conname, con.confrelid::REGCLASS::TEXT,
           con.confdeltype::TEXT, con.confupdtype::TEXT, con.convalidated, pg_get_constraintdef(con.oid)
    FROM pg_constraint AS con
    WHERE con.contype = 'f' AND con.conrelid::REGCLASS::TEXT LIKE 'whatsmeow\\_%'
"""

KEY_COLUMNS = """
    SELECT con.conrelid::REGCLASS::TEXT, con.conname, con.contype::TEXT,
           ARRAY(SELECT a.attname::TEXT FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute AS a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.n),
           ARRAY(SELECT a.attname::TEXT FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute AS a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.n)
    FROM pg_constraint AS con
    WHERE con.contype IN ('p', 'u', 'f') AND con.conrelid::REGCLASS::TEXT = ANY(%s)
"""


def _foreign_keys(conn) -> dict[tuple[str, str], tuple]:
    return {(r[0], r[1]): r[2:] for r in conn.execute(FOREIGN_KEYS)}


def _distribute(psql, dsn: str) -> subprocess.CompletedProcess:
    return run_psql(psql, dsn, "-f", str(SCRIPT))


@pytest.fixture
def stubbed(db):
    """A store at the latest version with two tenants' rows, on a database whose Citus functions are stand-ins."""
    seed(db, "acme")
    seed(db, "globex")
    db.execute(STUBS)
    return db


@pytest.fixture
def distributed(stubbed, db_dsn, psql):
    before = _foreign_keys(stubbed)
    rows = {tenant: tenant_rows(stubbed, tenant) for tenant in ("acme", "globex")}
    result = _distribute(psql, db_dsn)
    assert result.returncode == 0, result.stderr
    calls = stubbed.execute(
        "SELECT function, table_name, distribution_column, colocate_with FROM citus_calls ORDER BY seq"
    ).fetchall()
    return {"conn": stubbed, "before": before, "rows": rows, "calls": calls}


# ==========================================================================
# The script, against stand-ins
# ==========================================================================


def test_the_version_table_becomes_a_reference_table_first(distributed):
    assert distributed["calls"][0] == ("create_reference_table", "whatsmeow_version", None, None)
    assert [c for c in distributed["calls"] if c[0] == "create_reference_table"] == [distributed["calls"][0]]


def test_the_device_table_is_distributed_by_business_id_before_any_other_tenant_table(distributed):
    assert distributed["calls"][1] == ("create_distributed_table", "whatsmeow_device", "business_id", "default")


def test_every_tenant_table_is_distributed_once_by_business_id_colocated_with_devices(distributed):
    rest = distributed["calls"][2:]
    assert sorted(c[1] for c in rest) == sorted(set(TENANT_TABLES) - {"whatsmeow_device"})
    assert {(c[0], c[2], c[3]) for c in rest} == {("create_distributed_table", "business_id", "whatsmeow_device")}
    assert len(distributed["calls"]) == 1 + len(TENANT_TABLES)


def test_every_table_is_distributed_after_the_table_its_foreign_key_references(distributed):
    order = [c[1] for c in distributed["calls"]]
    late = [
        (child, parent) for (child, _), (parent, *_) in distributed["before"].items()
        if order.index(parent) > order.index(child)
    ]
    assert late == []
    assert order.index("whatsmeow_app_state_version") < order.index("whatsmeow_app_state_mutation_macs")


def test_every_foreign_key_keeps_its_name_and_columns_and_cascades_only_on_delete(distributed):
    after = _foreign_keys(distributed["conn"])
    assert set(after) == set(distributed["before"])
    assert len(after) == 14
    changed = {
        key: (parent, delete, update, valid, definition)
        for key, (parent, delete, update, valid, definition) in after.items()
        if (delete, update, valid) != ("c", "a", True)
    }
    assert changed == {}
    expected = {key: old[-1].replace(" ON UPDATE CASCADE", "") for key, old in distributed["before"].items()}
    assert {key: new[-1] for key, new in after.items()} == expected


def test_every_row_of_both_tenants_is_still_there(distributed):
    for tenant, rows in distributed["rows"].items():
        assert tenant_rows(distributed["conn"], tenant) == rows


def test_deleting_a_device_still_cascades_within_its_tenant(distributed):
    conn = distributed["conn"]
    conn.execute("DELETE FROM whatsmeow_device WHERE business_id = 'acme'")
    left = tenant_rows(conn, "acme")
    assert {table: rows for table, rows in left.items() if rows and table != "whatsmeow_lid_map"} == {}
    assert tenant_rows(conn, "globex") == distributed["rows"]["globex"]


def test_without_citus_the_script_refuses_and_changes_nothing(db, db_dsn, psql):
    before = _foreign_keys(db)
    result = _distribute(psql, db_dsn)
    assert result.returncode != 0
    assert "needs Citus" in result.stderr and "CREATE EXTENSION citus" in result.stderr
    assert _foreign_keys(db) == before


def test_a_store_below_the_multi_tenant_line_is_refused_unchanged(stubbed, db_dsn, psql):
    stubbed.execute("UPDATE whatsmeow_version SET version = 15, compat = 8")
    before = _foreign_keys(stubbed)
    result = _distribute(psql, db_dsn)
    assert result.returncode != 0
    assert "distributes a multi-tenant store (v1000 or later) only" in result.stderr
    assert _foreign_keys(stubbed) == before
    assert stubbed.execute("SELECT count(*) FROM citus_calls").fetchone() == (0,)


# ==========================================================================
# What Citus needs of the installed schema
# ==========================================================================


def test_every_primary_key_unique_constraint_and_foreign_key_contains_business_id(db):
    offenders = [
        (table, name, cols, ref)
        for table, name, kind, cols, ref in db.execute(KEY_COLUMNS, (list(TENANT_TABLES),))
        if "business_id" not in cols or (kind == "f" and "business_id" not in ref)
    ]
    assert offenders == []


def test_every_unique_index_contains_business_id(db):
    offenders = db.execute(
        """
        SELECT i.indexrelid::REGCLASS::TEXT
        FROM pg_index AS i
        WHERE i.indisunique AND i.indrelid::REGCLASS::TEXT = ANY(%s)
          AND NOT EXISTS (
              SELECT FROM pg_attribute AS a
              WHERE a.attrelid = i.indrelid AND a.attname = 'business_id' AND a.attnum = ANY(i.indkey)
          )
        """,
        (list(TENANT_TABLES),),
    ).fetchall()
    assert offenders == []


def test_business_id_has_one_plain_type_and_collation_in_every_tenant_table(db):
    rows = db.execute(
        """
        SELECT c.relname::TEXT, format_type(a.atttypid, a.atttypmod), t.typtype::TEXT, coll.collname::TEXT
        FROM pg_attribute AS a
        JOIN pg_class AS c ON c.oid = a.attrelid
        JOIN pg_type AS t ON t.oid = a.atttypid
        JOIN pg_collation AS coll ON coll.oid = a.attcollation
        WHERE a.attname = 'business_id' AND NOT a.attisdropped AND c.relkind = 'r' AND c.relname LIKE 'whatsmeow\\_%'
        """
    ).fetchall()
    assert {r[0] for r in rows} == set(TENANT_TABLES)
    # A base type, not a domain: Citus cannot route queries on a domain with a CHECK.
    assert {r[1:] for r in rows} == {("text", "b", "default")}


def test_no_foreign_key_crosses_tenants(db):
    offenders = [
        (table, name, cols, ref)
        for table, name, kind, cols, ref in db.execute(KEY_COLUMNS, (list(TENANT_TABLES),))
        if kind == "f" and (cols[0] != "business_id" or ref[0] != "business_id")
    ]
    assert offenders == []
    fks = [r for r in db.execute(KEY_COLUMNS, (list(TENANT_TABLES),)) if r[2] == "f"]
    assert len(fks) == 14


def test_a_distributed_store_still_passes_the_tenant_key_audits(distributed, db):
    from applier.audit import apply_audits, read_findings

    apply_audits(db)
    _, findings = read_findings(db)
    assert [f for f in findings if f.check in ("tenant_keys", "device_cascade")] == []


def test_a_tenant_table_the_script_does_not_know_is_refused_and_nothing_changes(stubbed, db_dsn, psql):
    stubbed.execute(
        "CREATE TABLE whatsmeow_future (business_id TEXT NOT NULL, our_jid TEXT NOT NULL, "
        "PRIMARY KEY (business_id, our_jid))"
    )
    before = _foreign_keys(stubbed)
    result = _distribute(psql, db_dsn)
    assert result.returncode != 0
    assert "does not distribute whatsmeow_future" in result.stderr
    assert _foreign_keys(stubbed) == before
    assert stubbed.execute("SELECT count(*) FROM pg_dist_partition").fetchone() == (0,)
