"""v17: upstream's deletes and migrations by peer-id prefix read one key range, and v16 stores upgrade in place."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql
from rls_helpers import APP, plan_nodes, set_role, tenant
from store import LATEST_COMPAT, LATEST_VERSION, OUR_JID, UPSTREAM_VERSION, insert_device, load_queries, seed
from upstream import digests, make_store, upstream_columns

from applier import catalog, rls
from applier.steps import load_steps
from applier.upgrade import execute, read_state, transactions, upgrade

# The catalogue queries that select by `LIKE 'prefix%'`, and the column they match.
PREFIX_QUERIES = {
    "deleteAllIdentitiesQuery": "their_id",
    "deleteAllIdentityKeysQuery": "their_id",
    "migratePNToLIDIdentityKeysQuery": "their_id",
    "deleteAllSessionsQuery": "their_id",
    "migratePNToLIDSessionsQuery": "their_id",
    "deleteAllSenderKeysQuery": "sender_id",
    "migratePNToLIDSenderKeysQuery": "sender_id",
}
PEERS = 2000  # per device, three devices of each peer: 6,000 rows per table and tenant

# Peer rows of both tenants' device OUR_JID; the devices come from the catalogue's insert.
_FILL = """
INSERT INTO whatsmeow_identity_keys (business_id, our_jid, their_id, identity)
SELECT b, %(jid)s, (10000 + p) || ':' || d, decode(repeat('cd', 32), 'hex')
FROM unnest(ARRAY['acme', 'globex']) AS b, generate_series(1, %(peers)s) AS p, generate_series(0, 2) AS d;

INSERT INTO whatsmeow_sessions (business_id, our_jid, their_id, session)
SELECT b, %(jid)s, (10000 + p) || ':' || d, decode(repeat('ef', 200), 'hex')
FROM unnest(ARRAY['acme', 'globex']) AS b, generate_series(1, %(peers)s) AS p, generate_series(0, 2) AS d;

INSERT INTO whatsmeow_sender_keys (business_id, our_jid, chat_id, sender_id, sender_key)
SELECT b, %(jid)s, 'group' || (p %% 50) || '@g.us', (10000 + p) || ':' || d, decode(repeat('01', 100), 'hex')
FROM unnest(ARRAY['acme', 'globex']) AS b, generate_series(1, %(peers)s) AS p, generate_series(0, 2) AS d;
"""


@pytest.fixture
def many_peers(db):
    for business_id in ("acme", "globex"):
        insert_device(db, business_id)
    for statement in _FILL.split(";\n\n"):
        db.execute(statement, {"jid": OUR_JID, "peers": PEERS})
    db.execute("ANALYZE")
    return db


def _values(peer: int) -> dict:
    return {"business_id": "acme", "our_jid": OUR_JID, "their_id_pattern": f"{peer}:%",
            "pn_signal": str(peer), "lid_signal": f"9{peer}"}


def _plan_kept_by_a_prepared_statement(conn: psycopg.Connection, name: str) -> dict:
    """EXPLAIN ANALYZE of the query's eleventh execution as one prepared statement."""
    query = load_queries()[name]
    conn.execute(sql.SQL("PREPARE prefixed AS {}").format(sql.SQL(query.sql)))
    # After five executions PostgreSQL may switch a prepared statement to a generic plan,
    # which cannot turn a parameter into a range; the custom plan must stay the cheaper one.
    for peer in range(10001, 10011):
        args = sql.SQL(", ").join(sql.Literal(_values(peer)[p]) for p in query.params)
        conn.execute(sql.SQL("EXECUTE prefixed({})").format(args))
    args = sql.SQL(", ").join(sql.Literal(_values(10500)[p]) for p in query.params)
    return conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE prefixed({})").format(
        args)).fetchone()[0][0]["Plan"]


