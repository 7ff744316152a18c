"""Row-level security: the tenant boundary as the application sees it.

Every boundary test runs twice: as the application role with row-level security
enabled, and as the tables' (non-superuser) owner with it forced. A superuser
bypasses row-level security, so superuser connections only seed data and look at
every row for comparison. The module's databases are shared and every test
rolls back what it writes.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from rls_helpers import (
    APP,
    OWNER,
    POLICY,
    as_superuser,
    counts,
    index_keys,
    key_shortfalls,
    load_bulk,
    plan_nodes,
    plan_problems,
    row_security,
    set_role,
    sqlstate_of,
    tenant,
)
from runners import psql as run_psql
from scratch import scratch_database
from store import (
    DEVICE_CHILDREN,
    OUR_JID,
    TENANT_TABLES,
    columns,
    load_queries,
    params,
    seed,
    tenant_rows,
)

from applier import rls
from applier.cli import main
from applier.errors import ApplierError

QUERIES = load_queries()
A, B = "tenant-a", "tenant_b"
RLS_DIR = rls.RLS_DIR
INSUFFICIENT_PRIVILEGE = "42501"


# ---------------------------------------------------------------------------
# Fixtures: one database per variant for the whole module
# ---------------------------------------------------------------------------


def _two_tenant_store(cluster, template, *, force: bool):
    with scratch_database(cluster, template) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            seed(conn, A)
            seed(conn, B)
            rls.create_roles(conn)
            rls.enable(conn, force=force)
        yield dsn


@pytest.fixture(scope="module")
def enabled_dsn(pg_cluster, template_db):
    yield from _two_tenant_store(pg_cluster, template_db, force=False)


@pytest.fixture(scope="module")
def forced_dsn(pg_cluster, template_db):
    yield from _two_tenant_store(pg_cluster, template_db, force=True)


VARIANTS = {"app": ("enabled_dsn", APP), "owner": ("forced_dsn", OWNER)}


@pytest.fixture(params=sorted(VARIANTS))
def conn(request):
    """An autocommit connection acting as the application role (RLS enabled) or as the owner (RLS forced)."""
    fixture, role = VARIANTS[request.param]
    with psycopg.connect(request.getfixturevalue(fixture), autocommit=True) as connection:
        set_role(connection, role)
        acting = connection.execute("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        assert acting.fetchone() == (role, False, False)
        yield connection


@pytest.fixture
def app_conn(enabled_dsn):
    with psycopg.connect(enabled_dsn, autocommit=True) as connection:
        set_role(connection, APP)
        yield connection


@pytest.fixture
def owner_conn(forced_dsn):
    with psycopg.connect(forced_dsn, autocommit=True) as connection:
        set_role(connection, OWNER)
        yield connection


def all_rows(conn, business_id) -> dict[str, list[tuple]]:
    with as_superuser(conn):
        return tenant_rows(conn, business_id)


# ---------------------------------------------------------------------------
# The tenant context
# ---------------------------------------------------------------------------


def test_without_a_tenant_every_table_reads_as_empty(conn):
    with tenant(conn, None):
        assert counts(conn) == {table: 0 for table in TENANT_TABLES}
        with as_superuser(conn):
            assert all(counts(conn).values()), "the store holds rows in every table, so the zeros mean something"


def test_tenant_context_ends_with_its_transaction(conn):
    with tenant(conn, A, commit=True):
        assert all(counts(conn).values())
    assert conn.execute("SELECT current_setting('app.current_business_id', TRUE)").fetchone()[0] in ("", None)
    assert counts(conn) == {table: 0 for table in TENANT_TABLES}
    with tenant(conn, None):
        assert counts(conn) == {table: 0 for table in TENANT_TABLES}


def test_tenant_set_in_autocommit_is_gone_by_the_next_statement(conn):
    conn.execute("SELECT whatsmeow_set_tenant(%s)", (A,))
    assert counts(conn) == {table: 0 for table in TENANT_TABLES}


@pytest.mark.parametrize(
    "value",
    ["", "' OR '1'='1", "a" * 65, "tenant a", "tenänt", "tenant-a\n", "tenant-a;", None],
    ids=["empty", "injection", "65-chars", "space", "non-ascii", "newline", "semicolon", "null"],
)
def test_set_tenant_rejects_an_invalid_business_id_and_sets_nothing(app_conn, value):
    with tenant(app_conn, None):
        with pytest.raises(psycopg.Error) as raised:
            with app_conn.transaction():
                app_conn.execute("SELECT whatsmeow_set_tenant(%s)", (value,))
        assert raised.value.sqlstate == "22023"
        assert raised.value.diag.message_primary.startswith("invalid business_id ")
        assert "must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -" in raised.value.diag.message_primary
        assert counts(app_conn) == {table: 0 for table in TENANT_TABLES}


@pytest.mark.parametrize(
    "value", ["", "' OR '1'='1", f"{A}' OR 'x'='x", A], ids=["empty", "injection", "quoted", "valid-tenant"]
)
def test_a_setting_made_without_set_tenant_matches_no_rows(conn, value):
    with tenant(conn, None):
        conn.execute("SELECT set_config('app.current_business_id', %s, TRUE)", (value,))
        assert counts(conn) == {table: 0 for table in TENANT_TABLES}


def test_a_session_level_tenant_left_on_the_connection_is_not_honoured(conn):
    # The seed guide's `SET app.current_business_id = ...`, a debugging session,
    # or an older service: a pooled connection keeps it for every later client.
    conn.execute(sql.SQL("SET app.current_business_id = {}").format(sql.Literal(A)))
    try:
        assert counts(conn) == {table: 0 for table in TENANT_TABLES}
        with tenant(conn, None):
            assert counts(conn) == {table: 0 for table in TENANT_TABLES}
        with tenant(conn, B):
            assert {row[0] for row in conn.execute("SELECT business_id FROM whatsmeow_sessions")} == {B}
    finally:
        conn.execute("RESET app.current_business_id")


def test_a_transaction_stamp_copied_from_an_earlier_transaction_is_not_honoured(conn):
    with tenant(conn, A):
        stamp = conn.execute("SELECT current_setting('app.current_business_id_xact')").fetchone()[0]
    conn.execute(sql.SQL("SET app.current_business_id = {}").format(sql.Literal(A)))
    conn.execute(sql.SQL("SET app.current_business_id_xact = {}").format(sql.Literal(stamp)))
    try:
        with tenant(conn, None):
            assert counts(conn) == {table: 0 for table in TENANT_TABLES}
    finally:
        conn.execute("RESET app.current_business_id")
        conn.execute("RESET app.current_business_id_xact")


def test_a_second_tenant_in_the_same_transaction_is_refused_and_the_first_stays(conn):
    with tenant(conn, A):
        conn.execute("SELECT whatsmeow_set_tenant(%s)", (A,))  # the same tenant again is fine
        with pytest.raises(psycopg.Error) as raised:
            with conn.transaction():
                conn.execute("SELECT whatsmeow_set_tenant(%s)", (B,))
        assert raised.value.sqlstate == "25000"
        assert raised.value.diag.message_primary == (
            f'this transaction already belongs to tenant "{A}"; it cannot switch to "{B}"'
        )
        assert {row[0] for row in conn.execute("SELECT business_id FROM whatsmeow_sessions")} == {A}


# What SQL running as the application login can do to its own transaction's context. The stamp and the
# one-tenant rule keep values left on a connection out, and keep code that names its tenant through
# whatsmeow_set_tenant from mixing tenants by mistake; they are no barrier against the login itself,
# which may name any tenant anyway (docs/threat-model.md).
STAMP = "encode(timestamptz_send(now()), 'hex')"


def sessions_of(conn) -> set[str]:
    return {row[0] for row in conn.execute("SELECT business_id FROM whatsmeow_sessions")}


def test_the_application_can_compute_the_stamp_and_name_a_tenant_without_set_tenant(conn):
    with tenant(conn, None):
        conn.execute(f"SELECT set_config('app.current_business_id', %s, TRUE), "
                     f"set_config('app.current_business_id_xact', {STAMP}, TRUE)", (B,))
        assert sessions_of(conn) == {B}
    with tenant(conn, None):
        assert sessions_of(conn) == set()


def test_set_config_switches_a_transaction_that_named_a_tenant_to_another(conn):
    with tenant(conn, A):
        assert sessions_of(conn) == {A}
        conn.execute("SELECT set_config('app.current_business_id', %s, TRUE)", (B,))
        assert sessions_of(conn) == {B}


def test_set_config_in_a_sub_select_switches_the_tenant_within_one_statement(conn):
    with tenant(conn, A):
        first, switched, second = conn.execute(
            "SELECT (SELECT array_agg(DISTINCT business_id) FROM whatsmeow_sessions), "
            "(SELECT set_config('app.current_business_id', %s, TRUE)), "
            "(SELECT array_agg(DISTINCT business_id) FROM whatsmeow_sessions)", (B,)
        ).fetchone()
        assert (first, switched, second) == ([A], B, [B])


def test_after_rollback_to_savepoint_the_transaction_may_name_a_second_tenant(conn):
    with tenant(conn, None):
        with conn.transaction(force_rollback=True):
            conn.execute("SELECT whatsmeow_set_tenant(%s)", (A,))
            assert sessions_of(conn) == {A}
        conn.execute("SELECT whatsmeow_set_tenant(%s)", (B,))
        assert sessions_of(conn) == {B}


def test_a_context_the_application_set_itself_ends_with_its_transaction(conn):
    with tenant(conn, None, commit=True):
        conn.execute(f"SELECT set_config('app.current_business_id', %s, TRUE), "
                     f"set_config('app.current_business_id_xact', {STAMP}, TRUE)", (B,))
    with tenant(conn, None):
        assert conn.execute("SELECT whatsmeow_current_tenant()").fetchone()[0] is None
        assert sessions_of(conn) == set()


def test_a_session_level_stamp_of_the_current_transaction_is_gone_with_it(conn):
    # SET (not SET LOCAL) of both settings, with the stamp of the transaction it runs in: the closest a
    # client can come to leaving a tenant for the next client of its connection. Only a transaction that
    # starts in the very microsecond the stamp names would honour it.
    with tenant(conn, None, commit=True):
        conn.execute(f"SELECT set_config('app.current_business_id', %s, FALSE), "
                     f"set_config('app.current_business_id_xact', {STAMP}, FALSE)", (B,))
        assert sessions_of(conn) == {B}
    try:
        with tenant(conn, None):
            assert sessions_of(conn) == set()
        with tenant(conn, A):
            assert sessions_of(conn) == {A}
    finally:
        conn.execute("RESET app.current_business_id")
        conn.execute("RESET app.current_business_id_xact")


def test_whatever_context_it_sets_the_application_writes_only_the_tenant_it_reads(app_conn):
    with tenant(app_conn, A):
        app_conn.execute("SELECT set_config('app.current_business_id', %s, TRUE)", (B,))
        assert sqlstate_of(app_conn, "UPDATE whatsmeow_sessions SET business_id = %s", (A,)) == INSUFFICIENT_PRIVILEGE
        assert sqlstate_of(app_conn, "TRUNCATE whatsmeow_sessions") == INSUFFICIENT_PRIVILEGE


def test_the_application_role_may_create_no_objects(app_conn):
    for statement in ("CREATE TEMP TABLE whatsmeow_sessions (LIKE public.whatsmeow_sessions)",
                      "CREATE FUNCTION public.format(TEXT, TEXT) RETURNS TEXT LANGUAGE sql AS 'SELECT $2'",
                      "CREATE TABLE public.planted (x INT)"):
        assert sqlstate_of(app_conn, statement) == INSUFFICIENT_PRIVILEGE, statement


# ---------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_tenant_b_cannot_read_tenant_a_rows(conn, table):
    expected = all_rows(conn, B)[table]
    with tenant(conn, B):
        seen = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY 1, 2, 3").format(sql.Identifier(table))).fetchall()
    assert seen and seen == expected
    assert {row[0] for row in seen} == {B}


def test_query_filtered_on_another_tenant_than_the_context_returns_nothing(conn):
    with tenant(conn, A):
        assert QUERIES["getAllDevicesQuery"].run(conn, params(B)).fetchall() == []
        with as_superuser(conn):
            assert QUERIES["getAllDevicesQuery"].run(conn, params(B)).fetchall()


def test_leaky_function_never_receives_another_tenants_values(conn):
    notices = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary))
    # The application may not create functions (roles.sql takes CREATE and TEMPORARY
    # away), so an administrator's careless one stands in for a planted one.
    with as_superuser(conn):
        # Cheap on purpose, so the planner would love to run it before anything else.
        conn.execute(
            "CREATE FUNCTION leak(TEXT) RETURNS BOOLEAN LANGUAGE plpgsql COST 0.0000001 "
            "AS $$ BEGIN RAISE NOTICE 'leak:%', $1; RETURN TRUE; END $$"
        )
    try:
        with tenant(conn, A):
            for table in TENANT_TABLES:
                found = conn.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE leak(business_id)").format(sql.Identifier(table))
                ).fetchone()[0]
                assert found > 0
    finally:
        with as_superuser(conn):
            conn.execute("DROP FUNCTION leak(TEXT)")
    assert set(notices) == {f"leak:{A}"}


def test_statement_prepared_for_tenant_a_answers_for_tenant_b(conn):
    conn.execute("PREPARE sessions_of_the_tenant AS SELECT business_id, their_id FROM whatsmeow_sessions")
    try:
        # Six runs, so PostgreSQL may switch to a cached generic plan.
        for _ in range(6):
            with tenant(conn, A, commit=True):
                assert {row[0] for row in conn.execute("EXECUTE sessions_of_the_tenant")} == {A}
        with tenant(conn, B, commit=True):
            assert conn.execute("EXECUTE sessions_of_the_tenant").fetchall() == [
                (row[0], row[2]) for row in all_rows(conn, B)["whatsmeow_sessions"]
            ]
        assert conn.execute("EXECUTE sessions_of_the_tenant").fetchall() == []
    finally:
        conn.execute("DEALLOCATE sessions_of_the_tenant")


def test_copy_to_stdout_shows_only_the_tenants_rows(conn):
    expected = all_rows(conn, A)
    with tenant(conn, A):
        for table in TENANT_TABLES:
            with conn.cursor().copy(sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(table))) as copy:
                whole = [row[0] for row in copy.rows()]
            query = sql.SQL("COPY (SELECT business_id FROM {}) TO STDOUT").format(sql.Identifier(table))
            with conn.cursor().copy(query) as copy:
                selected = [row[0] for row in copy.rows()]
            assert whole == selected == [A] * len(expected[table]), table
            assert whole


def test_copy_from_is_refused_under_row_level_security(conn):
    with tenant(conn, A):
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            with conn.transaction():
                with conn.cursor().copy("COPY whatsmeow_lid_map FROM STDIN") as copy:
                    copy.write_row((A, "1", "2"))


def test_cursor_fetches_only_the_tenants_rows(conn):
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}, business_id FROM {}").format(sql.Literal(table), sql.Identifier(table))
        for table in TENANT_TABLES
    )
    expected = sorted((table, A) for table, rows in all_rows(conn, A).items() for _ in rows)
    with tenant(conn, A):
        cursor = conn.cursor(name="every_table")
        cursor.execute(union)
        fetched = []
        while batch := cursor.fetchmany(3):
            fetched += batch
        cursor.close()
    assert sorted(fetched) == expected


# ---------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------


def test_tenant_a_cannot_insert_rows_for_tenant_b(conn):
    with tenant(conn, A):
        refused = {}
        for table in TENANT_TABLES:
            names = columns(conn, table)
            values = [sql.Literal(B) if name == "business_id" else sql.Identifier(name) for name in names]
            refused[table] = sqlstate_of(
                conn,
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names)),
                    sql.SQL(", ").join(values), sql.Identifier(table),
                ),
            )
    assert refused == {table: INSUFFICIENT_PRIVILEGE for table in TENANT_TABLES}


def test_tenant_a_cannot_move_its_rows_to_tenant_b(conn):
    with tenant(conn, A):
        refused = {
            table: sqlstate_of(
                conn, sql.SQL("UPDATE {} SET business_id = %s").format(sql.Identifier(table)), (B,)
            )
            for table in TENANT_TABLES
        }
    assert refused == {table: INSUFFICIENT_PRIVILEGE for table in TENANT_TABLES}


def test_updates_and_deletes_aimed_at_tenant_b_touch_nothing(conn):
    before = all_rows(conn, B)
    with tenant(conn, A):
        touched = {}
        for table in TENANT_TABLES:
            name = sql.Identifier(table)
            update = sql.SQL("UPDATE {} SET business_id = business_id WHERE business_id = %s").format(name)
            updated = conn.execute(update, (B,))
            deleted = conn.execute(sql.SQL("DELETE FROM {} WHERE business_id <> %s").format(name), (A,))
            touched[table] = (updated.rowcount, deleted.rowcount)
        assert touched == {table: (0, 0) for table in TENANT_TABLES}
        assert all_rows(conn, B) == before


def test_upsert_on_a_key_only_tenant_b_has_creates_tenant_a_row_and_leaves_b_untouched(conn):
    key = {"our_jid": OUR_JID, "their_id": "only-b:1"}
    with tenant(conn, A):
        with as_superuser(conn):
            QUERIES["putSessionQuery"].run(conn, {**params(B), **key, "session": b"B's own"})
        cur = QUERIES["putSessionQuery"].run(conn, {**params(A), **key, "session": b"A's new"})
        assert cur.rowcount == 1
        with as_superuser(conn):
            rows = conn.execute(
                "SELECT business_id, session FROM whatsmeow_sessions WHERE our_jid = %s AND their_id = %s ORDER BY 1",
                (OUR_JID, key["their_id"]),
            ).fetchall()
    assert rows == [(A, b"A's new"), (B, b"B's own")]


def test_returning_shows_only_the_tenants_rows(conn):
    expected = {table: len(rows) for table, rows in all_rows(conn, A).items()}
    with tenant(conn, A):
        returned = {}
        for table in TENANT_TABLES:
            statement = sql.SQL("UPDATE {} SET business_id = business_id RETURNING business_id")
            returned[table] = [row[0] for row in conn.execute(statement.format(sql.Identifier(table)))]
    assert {table: len(rows) for table, rows in returned.items()} == expected
    assert {value for rows in returned.values() for value in rows} == {A}


def test_deleting_a_tenants_device_cascades_only_within_that_tenant(conn):
    b_before = all_rows(conn, B)
    with tenant(conn, A):
        # No business_id filter: the policy alone keeps B's device with the same JID out of reach.
        assert conn.execute("DELETE FROM whatsmeow_device WHERE jid = %s", (OUR_JID,)).rowcount == 1
        a_after = all_rows(conn, A)
        assert all_rows(conn, B) == b_before
    assert {table: a_after[table] for table in ("whatsmeow_device", *DEVICE_CHILDREN)} == {
        table: [] for table in ("whatsmeow_device", *DEVICE_CHILDREN)
    }
    assert a_after["whatsmeow_lid_map"], "the LID map hangs off no device and stays"


def test_app_role_cannot_truncate_any_table(app_conn):
    with tenant(app_conn, A):
        refused = {
            table: sqlstate_of(app_conn, sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
            for table in TENANT_TABLES
        }
    assert refused == {table: INSUFFICIENT_PRIVILEGE for table in TENANT_TABLES}


def test_forced_rls_does_not_stop_the_owner_truncating_every_tenant(owner_conn):
    # The limit of FORCE: TRUNCATE ignores row-level security, which is why the
    # application should connect as its own role rather than as the owner.
    with tenant(owner_conn, A):
        owner_conn.execute("TRUNCATE whatsmeow_lid_map")
        assert all_rows(owner_conn, B)["whatsmeow_lid_map"] == []


def test_app_role_reads_the_version_but_cannot_change_it(app_conn):
    with tenant(app_conn, A):
        assert app_conn.execute("SELECT version FROM whatsmeow_version").fetchone()[0] > 0
        assert sqlstate_of(app_conn, "UPDATE whatsmeow_version SET version = 0") == INSUFFICIENT_PRIVILEGE


# ---------------------------------------------------------------------------
# The query catalogue
# ---------------------------------------------------------------------------


def _catalogue_values(name: str) -> dict:
    query = QUERIES[name]
    if query.verb in ("SELECT", "DELETE", "UPDATE"):
        return params(A)
    values = params(A, revision=1)
    if name == "putLIDMappingQuery":
        values["pn"] = "15550009999"  # the same mapping again is skipped by design
    return values


def _outcome(conn, name: str, business_id: str | None):
    """What a catalogue query returns and leaves behind, run as a superuser (None) or as the tenant."""
    with conn.transaction(force_rollback=True):
        if business_id is None:
            conn.execute("RESET ROLE")  # undone by the rollback
        else:
            conn.execute("SELECT whatsmeow_set_tenant(%s)", (business_id,))
        cur = QUERIES[name].run(conn, _catalogue_values(name))
        result = (cur.fetchall() if cur.description else None, cur.rowcount)
        conn.execute("RESET ROLE")
        return result, tenant_rows(conn, A), tenant_rows(conn, B)


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_catalogue_query_answers_under_rls_exactly_as_without(conn, name):
    under_rls = _outcome(conn, name, A)
    without = _outcome(conn, name, None)
    assert under_rls == without
    (rows, rowcount), _, _ = without
    assert rows or rowcount > 0 or name == "putMsgSecret", f"{name} found or touched nothing"


# ---------------------------------------------------------------------------
# Plans: realistic statistics, then every catalogue query as the application role
# ---------------------------------------------------------------------------

# Two shapes of a shared store. Many tenants with a few dozen rows each: with
# only a handful of tenants each one holds a large share of every table, and a
# sequential scan is then the right plan whether or not RLS is on. And a few
# tenants whose device holds thousands of peers: there a scan that uses only part
# of the key the query names reads the device's rows, which is what a plan that
# stops short looks like at scale (PostgreSQL 15.20 planned two catalogue queries
# that way under the policy, and only with statistics like these).
SHAPES = {
    "many-tenants": ([A, B] + [f"bulk-{n:04d}" for n in range(298)], 20),
    "large-devices": ([A, B, "bulk-0000", "bulk-0001"], 2000),
}
PLANNED = sorted(name for name, q in QUERIES.items() if q.verb in ("SELECT", "UPDATE", "DELETE") or "SELECT" in q.sql)


@dataclass
class Planner:
    conn: psycopg.Connection
    shape: str
    indexes: dict[str, dict[str, list[str]]]


@pytest.fixture(scope="module", params=sorted(SHAPES))
def planner(request, pg_cluster, template_db):
    tenants, rows = SHAPES[request.param]
    with scratch_database(pg_cluster, template_db) as dsn:
        with psycopg.connect(dsn, autocommit=True) as connection:
            seed(connection, A)
            seed(connection, B)
            load_bulk(connection, tenants, rows)
            rls.create_roles(connection)
            rls.enable(connection)
            indexes = index_keys(connection)
            set_role(connection, APP)
            yield Planner(connection, request.param, indexes)


def _explain(conn: psycopg.Connection, query, mode: str) -> dict:
    values = params(A)
    with tenant(conn, A):
        conn.execute(sql.SQL("SET LOCAL plan_cache_mode = {}").format(sql.SQL(mode)))
        conn.execute(sql.SQL("PREPARE planned AS {}").format(sql.SQL(query.sql)))
        try:
            args = sql.SQL(", ").join(sql.Literal(values[p]) for p in query.params)
            explained = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE planned({})").format(args))
            return explained.fetchone()[0][0]["Plan"]
        finally:
            conn.execute("DEALLOCATE planned")


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("name", PLANNED)
def test_catalogue_query_plan_uses_the_whole_key_it_names(planner, name, mode):
    plan = _explain(planner.conn, QUERIES[name], mode)
    if planner.shape == "many-tenants":
        # Every tenant is a small share of every table: each scan starts from business_id.
        problems, scans = plan_problems(plan)
        assert scans > 0 and problems == [], json.dumps(plan, indent=1)
    else:
        # A device holds thousands of rows: each index scan uses the whole key the query names.
        assert key_shortfalls(plan, planner.indexes) == [], json.dumps(plan, indent=1)


# Only where a tenant is a small share of the table: one holding a quarter of it
# is rightly read by a sequential scan.
@pytest.mark.parametrize("planner", ["many-tenants"], indirect=True)
@pytest.mark.parametrize("table", TENANT_TABLES)
def test_policy_alone_is_served_by_the_business_id_index(planner, table):
    # No business_id in the query: only the policy's comparison can narrow the scan.
    with tenant(planner.conn, A):
        explained = planner.conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) SELECT * FROM {}").format(sql.Identifier(table)))
        plan = explained.fetchone()[0][0]["Plan"]
    problems, scans = plan_problems(plan)
    conditions = [node.get("Index Cond", "") for node in plan_nodes(plan)]
    assert scans > 0 and problems == [], json.dumps(plan, indent=1)
    assert any("current_setting('app.current_business_id'" in condition for condition in conditions)


# ---------------------------------------------------------------------------
# enable, force, disable and roles: catalog state
# ---------------------------------------------------------------------------


def _policies_per_table(conn) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for table, policy in conn.execute("SELECT tablename, policyname FROM pg_policies ORDER BY 1, 2"):
        found.setdefault(table, []).append(policy)
    return found


def test_enable_disable_enable_leaves_exactly_one_policy_per_tenant_table(db):
    for action in (rls.enable, rls.enable, rls.disable, rls.disable, rls.enable):
        action(db)
    assert _policies_per_table(db) == {table: [POLICY] for table in TENANT_TABLES}
    assert [(s.table, s.enabled, s.forced, s.policy) for s in rls.read_status(db)] == [
        (table, True, False, True) for table in sorted(TENANT_TABLES)
    ]


def test_each_policy_is_the_tenant_function_written_out(db):
    # One definition of the tenant: the policies must mean what whatsmeow_current_tenant() returns.
    rls.enable(db)
    body = db.execute("SELECT prosrc FROM pg_proc WHERE oid = 'whatsmeow_current_tenant()'::regprocedure").fetchone()[0]
    db.execute(f"CREATE TEMPORARY VIEW tenant_body AS {body}")
    tenant = db.execute("SELECT pg_get_viewdef('tenant_body'::regclass)").fetchone()[0]
    expected = f"(business_id = {' '.join(tenant.split()).removeprefix('SELECT ').split(' AS ')[0]})"
    policies = db.execute("SELECT tablename, qual, with_check FROM pg_policies WHERE policyname = %s", (POLICY,))
    rows = policies.fetchall()
    assert len(rows) == len(TENANT_TABLES)
    for table, qual, with_check in rows:
        assert (" ".join(qual.split()), " ".join(with_check.split())) == (expected, expected), table
    assert "whatsmeow_current_tenant" not in expected and "app.current_business_id_xact" in expected


def test_disable_restores_the_catalog_state_from_before_enable(db):
    before = row_security(db)
    rls.enable(db, force=True)
    assert row_security(db) != before
    rls.disable(db)
    assert row_security(db) == before


def test_enable_keeps_force_and_force_needs_enable(db):
    with pytest.raises(ApplierError, match="row-level security is not enabled on"):
        rls.apply(db, (rls.FORCE,))
    assert not any(s.forced for s in rls.read_status(db))
    rls.enable(db, force=True)
    rls.enable(db)
    assert all(s.forced and s.covered for s in rls.read_status(db))


def test_enable_refuses_a_permissive_policy_that_would_widen_access(db):
    db.execute("CREATE POLICY everyone ON whatsmeow_sessions USING (TRUE)")
    with pytest.raises(ApplierError, match="whatsmeow_sessions has other permissive policies \\(everyone\\)"):
        rls.enable(db)
    assert not any(s.enabled for s in rls.read_status(db))
    db.execute("DROP POLICY everyone ON whatsmeow_sessions")
    db.execute("CREATE POLICY narrower ON whatsmeow_sessions AS RESTRICTIVE USING (session IS NOT NULL)")
    # A restrictive policy narrows, but runs as whoever reads: it stays once the owner allows it by name.
    with pytest.raises(ApplierError, match="policy narrower on whatsmeow_sessions \\(owned by postgres\\): restrictive"):
        rls.enable(db)
    db.execute("INSERT INTO whatsmeow_allowed_table_objects (table_name, kind, object_name, reason) "
               "VALUES ('whatsmeow_sessions', 'policy', 'narrower', 'sessions without state stay hidden')")
    rls.enable(db)
    assert _policies_per_table(db)["whatsmeow_sessions"] == ["narrower", POLICY]


def test_a_whatsmeow_table_someone_else_adds_is_neither_covered_nor_owned_nor_granted(db, make_role):
    # The package's tenant tables are its own list: a look-alike planted later (by an application login that
    # could CREATE in the schema) is left to its creator, never handed to the owner role or granted.
    rls.create_roles(db)
    rls.enable(db, force=True)
    planter = make_role()
    db.execute(f"GRANT CREATE ON SCHEMA public TO {planter}")
    db.execute(f"SET ROLE {planter}")
    db.execute("CREATE TABLE whatsmeow_later (business_id TEXT NOT NULL, note TEXT, PRIMARY KEY (business_id))")
    db.execute("RESET ROLE")
    assert rls.reapply_if_enabled(db) is True
    rls.create_roles(db)
    status = {s.table: s for s in rls.read_status(db)}
    assert "whatsmeow_later" not in status and len(status) == len(TENANT_TABLES)
    owner, privileges = db.execute(
        "SELECT relowner::regrole::text, has_table_privilege(%s, 'whatsmeow_later', 'SELECT') "
        "FROM pg_class WHERE relname = 'whatsmeow_later'", (APP,)).fetchone()
    assert (owner, privileges) == (planter, False)
    rls.disable(db)
    assert not any(s.enabled or s.forced or s.policy for s in rls.read_status(db))

def test_reapply_if_enabled_leaves_a_store_without_rls_alone(db):
    before = row_security(db)
    assert rls.reapply_if_enabled(db) is False
    assert row_security(db) == before


# ---------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------


def test_roles_give_the_app_exactly_dml_on_tenant_tables_and_no_way_around_rls(db):
    rls.create_roles(db)
    db.execute("GRANT TRUNCATE ON whatsmeow_sessions, whatsmeow_version TO whatsmeow_app")
    rls.create_roles(db)  # a re-run takes back what was granted by hand
    privileges = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
    check = "SELECT has_table_privilege(%s, %s, %s)"
    granted = {
        table: {p for p in privileges if db.execute(check, (APP, table, p)).fetchone()[0]}
        for table in (*TENANT_TABLES, "whatsmeow_version")
    }
    assert granted == {
        **{table: {"SELECT", "INSERT", "UPDATE", "DELETE"} for table in TENANT_TABLES},
        "whatsmeow_version": {"SELECT"},
    }
    role = db.execute(
        "SELECT rolsuper, rolbypassrls, rolcanlogin, pg_has_role(%s, %s, 'MEMBER') FROM pg_roles WHERE rolname = %s",
        (APP, OWNER, APP),
    ).fetchone()
    assert role == (False, False, False, False)
    owners = db.execute(
        "SELECT DISTINCT relowner::regrole::text FROM pg_class WHERE relname LIKE 'whatsmeow\\_%' AND relkind = 'r'"
    ).fetchall()
    assert owners == [(OWNER,)]
    # Granted by name, so it survives a REVOKE ... FROM PUBLIC by the DBA.
    grantees = db.execute(
        "SELECT a.grantee::regrole::text, a.privilege_type FROM pg_proc AS p, aclexplode(p.proacl) AS a "
        "WHERE p.oid = 'whatsmeow_set_tenant(text)'::regprocedure AND a.grantee <> 0 AND a.grantee <> p.proowner"
    ).fetchall()
    assert grantees == [(APP, "EXECUTE")]


def test_roles_refuse_an_app_role_that_would_bypass_rls(db):
    db.execute("DROP ROLE IF EXISTS rls_test_bypass")
    db.execute("CREATE ROLE rls_test_bypass BYPASSRLS")
    with pytest.raises(ApplierError, match="role rls_test_bypass bypasses row-level security"):
        rls.create_roles(db, app_role="rls_test_bypass")
    with pytest.raises(ApplierError, match="both whatsmeow_owner"):
        rls.create_roles(db, app_role=OWNER)
    with pytest.raises(ApplierError, match="longer than 63 bytes"):
        rls.create_roles(db, app_role="x" * 64)


# ---------------------------------------------------------------------------
# psql and the command line
# ---------------------------------------------------------------------------


def _psql(psql, dsn: str, *files: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_psql(psql, dsn, *(arg for name in files for arg in ("-f", str(RLS_DIR / name))), env=env)


def test_rls_files_run_twice_in_a_row_with_psql(psql, db_dsn):
    files = ("tenant-context.sql", "roles.sql", "enable.sql", "force.sql", "status.sql")
    first = _psql(psql, db_dsn, *files)
    assert first.returncode == 0
    assert "revoked TEMPORARY on database" in first.stderr
    assert all(" NOTICE:  " in line for line in first.stderr.splitlines()), first.stderr
    # Nothing is left to change, so the second run has nothing to say.
    assert (_psql(psql, db_dsn, *files).returncode, _psql(psql, db_dsn, *files).stderr) == (0, "")
    with psycopg.connect(db_dsn) as conn:
        assert all(s.forced and s.covered for s in rls.read_status(conn))
    for _ in range(2):
        result = _psql(psql, db_dsn, "disable.sql")
        assert (result.returncode, result.stderr) == (0, "")
    with psycopg.connect(db_dsn) as conn:
        assert not any(s.enabled or s.forced or s.policy for s in rls.read_status(conn))


def test_a_psql_file_that_fails_changes_nothing(psql, db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        # Refused only when the loop reaches whatsmeow_sessions, after earlier tables were done.
        conn.execute("CREATE POLICY everyone ON whatsmeow_sessions USING (TRUE)")
        before = row_security(conn)
        result = _psql(psql, db_dsn, "tenant-context.sql", "enable.sql")
        assert result.returncode == 3 and "whatsmeow_sessions has other permissive policies" in result.stderr
        assert row_security(conn) == before


def test_psql_takes_role_names_from_settings(psql, db_dsn):
    env = {"PGOPTIONS": "-c whatsmeow.app_role=rls_test_app -c whatsmeow.owner_role=rls_test_owner"}
    result = _psql(psql, db_dsn, "tenant-context.sql", "roles.sql", env=env)
    assert result.returncode == 0
    assert all(" NOTICE:  " in line for line in result.stderr.splitlines()), result.stderr
    with psycopg.connect(db_dsn) as conn:
        owner = conn.execute("SELECT relowner::regrole::text FROM pg_class WHERE relname = 'whatsmeow_device'")
        assert owner.fetchone()[0] == "rls_test_owner"
        assert conn.execute("SELECT has_table_privilege('rls_test_app', 'whatsmeow_device', 'DELETE')").fetchone()[0]


def test_cli_enables_forces_reports_and_disables(db_dsn, capsys):
    assert main(["rls", "enable", "--force", "--quiet", "--dsn", db_dsn]) == 0
    assert main(["rls", "status", "--json", "--dsn", db_dsn]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["total"], doc["covered"], doc["forced"]) == (len(TENANT_TABLES), len(TENANT_TABLES), len(TENANT_TABLES))
    assert {t["table"] for t in doc["tables"]} == set(TENANT_TABLES)
    assert main(["rls", "disable", "--quiet", "--dsn", db_dsn]) == 0
    assert main(["rls", "status", "--dsn", db_dsn, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"row-level security: off on all {len(TENANT_TABLES)} tenant tables" in out


def test_cli_refuses_to_enable_rls_on_an_empty_database(empty_dsn, capsys):
    assert main(["rls", "enable", "--quiet", "--dsn", empty_dsn]) == 2
    assert "run `upgrade` first" in capsys.readouterr().err
