"""Two tenants in one database: same keys, separate rows, cascades that stay inside a tenant."""

from __future__ import annotations

import psycopg
import pytest
from store import (
    DEVICE_CHILDREN,
    OUR_JID,
    TENANT_TABLES,
    insert_device,
    load_queries,
    params,
    seed,
    tenant_rows,
)

A, B = "acme", "globex"
BAD_BUSINESS_IDS = ["", "x" * 65, "has space", "quote'd", "semi;colon", "caf\u00e9", "new\nline", "dot.ted", "a/b"]


@pytest.fixture
def two_tenants(db):
    seed(db, A)
    seed(db, B)
    return db


def count(conn, table, tenant):
    return conn.execute(f"SELECT count(*) FROM {table} WHERE business_id = %s", (tenant,)).fetchone()[0]


def test_same_device_jid_exists_once_per_tenant(two_tenants):
    rows = two_tenants.execute("SELECT business_id FROM whatsmeow_device WHERE jid = %s ORDER BY 1", (OUR_JID,))
    assert rows.fetchall() == [(A,), (B,)]


def natural_key(conn, table):
    """The primary key's columns other than business_id."""
    return [
        row[0]
        for row in conn.execute(
            """
            SELECT a.attname FROM pg_index AS i
            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
            JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = %s::regclass AND i.indisprimary AND a.attname <> 'business_id'
            ORDER BY k.n
            """,
            (table,),
        )
    ]


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_each_tenant_has_its_own_row_under_the_same_natural_key(two_tenants, table):
    key = ", ".join(natural_key(two_tenants, table))
    rows = two_tenants.execute(f"SELECT business_id, {key} FROM {table} ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == [A, B]
    assert rows[0][1:] == rows[1][1:]


def test_deleting_a_device_cascades_to_every_child_table_of_that_tenant_only(two_tenants):
    b_before = tenant_rows(two_tenants, B)
    assert all(count(two_tenants, t, A) > 0 for t in DEVICE_CHILDREN)
    load_queries()["deleteDeviceQuery"].run(two_tenants, params(A))
    assert {t: count(two_tenants, t, A) for t in DEVICE_CHILDREN + ("whatsmeow_device",)} == {
        t: 0 for t in DEVICE_CHILDREN + ("whatsmeow_device",)
    }
    assert tenant_rows(two_tenants, B) == b_before
    # The LID map belongs to the tenant, not to a device, so it survives.
    assert count(two_tenants, "whatsmeow_lid_map", A) == 1


def test_deleting_an_app_state_version_cascades_to_its_mutation_macs_only(two_tenants):
    load_queries()["deleteAppStateVersionQuery"].run(two_tenants, params(A))
    assert count(two_tenants, "whatsmeow_app_state_mutation_macs", A) == 0
    assert count(two_tenants, "whatsmeow_app_state_mutation_macs", B) == 1


DEVICE_COLUMN = {t: "jid" if t in ("whatsmeow_pre_keys", "whatsmeow_app_state_sync_keys",
                                    "whatsmeow_app_state_version", "whatsmeow_app_state_mutation_macs")
                 else "our_jid" for t in DEVICE_CHILDREN}


def test_renaming_a_device_jid_cascades_within_the_tenant(two_tenants):
    b_before = tenant_rows(two_tenants, B)
    two_tenants.execute(
        "UPDATE whatsmeow_device SET jid = '15550001111:9@s.whatsapp.net' WHERE business_id = %s AND jid = %s",
        (A, OUR_JID),
    )
    left_behind = {
        t: two_tenants.execute(
            f"SELECT count(*) FROM {t} WHERE business_id = %s AND {column} <> '15550001111:9@s.whatsapp.net'", (A,)
        ).fetchone()[0]
        for t, column in DEVICE_COLUMN.items()
    }
    assert left_behind == {t: 0 for t in DEVICE_CHILDREN}
    assert all(count(two_tenants, t, A) == 1 for t in DEVICE_CHILDREN)
    assert tenant_rows(two_tenants, B) == b_before


@pytest.mark.parametrize("table", DEVICE_CHILDREN)
def test_a_row_pointing_at_another_tenants_device_is_rejected(db, table):
    insert_device(db, B)
    queries = load_queries()
    writer = next(
        q for name, q in queries.items()
        if q.verb == "INSERT" and f"INSERT INTO {table} " in q.sql and "SELECT" not in q.sql
    )
    if table == "whatsmeow_app_state_mutation_macs":
        # Its parent is B's app state version, which tenant A cannot reference either.
        queries["putAppStateVersionQuery"].run(db, params(B))
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        writer.run(db, params(A))


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_invalid_business_ids_are_rejected_by_every_table(db, table):
    writer = next(
        q for q in load_queries().values()
        if q.verb == "INSERT" and f"INSERT INTO {table} " in q.sql and "SELECT" not in q.sql
    )
    rejected = {}
    for bad in BAD_BUSINESS_IDS:
        try:
            with db.transaction():
                writer.run(db, {**params(A), "business_id": bad})
        except psycopg.errors.CheckViolation as exc:
            rejected[bad] = exc.diag.constraint_name
    assert rejected == {bad: f"{table}_business_id_check" for bad in BAD_BUSINESS_IDS}


@pytest.mark.parametrize("good", ["a", "x" * 64, "Tenant_01-eu", "0"])
def test_valid_business_ids_are_accepted(db, good):
    insert_device(db, good)
    assert count(db, "whatsmeow_device", good) == 1


def test_null_business_id_is_rejected(db):
    with pytest.raises(psycopg.errors.NotNullViolation):
        insert_device(db, None)