def _assert_one_key_range(plan: dict, column: str) -> None:
    conditions = [node.get("Index Cond", "") for node in plan_nodes(plan)]
    assert any(f"{column} >= '10500:'" in c and f"{column} < '10500;'" in c and "business_id" in c
               for c in conditions), json.dumps(plan, indent=1)
    # Three rows of 6,000 per tenant: a handful of pages, not the device's whole key range.
    buffers = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
    assert buffers < 40, json.dumps(plan, indent=1)


@pytest.mark.parametrize("name", sorted(PREFIX_QUERIES))
def test_prefix_query_reads_one_key_range_in_the_plan_a_prepared_statement_keeps(many_peers, name):
    _assert_one_key_range(_plan_kept_by_a_prepared_statement(many_peers, name), PREFIX_QUERIES[name])


@pytest.mark.parametrize("name", sorted(PREFIX_QUERIES))
def test_prefix_query_reads_one_key_range_under_row_level_security(many_peers, name):
    conn = many_peers
    if conn.info.server_version < 150000:
        pytest.skip("starts_with() gives a btree range from PostgreSQL 15 on; before, LIKE alone does without RLS")
    rls.create_roles(conn)
    rls.enable(conn)
    set_role(conn, APP)
    with tenant(conn, "acme"):
        plan = _plan_kept_by_a_prepared_statement(conn, name)
    _assert_one_key_range(plan, PREFIX_QUERIES[name])


def test_prefix_deletes_remove_exactly_the_peers_rows_of_the_one_tenant(many_peers):
    queries, conn = load_queries(), many_peers
    for name in ("deleteAllSessionsQuery", "deleteAllIdentitiesQuery", "deleteAllSenderKeysQuery"):
        assert queries[name].run(conn, _values(10042)).rowcount == 3
    for table, column in (("whatsmeow_sessions", "their_id"), ("whatsmeow_identity_keys", "their_id"),
                          ("whatsmeow_sender_keys", "sender_id")):
        counts = conn.execute(sql.SQL("SELECT business_id, count(*) FROM {} WHERE {} LIKE '10042:%' "
                                      "GROUP BY 1 ORDER BY 1").format(sql.Identifier(table), sql.Identifier(column)))
        assert counts.fetchall() == [("globex", 3)]
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0] == (
            2 * 3 * PEERS - 3)


def test_only_the_peer_id_columns_change_collation(db):
    collated = db.execute(
        """
        SELECT c.relname::TEXT, a.attname::TEXT, coll.collname::TEXT
        FROM pg_attribute AS a
        JOIN pg_class AS c ON c.oid = a.attrelid
        JOIN pg_collation AS coll ON coll.oid = a.attcollation
        WHERE c.relname LIKE 'whatsmeow\\_%' AND c.relkind = 'r' AND a.attnum > 0 AND a.attcollation <> 100
        """
    ).fetchall()
    assert set(collated) == {("whatsmeow_identity_keys", "their_id", "C"), ("whatsmeow_sessions", "their_id", "C"),
                             ("whatsmeow_sender_keys", "sender_id", "C")}


def test_a_v16_store_of_two_tenants_upgrades_to_the_latest_keeping_every_row(empty_dsn, fresh_catalog):
    make_store(empty_dsn, UPSTREAM_VERSION)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        # v16 as it was released: the conversion step alone.
        execute(conn, transactions(read_state(conn), [load_steps()[15]], "acme"), quiet=True)
        assert conn.execute("SELECT version FROM whatsmeow_version").fetchone() == (16,)
        seed(conn, "globex")
        columns = upstream_columns(conn)  # every column now, business_id included
        before = digests(conn, columns)
        assert before["whatsmeow_sender_keys"][0] > 1 and before["whatsmeow_sessions"][0] > 1

        applied = upgrade(conn, quiet=True)

        assert [step.to_version for step in applied] == [17, *range(1000, LATEST_VERSION + 1)]
        assert digests(conn, columns) == before
        assert catalog.differences(fresh_catalog, catalog.snapshot(conn)) == []
        assert conn.execute("SELECT version, compat FROM whatsmeow_version").fetchall() == [(LATEST_VERSION, LATEST_COMPAT)]
