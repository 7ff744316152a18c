"""The installed schema, swept table by table: tenant keys everywhere, upstream kept exactly."""

from __future__ import annotations

import psycopg
import pytest
from store import ALLOWED_OBJECTS, ADDED_COLUMNS, EVENT_LOG, LATEST_COMPAT, LATEST_VERSION, TENANT_TABLES, load_queries

from applier import audit, rls
from applier.database import read_state
from applier.upstream_store import upstream_v15_script


COLUMNS = """
    SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
    FROM pg_attribute AS a
    JOIN pg_class AS c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relkind = 'r' AND c.relname LIKE 'whatsmeow\\_%'
      AND c.relname NOT IN ('whatsmeow_version', 'whatsmeow_tenant_events', 'whatsmeow_allowed_table_objects')
      AND a.attnum > 0 AND NOT a.attisdropped
"""
CONSTRAINTS = """
    SELECT con.conrelid::regclass::text, con.conname, con.contype::text,
           ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute AS a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.n),
           pg_get_constraintdef(con.oid), con.confdeltype::text, con.confupdtype::text
    FROM pg_constraint AS con
    WHERE con.conrelid::regclass::text LIKE 'whatsmeow\\_%'
      AND con.conrelid::regclass::text NOT IN ('whatsmeow_version', 'whatsmeow_tenant_events', 'whatsmeow_allowed_table_objects')
"""


def test_all_sixteen_upstream_tables_exist(db):
    tables = {row[0] for row in db.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'whatsmeow%'")}
    assert tables == set(TENANT_TABLES) | {"whatsmeow_version", EVENT_LOG, ALLOWED_OBJECTS}


def test_version_row_is_the_latest_version_and_compat(db):
    assert db.execute("SELECT version, compat FROM whatsmeow_version").fetchall() == [(LATEST_VERSION, LATEST_COMPAT)]


def test_business_id_is_not_null_text_in_every_table(db):
    rows = {(r[0], r[2], r[3]) for r in db.execute(COLUMNS) if r[1] == "business_id"}
    assert rows == {(table, "text", True) for table in TENANT_TABLES}


def test_every_key_and_foreign_key_leads_with_business_id(db):
    offenders = [
        (table, name, cols)
        for table, name, kind, cols, *_ in db.execute(CONSTRAINTS)
        if kind in ("p", "u", "f") and cols[0] != "business_id"
    ]
    assert offenders == []
    primary = {row[0] for row in db.execute(CONSTRAINTS) if row[2] == "p"}
    assert primary == set(TENANT_TABLES)


def test_every_foreign_key_references_the_parent_with_business_id_and_cascades(db):
    fks = {(r[0], tuple(r[3]), r[5], r[6]) for r in db.execute(CONSTRAINTS) if r[2] == "f"}
    device_children = set(TENANT_TABLES) - {"whatsmeow_device", "whatsmeow_lid_map", "whatsmeow_app_state_mutation_macs"}
    expected = {
        (t, ("business_id", "jid" if t in ("whatsmeow_pre_keys", "whatsmeow_app_state_sync_keys",
                                          "whatsmeow_app_state_version") else "our_jid"), "c", "c")
        for t in device_children
    } | {("whatsmeow_app_state_mutation_macs", ("business_id", "jid", "name"), "c", "c")}
    assert fks == expected
    targets = {r[4].split("REFERENCES ")[1].split(" ON")[0] for r in db.execute(CONSTRAINTS) if r[2] == "f"}
    assert targets == {"whatsmeow_device(business_id, jid)", "whatsmeow_app_state_version(business_id, jid, name)"}


def test_every_table_enforces_the_one_business_id_rule(db):
    checks = {
        r[0]: r[4] for r in db.execute(CONSTRAINTS) if r[2] == "c" and r[3] == ["business_id"]
    }
    assert set(checks) == set(TENANT_TABLES)
    assert set(checks.values()) == {"CHECK (whatsmeow_business_id_is_valid(business_id))"}


def test_every_on_conflict_target_has_a_unique_constraint_on_exactly_it(db):
    # ON CONFLICT matches a unique index by its set of columns, in any order.
    uniques = {(r[0], frozenset(r[3])) for r in db.execute(CONSTRAINTS) if r[2] in ("p", "u")}
    targets = set()
    for query in load_queries().values():
        if "ON CONFLICT" in query.sql:
            table = query.sql.split("INSERT INTO ")[1].split()[0]
            cols = query.sql.split("ON CONFLICT (")[1].split(")")[0]
            targets.add((table, frozenset(c.strip() for c in cols.split(","))))
    assert len(targets) == 13
    assert targets - uniques == set()


def test_no_index_repeats_a_prefix_of_another(db):
    indexes = db.execute(
        """
        SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, i.indkey::int2[]::int[],
               pg_get_expr(i.indpred, i.indrelid)
        FROM pg_index AS i WHERE i.indrelid::regclass::text LIKE 'whatsmeow\\_%'
        """
    ).fetchall()
    # A partial index serves other queries than a full one on the same columns.
    redundant = [
        (name, other)
        for table, name, cols, where in indexes
        for table2, other, cols2, where2 in indexes
        if table == table2 and name != other and cols2[: len(cols)] == cols and where == where2
    ]
    assert redundant == []


def test_secondary_indexes_lead_with_business_id(db):
    defs = {r[0]: r[1] for r in db.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename LIKE 'whatsmeow\\_%' "
        "AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'"
    )}
    assert {name: d.split(" USING btree ")[1] for name, d in defs.items()} == {
        "idx_whatsmeow_privacy_tokens_our_jid_timestamp": "(business_id, our_jid, \"timestamp\")",
        "whatsmeow_retry_buffer_timestamp_idx": "(business_id, our_jid, \"timestamp\")",
        "whatsmeow_event_buffer_business_id_insert_timestamp_idx": "(business_id, insert_timestamp)",
        "whatsmeow_pre_keys_business_id_jid_key_id_not_uploaded_idx": "(business_id, jid, key_id) WHERE (uploaded = false)",
        "whatsmeow_app_state_sync_keys_business_id_jid_timestamp_idx": "(business_id, jid, \"timestamp\")",
    }


@pytest.fixture
def upstream(empty_dsn):
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(upstream_v15_script())
        yield conn


def test_every_upstream_column_keeps_its_type_nullability_and_default(db, upstream):
    ours = {(r[0], r[1]): r[2:] for r in db.execute(COLUMNS)}
    theirs = {(r[0], r[1]): r[2:] for r in upstream.execute(COLUMNS)}
    assert {key: ours.get(key) for key in theirs} == theirs
    assert set(ours) - set(theirs) == {(t, "business_id") for t in TENANT_TABLES} | ADDED_COLUMNS


def test_every_upstream_check_is_kept_with_its_name(db, upstream):
    ours = {(r[0], r[1], r[4]) for r in db.execute(CONSTRAINTS) if r[2] == "c"}
    theirs = {(r[0], r[1], r[4]) for r in upstream.execute(CONSTRAINTS) if r[2] == "c"}
    assert theirs - ours == set()
    assert {name for _, name, _ in ours - theirs} == {f"{t}_business_id_check" for t in TENANT_TABLES}


def test_every_upstream_key_gains_business_id_and_keeps_its_columns(db, upstream):
    ours = {(r[0], r[2]): set(r[3]) for r in db.execute(CONSTRAINTS) if r[2] in ("p", "u")}
    theirs = {(r[0], r[2]): set(r[3]) for r in upstream.execute(CONSTRAINTS) if r[2] in ("p", "u")}
    assert {key: ours.get(key) for key in theirs} == {key: cols | {"business_id"} for key, cols in theirs.items()}
