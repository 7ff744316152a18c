"""The store on a real Citus cluster: a coordinator and two workers, installed and distributed as docs/citus.md says.

Three small clusters with shared_preload_libraries = citus start as the server's
OS user, each listening on a socket in its own folder, which is also the node
name Citus connects to. The store is installed on the coordinator with the
applier, the roles with rls/roles.sql, two tenants that share a device JID are
written through the query catalogue, schema/citus-distribute.sql distributes it
through psql as a login of the owner role, and row-level security is forced.

Where Citus is not installed (`bash .ci/citus` installs it into PostgreSQL 15)
the module is skipped with the reason; with WHATSMEOW_TENANCY_REQUIRE_CITUS=1,
as CI sets it, that is a failure instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from runners import applier
from runners import psql as run_psql
from store import (
    ADDED_COLUMNS,
    LATEST_VERSION,
    OUR_JID,
    TENANT_TABLES,
    UPSTREAM_VERSION,
    params,
    seed,
    superseded_history,
    tenant_rows,
)
from upstream import digests, make_store, upstream_columns

from applier.database import read_state
from applier.embedded import Cluster, find_bindir, server_user
from applier.queries import load_queries
from applier.steps import load_steps, plan
from applier.upgrade import execute, transactions

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "schema" / "citus-distribute.sql"
QUERIES = load_queries()
A, B = "acme", "globex"
DATABASE = "whatsmeow"
PORT = 5432
OWNER, APP = "whatsmeow_owner", "whatsmeow_app"
# Logins created as docs/row-level-security.md says, after rls/roles.sql: no settings of their own.
OPS_LOGIN, APP_LOGIN = "whatsmeow_ops", "whatsmeow_billing"
# Citus cannot plan these with their parameters unknown: they sit in sub-selects or INSERT ... SELECT.
GENERIC_PLAN_REFUSED = {
    "getManySessionQueryPostgres", "getMsgSecret", "getPrivacyToken",
    "migratePNToLIDSessionsQuery", "migratePNToLIDIdentityKeysQuery", "migratePNToLIDSenderKeysQuery",
}
FOREIGN_KEYS = 14
DEVICE_TRIGGERS = 4  # the tenant event log's, which the distribution script drops


def _citus_missing(bindir: Path) -> str | None:
    """Why Citus cannot run with these server binaries, or None: its control file is where the server looks."""
    pg_config = bindir / "pg_config"
    if pg_config.is_file():
        out = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True, check=False)
        sharedir = Path(out.stdout.strip())
    else:
        # Relocatable builds without pg_config keep share/ next to bin/.
        sharedir = bindir.parent / "share" / "postgresql"
    control = sharedir / "extension" / "citus.control"
    if not control.is_file():
        return f"Citus is not installed for the PostgreSQL in {bindir} (no {control}); bash .ci/citus installs it"
    return None


class CitusCluster:
    """A coordinator and two workers; dsn() reaches any node as any role."""

    def __init__(self, home: Path, bindir: Path):
        settings = {
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "shared_preload_libraries": "citus", "max_connections": "80",
            # Shard moves and splits copy rows with logical replication where every node allows it.
            "wal_level": "logical", "max_replication_slots": "16", "max_wal_senders": "16",
        }
        self.nodes = {name: Cluster(home / name, bindir, server_user(), dict(settings))
                      for name in ("coordinator", "worker1", "worker2")}
        # A shard split decodes changes with Citus's own output plugin, which PostgreSQL 15.19 and later take only
        # from this list; a move uses pgoutput.
        described = subprocess.run([str(bindir / "postgres"), "--describe-config"], capture_output=True, text=True,
                                   check=False).stdout
        trusted = {"output_plugin_libraries": "pgoutput, test_decoding, citus"} if re.search(
            r"^output_plugin_libraries\t", described, re.M) else {}
        for node in self.nodes.values():
            # How a node reaches itself, which a shard split does: its own socket, as the others reach it.
            node.settings.update(trusted, **{"citus.local_hostname": str(node.socketdir)})

    def dsn(self, node: str = "coordinator", user: str = "postgres", dbname: str = DATABASE) -> str:
        return f"host={self.nodes[node].socketdir} port={PORT} user={user} dbname={dbname}"

    def connect(self, node: str = "coordinator", user: str = "postgres", **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.dsn(node, user), autocommit=True, **kwargs)

    def create_database(self, dbname: str) -> str:
        """The database on every node with Citus in it, the workers registered: the coordinator's DSN."""
        for name in self.nodes:
            with psycopg.connect(self.dsn(name, dbname="postgres"), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {dbname}")
            with psycopg.connect(self.dsn(name, dbname=dbname), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION citus")
        with psycopg.connect(self.dsn(dbname=dbname), autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (str(self.nodes["coordinator"].socketdir), PORT))
            for name in ("worker1", "worker2"):
                conn.execute("SELECT citus_add_node(%s, %s)", (str(self.nodes[name].socketdir), PORT))
        return self.dsn(dbname=dbname)


def _check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr
    return result


def _distribute(psql_path: Path, dsn: str, *before: str) -> subprocess.CompletedProcess:
    return run_psql(psql_path, dsn, *before, "-f", str(SCRIPT))


@pytest.fixture(scope="session")
def citus():
    bindir = find_bindir()
    missing = _citus_missing(bindir)
    if missing:
        if os.environ.get("WHATSMEOW_TENANCY_REQUIRE_CITUS") == "1":
            pytest.fail(f"WHATSMEOW_TENANCY_REQUIRE_CITUS=1: {missing}")
        pytest.skip(missing)
    home = Path(tempfile.mkdtemp(prefix="whatsmeow-tenancy-citus-"))
    home.chmod(0o755)
    cluster = CitusCluster(home, bindir)
    try:
        for node in cluster.nodes.values():
            node.ensure_running()
        yield cluster
    finally:
        for node in cluster.nodes.values():
            node.stop()
        shutil.rmtree(home, ignore_errors=True)


def _install(citus: CitusCluster, dbname: str, build=None, tenants: tuple[str, ...] = (A, B)) -> dict:
    """A distributed store, as the operator steps of docs/citus.md build it; what each step said.

    `build(dsn)` installs the store (default: `upgrade`, the latest version); `tenants` are written
    through the catalogue."""
    psql_path = citus.nodes["coordinator"].bindir / "psql"
    dsn = citus.create_database(dbname)
    if build is None:
        _check(applier("upgrade", "--dsn", dsn))
    else:
        build(dsn)
    _check(applier("rls", "roles", "--dsn", dsn))
    with psycopg.connect(dsn, autocommit=True) as conn:
        for login, role in ((OPS_LOGIN, OWNER), (APP_LOGIN, APP)):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone():
                conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE {role}")
        for tenant in tenants:
            seed(conn, tenant)
        rows = {tenant: tenant_rows(conn, tenant) for tenant in tenants or (A,)}
    # As the NOLOGIN owner role: Citus's connections to the workers are refused, and nothing changes.
    as_owner_role = _distribute(psql_path, dsn, "-c", f"SET ROLE {OWNER}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        after_refusal = conn.execute("SELECT count(*) FROM pg_dist_partition").fetchone()[0]
    ops = citus.dsn(user=OPS_LOGIN, dbname=dbname)
    distributed = _check(_distribute(psql_path, ops))
    _check(applier("rls", "enable", "--force", "--dsn", ops))
    return {"dsn": dsn, "ops": ops, "psql": psql_path, "rows": rows, "as_owner_role": as_owner_role,
            "after_refusal": after_refusal, "distributed": distributed}


@pytest.fixture(scope="session")
def store(citus):
    return _install(citus, DATABASE)


@pytest.fixture
def su(citus, store):
    with citus.connect() as conn:
        yield conn


@pytest.fixture
def app(citus, store):
    """The application's login: a member of whatsmeow_app, as the docs create it, without role settings."""
    with citus.connect(user=APP_LOGIN) as conn:
        yield conn


def _task_counts(conn: psycopg.Connection, sql: str, values: list) -> list[int]:
    cur = psycopg.RawCursor(conn)
    cur.execute("EXPLAIN (COSTS OFF) " + sql, values)
    plan = "\n".join(row[0] for row in cur.fetchall())
    assert "Citus Adaptive" in plan, plan
    return [int(n) for n in re.findall(r"Task Count: (\d+)", plan)]


def _values(name: str, tenant: str) -> dict:
    """Reads and deletes aim at the seeded rows; inserts and upserts bring new payloads for the same keys."""
    query = QUERIES[name]
    if query.verb == "SELECT" or query.verb in ("DELETE", "UPDATE"):
        return params(tenant)
    values = params(tenant, revision=1)
    if name == "putLIDMappingQuery":
        values["pn"] = "15550009999"  # the same mapping again is skipped by design
    return values


def _comparable_rows(conn: psycopg.Connection, tenant: str) -> dict[str, list[tuple]]:
    """tenant_rows without the columns the multi-tenant line adds (a time of storing, which differs between
    two servers), in the order of the fresh install's columns."""
    rows = {}
    for table in TENANT_TABLES:
        columns = [name for (name,) in conn.execute(
            "SELECT attname::TEXT FROM pg_attribute WHERE attrelid = %s::REGCLASS AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum", (table,)) if (table, name) not in ADDED_COLUMNS]
        rows[table] = conn.execute(
            f"SELECT {', '.join(columns)} FROM {table} WHERE business_id = %s ORDER BY 1, 2, 3", (tenant,)
        ).fetchall()
    return rows


def _answers(conn: psycopg.Connection, *, tenant_context: bool, both_tenants: bool, prepare: bool = False,
             repeat: int = 1) -> dict[tuple[str, str], tuple]:
    """Every catalogue query for each tenant, each in a transaction that is rolled back: its rows and row count,
    and after a write the tenant's rows (and the other tenant's, where the reader may see them)."""
    answers = {}
    for name, query in sorted(QUERIES.items()):
        for tenant in (A, B):
            other = B if tenant == A else A
            with conn.transaction(force_rollback=True):
                if tenant_context:
                    conn.execute("SELECT whatsmeow_set_tenant(%s)", (tenant,))
                values = _values(name, tenant)
                seen = set()
                for _ in range(repeat):
                    with conn.transaction(force_rollback=True):
                        cur = psycopg.RawCursor(conn)
                        cur.execute(query.sql, [values[p] for p in query.params], prepare=prepare)
                        answer = (cur.fetchall() if cur.description else None, cur.rowcount)
                        if query.verb != "SELECT":
                            answer += (_comparable_rows(conn, tenant),)
                            answer += (_comparable_rows(conn, other),) if both_tenants else ()
                        seen.add(repr(answer))
                assert len(seen) == 1, f"{name} answered differently when run again"
                answers[(name, tenant)] = answer
    return answers


@pytest.fixture(scope="session")
def expected(pg_cluster, template_db):
    """The catalogue's answers on plain PostgreSQL, for the same two tenants."""
    name = "citus_expected"
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
    try:
        with psycopg.connect(pg_cluster.dsn(name), autocommit=True) as conn:
            seed(conn, A)
            seed(conn, B)
            yield _answers(conn, tenant_context=False, both_tenants=True)
    finally:
        with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name}")


def _without_other(answers: dict) -> dict:
    return {key: answer[:3] if len(answer) == 4 else answer for key, answer in answers.items()}


# ==========================================================================
# Distribution
# ==========================================================================


def test_all_16_tenant_tables_are_distributed_by_business_id_in_one_colocation_group(su):
    rows = su.execute(
        "SELECT logicalrelid::TEXT, partmethod::TEXT, column_to_column_name(logicalrelid, partkey), colocationid, "
        "(SELECT count(*) FROM pg_dist_shard AS s WHERE s.logicalrelid = p.logicalrelid) "
        "FROM pg_dist_partition AS p"
    ).fetchall()
    tenant = {r[0]: r[1:] for r in rows if r[0] != "whatsmeow_version"}
    assert set(tenant) == set(TENANT_TABLES)
    assert {(method, column, shards) for method, column, _, shards in tenant.values()} == {("h", "business_id", 32)}
    assert len({group for _, _, group, _ in tenant.values()}) == 1
    nodes = su.execute("SELECT count(DISTINCT nodename) FROM citus_shards WHERE table_name = 'whatsmeow_device'::REGCLASS")
    assert nodes.fetchone() == (2,)


def test_the_version_table_is_a_reference_table(su):
    assert su.execute(
        "SELECT partmethod::TEXT, repmodel::TEXT FROM pg_dist_partition WHERE logicalrelid = 'whatsmeow_version'::REGCLASS"
    ).fetchone() == ("n", "t")


def test_distributing_as_the_nologin_owner_role_is_refused_and_changes_nothing(store):
    assert store["as_owner_role"].returncode == 3
    assert f'role "{OWNER}" is not permitted to log in' in store["as_owner_role"].stderr
    assert store["after_refusal"] == 0


def test_every_row_of_both_tenants_was_distributed(su, store):
    for tenant, rows in store["rows"].items():
        assert tenant_rows(su, tenant) == rows


def test_the_foreign_keys_cascade_on_delete_only_on_the_coordinator_and_the_shards(citus, su):
    coordinator = su.execute(
        "SELECT confdeltype::TEXT, confupdtype::TEXT, count(*) FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid::REGCLASS::TEXT LIKE 'whatsmeow\\_%' GROUP BY 1, 2"
    ).fetchall()
    assert coordinator == [("c", "a", FOREIGN_KEYS)]
    with citus.connect("worker1") as worker:
        shards = worker.execute(
            "SELECT confdeltype::TEXT, confupdtype::TEXT, count(*) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid::REGCLASS::TEXT ~ '^whatsmeow_.*_[0-9]+$' GROUP BY 1, 2"
        ).fetchall()
    assert shards == [("c", "a", FOREIGN_KEYS * 16)]  # 32 shards of each table, half on each worker


# ==========================================================================
# The query catalogue
# ==========================================================================


def test_every_catalogue_query_runs_on_exactly_one_shard(app):
    counts = {}
    for name, query in sorted(QUERIES.items()):
        with app.transaction(force_rollback=True):
            app.execute("SELECT whatsmeow_set_tenant(%s)", (A,))
            values = _values(name, A)
            counts[name] = _task_counts(app, query.sql, [values[p] for p in query.params])
    assert {name: c for name, c in counts.items() if c != [1]} == {}
    assert len(counts) == 69


def test_every_catalogue_query_answers_as_on_plain_postgresql_for_both_tenants(su, expected):
    assert _answers(su, tenant_context=False, both_tenants=True) == expected


def test_the_application_login_gets_the_same_answers_under_forced_row_security(app, expected):
    assert _answers(app, tenant_context=True, both_tenants=False) == _without_other(expected)


def test_prepared_statements_answer_the_same_when_postgresql_switches_to_a_generic_plan(app, expected):
    # plan_cache_mode = auto, as drivers leave it: after five runs PostgreSQL may pick a generic plan,
    # which Citus prices so that it re-plans with the parameters.
    answers = _answers(app, tenant_context=True, both_tenants=False, prepare=True, repeat=7)
    assert answers == _without_other(expected)


def test_a_forced_generic_plan_is_refused_for_six_queries_and_right_for_the_others(app, expected):
    app.execute("SET plan_cache_mode = force_generic_plan")
    refused, answers = {}, {}
    for name, query in sorted(QUERIES.items()):
        with app.transaction(force_rollback=True):
            app.execute("SELECT whatsmeow_set_tenant(%s)", (A,))
            values = _values(name, A)
            try:
                with app.transaction():
                    cur = psycopg.RawCursor(app)
                    cur.execute(query.sql, [values[p] for p in query.params], prepare=True)
                    answers[name] = (cur.fetchall() if cur.description else None, cur.rowcount)
            except psycopg.Error as exc:
                refused[name] = exc.diag.message_primary
    assert set(refused) == GENERIC_PLAN_REFUSED
    assert {m for m in refused.values() if "could not create distributed plan" not in m} == set()
    assert answers == {name: expected[(name, A)][:2] for name in answers}


# ==========================================================================
# The tenant context
# ==========================================================================


def test_the_application_login_has_no_role_settings_and_reads_its_tenant(app, su):
    assert su.execute(
        "SELECT count(*) FROM pg_db_role_setting AS s JOIN pg_roles AS r ON r.oid = s.setrole WHERE r.rolname = %s",
        (APP_LOGIN,),
    ).fetchone() == (0,)
    with app.transaction():
        app.execute("SELECT whatsmeow_set_tenant(%s)", (A,))
        assert app.execute("SHOW citus.propagate_set_commands").fetchone() == ("local",)
        sessions = app.execute("SELECT business_id, their_id FROM whatsmeow_sessions WHERE business_id = %s", (A,))
        assert sessions.fetchall() == [(A, params(A)["their_id"])]
    # Only for the transaction that named the tenant.
    assert app.execute("SHOW citus.propagate_set_commands").fetchone() == ("none",)


def test_a_set_local_without_propagation_silently_reads_zero_rows(app):
    # What the application sees when the tenant does not reach the workers: no rows, no error.
    with app.transaction():
        app.execute(f"SET LOCAL app.current_business_id = '{A}'")
        assert app.execute("SELECT count(*) FROM whatsmeow_sessions WHERE business_id = %s", (A,)).fetchone() == (0,)
        assert app.execute("SELECT count(*) FROM whatsmeow_device WHERE business_id = %s", (A,)).fetchone() == (0,)


def test_tenant_b_cannot_read_or_write_tenant_a_on_the_workers(app):
    with app.transaction():
        app.execute("SELECT whatsmeow_set_tenant(%s)", (B,))
        assert app.execute("SELECT count(*) FROM whatsmeow_sessions WHERE business_id = %s", (A,)).fetchone() == (0,)
        assert app.execute("SELECT count(*) FROM whatsmeow_sessions").fetchone() == (1,)
    with pytest.raises(errors.InsufficientPrivilege), app.transaction():
        app.execute("SELECT whatsmeow_set_tenant(%s)", (B,))
        QUERIES["putSessionQuery"].run(app, {**params(A), "their_id": "15550004444:1"})


def test_a_login_on_the_application_role_itself_works_too(citus, su):
    su.execute(f"ALTER ROLE {APP} LOGIN")
    try:
        with citus.connect(user=APP) as conn, conn.transaction():
            conn.execute("SELECT whatsmeow_set_tenant(%s)", (A,))
            assert conn.execute("SELECT count(*) FROM whatsmeow_device WHERE business_id = %s", (A,)).fetchone() == (1,)
    finally:
        su.execute(f"ALTER ROLE {APP} NOLOGIN")


def test_set_role_to_the_nologin_application_role_cannot_reach_the_workers(su):
    with pytest.raises(psycopg.Error, match=f'role "{APP}" is not permitted to log in'), su.transaction():
        su.execute(f"SET LOCAL ROLE {APP}")
        su.execute("SELECT whatsmeow_set_tenant(%s)", (A,))
        su.execute("SELECT count(*) FROM whatsmeow_device WHERE business_id = %s", (A,))


# ==========================================================================
# Cascades, the distribution column and invalid ids, on the shards
# ==========================================================================


def test_deleting_a_device_cascades_on_its_shard_and_leaves_the_other_tenant(su, store):
    with su.transaction(force_rollback=True):
        assert _task_counts(su, "DELETE FROM whatsmeow_device WHERE business_id = $1 AND jid = $2", [A, OUR_JID]) == [1]
        assert su.execute("DELETE FROM whatsmeow_device WHERE business_id = %s AND jid = %s", (A, OUR_JID)).rowcount == 1
        left = {table: rows for table, rows in tenant_rows(su, A).items() if rows}
        assert set(left) == {"whatsmeow_lid_map"}
        assert tenant_rows(su, B) == store["rows"][B]


def test_renaming_a_device_with_rows_is_refused_instead_of_cascading(su):
    with pytest.raises(errors.ForeignKeyViolation), su.transaction():
        su.execute("UPDATE whatsmeow_device SET jid = %s WHERE business_id = %s AND jid = %s",
                   ("15550001111:8@s.whatsapp.net", A, OUR_JID))


def test_moving_a_row_to_another_tenant_is_refused(su):
    with pytest.raises(psycopg.Error, match="modifying the partition value of rows is not allowed"), su.transaction():
        su.execute("UPDATE whatsmeow_sessions SET business_id = %s WHERE business_id = %s", (B, A))


@pytest.mark.parametrize("business_id", ["", "acme corp", "x" * 65, "acme'--"])
def test_an_invalid_business_id_is_refused_by_the_shards(su, business_id):
    with pytest.raises(errors.CheckViolation), su.transaction():
        QUERIES["insertDeviceQuery"].run(su, {**params(A), "business_id": business_id})


def test_a_shard_on_a_worker_refuses_an_invalid_business_id_itself(citus, su):
    shard = su.execute(
        "SELECT shard_name, nodename FROM citus_shards WHERE table_name = 'whatsmeow_lid_map'::REGCLASS LIMIT 1"
    ).fetchone()
    node = next(name for name, cluster in citus.nodes.items() if str(cluster.socketdir) == shard[1])
    with citus.connect(node) as worker, pytest.raises(errors.CheckViolation):
        worker.execute(f"INSERT INTO {shard[0]} (business_id, lid, pn) VALUES ('bad id', '1', '2')")


def test_the_tenant_function_refuses_an_invalid_business_id(app):
    with pytest.raises(errors.InvalidParameterValue), app.transaction():
        app.execute("SELECT whatsmeow_set_tenant(%s)", ("acme corp",))


# ==========================================================================
# The applier on the coordinator
# ==========================================================================


def test_status_reports_the_distributed_store_current(store):
    result = applier("status", "--json", "--dsn", store["dsn"])
    assert result.returncode == 0, result.stderr
    assert '"rls": "forced"' in result.stdout and '"tenants": 2' in result.stdout
    assert f'"version": {LATEST_VERSION}' in result.stdout


def test_check_queries_routes_the_catalogue_to_one_shard_and_flags_a_query_without_the_tenant(store, tmp_path):
    leak = tmp_path / "leak.sql"
    leak.write_text("-- name: sessionsOfEveryTenant\n-- params: our_jid, their_id\n"
                    "SELECT session FROM whatsmeow_sessions WHERE our_jid = $1 AND their_id = $2;\n")
    result = applier("check-queries", str(ROOT / "schema" / "queries.sql"), str(leak), "--no-plans", "--json",
                     "--dsn", store["dsn"])
    assert result.returncode == 1, result.stderr
    assert "each query planned against the distributed store" in result.stderr
    findings = {q["name"]: sorted({f["kind"] for f in q["findings"]}) for q in json.loads(result.stdout)["queries"]}
    assert {name: kinds for name, kinds in findings.items() if kinds} == {
        "sessionsOfEveryTenant": ["not-one-shard", "reads-other-tenant"]
    }
    assert len(findings) == 70


def test_audit_holds_on_the_distributed_store_and_shows_the_distribution(store):
    import json

    result = applier("audit", "--json", "--dsn", store["dsn"])
    assert result.returncode == 0, result.stdout
    info = json.loads(result.stdout)["information"]
    rows = info["distribution"]["rows"]
    kinds = {(r["table_type"], r["distribution_column"], r["shards"], r["nodes"]) for r in rows}
    assert kinds == {("distributed", "business_id", 32, 2), ("reference", None, 1, 3), ("local", None, 0, 0)}
    assert len(rows) == 19
    # The tenant event log and the owner's allow-list stay on the coordinator (docs/citus.md).
    assert sorted(r["table_name"] for r in rows if r["table_type"] == "local") == [
        "whatsmeow_allowed_table_objects", "whatsmeow_tenant_events"]
    assert {r["business_id"]: r["total_rows"] for r in info["tenants"]["rows"]} == {A: 16, B: 16}
    # Read through the distributed tables, so they are the shards' rows.
    assert all(r["total_bytes"] > 0 for r in info["tenants"]["rows"])
    assert {r["business_id"]: r["mac_rows"] for r in info["mutation_mac_history"]["rows"]} == {A: 1, B: 1}
    for section in ("unused_indexes", "maintenance"):
        assert "distributed with Citus" in info[section]["unavailable"]
    report = applier("audit", "--dsn", store["dsn"])
    assert report.returncode == 0, report.stderr
    assert "citus: 16 tables: distributed by business_id, colocation group" in report.stdout
    assert "citus: whatsmeow_version: reference, 1 shard on 3 nodes" in report.stdout


def test_verify_reports_exactly_the_14_foreign_keys_and_the_dropped_device_triggers(store):
    result = applier("verify", "--dsn", store["dsn"])
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    keys = [line for line in lines if line.startswith("altered constraint")]
    triggers = [line for line in lines if line not in keys]
    assert len(keys) == FOREIGN_KEYS, result.stdout
    assert all(re.match(r"altered constraint whatsmeow_\w+\.whatsmeow_\w+_fkey: definition '.* ON UPDATE CASCADE "
                        r"ON DELETE CASCADE' -> '.*\) ON DELETE CASCADE'$", line) for line in keys), keys
    assert len(triggers) == DEVICE_TRIGGERS and all(
        line.startswith("missing trigger") and "whatsmeow_device" in line for line in triggers), triggers


# ==========================================================================
# Upgrading a distributed store
# ==========================================================================

SHARD_COLUMNS = (
    "SELECT string_agg(attname::TEXT, ',' ORDER BY attname) FROM pg_attribute "
    "WHERE attrelid = '%s'::REGCLASS AND attnum > 0 AND NOT attisdropped"
)


def _before_the_newest_step(dsn: str) -> None:
    """An upstream store, converted for tenant A, brought to the version before the package's newest step."""
    make_store(dsn, UPSTREAM_VERSION)
    with psycopg.connect(dsn, autocommit=True) as conn:
        state = read_state(conn)
        path = [step for step in plan(state.version, state.compat, load_steps()) if step.to_version < LATEST_VERSION]
        execute(conn, transactions(state, path, A), quiet=True)


def _counts(conn: psycopg.Connection) -> dict[str, int]:
    return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TENANT_TABLES}


def _shards_unlike_their_table(conn: psycopg.Connection) -> dict[str, set]:
    """Per tenant table, the column lists of its shards that are not the coordinator's."""
    unlike = {}
    for table in TENANT_TABLES:
        own = conn.execute(SHARD_COLUMNS.replace("'%s'", "%s"), (table,)).fetchone()[0]
        shards = {row[0] for row in conn.execute("SELECT result FROM run_command_on_shards(%s, %s)",
                                                 (table, SHARD_COLUMNS))}
        if shards != {own}:
            unlike[table] = shards - {own}
    return unlike


def test_a_distributed_store_takes_the_newest_step_on_every_shard(citus, store):
    upgraded = _install(citus, "whatsmeow_upgrade", build=_before_the_newest_step, tenants=())
    with psycopg.connect(upgraded["dsn"], autocommit=True) as conn:
        before = _counts(conn)
    result = applier("upgrade", "--dsn", upgraded["ops"])
    assert result.returncode == 0, result.stderr
    assert f"v{LATEST_VERSION - 1} -> v{LATEST_VERSION}" in result.stderr
    with psycopg.connect(upgraded["dsn"], autocommit=True) as conn:
        assert conn.execute("SELECT version FROM whatsmeow_version").fetchone() == (LATEST_VERSION,)
        assert _shards_unlike_their_table(conn) == {}
        assert _counts(conn) == before
        devices = conn.execute("SELECT count(*) FROM whatsmeow_device WHERE business_id = %s", (A,)).fetchone()
        assert devices[0] > 0
    with psycopg.connect(citus.dsn(user=APP_LOGIN, dbname="whatsmeow_upgrade"), autocommit=True) as app_conn:
        with app_conn.transaction():
            app_conn.execute("SELECT whatsmeow_set_tenant(%s)", (A,))
            count = app_conn.execute("SELECT count(*) FROM whatsmeow_device WHERE business_id = %s", (A,))
            assert count.fetchone() == devices
    status = applier("status", "--json", "--dsn", upgraded["dsn"])
    assert status.returncode == 0, status.stdout + status.stderr
    assert '"rls": "forced"' in status.stdout
    verify = applier("verify", "--dsn", upgraded["dsn"])
    verify_lines = [line for line in verify.stdout.splitlines() if line.strip()]
    assert len(verify_lines) == FOREIGN_KEYS + DEVICE_TRIGGERS, verify.stdout
    pruned = applier("prune", "--message-secrets-older-than", "1h", "--dsn", upgraded["dsn"])
    assert pruned.returncode == 0, pruned.stderr
    # The candidates are PL/pgSQL, whose parameters reach the shards as values: Citus routes them.
    counted = applier("prune", "--dry-run", "--json", "--quiet", "--dsn", upgraded["dsn"])
    assert counted.returncode == 0, counted.stderr
    assert {row["table"] for row in json.loads(counted.stdout)} >= {"whatsmeow_app_state_mutation_macs"}
    assert all(row["prunable"] == 0 for row in json.loads(counted.stdout)), "the prune above left nothing"


# ==========================================================================
# Tenant operations on a distributed store
# ==========================================================================


def test_tenant_list_purge_and_the_rename_refusal_on_a_distributed_store(citus, store):
    import json

    tenants = _install(citus, "whatsmeow_tenants")
    dsn = tenants["dsn"]
    listed = applier("tenant", "list", "--json", "--dsn", dsn)
    assert listed.returncode == 0, listed.stderr
    assert {t["business_id"]: t["devices"] for t in json.loads(listed.stdout)} == {A: [OUR_JID], B: [OUR_JID]}

    purged = applier("tenant", "purge", "--business-id", B, "--yes", "--dsn", dsn)
    assert purged.returncode == 0, purged.stderr
    with psycopg.connect(dsn) as conn:
        assert all(rows == [] for rows in tenant_rows(conn, B).values())
        assert tenant_rows(conn, A) == tenants["rows"][A]
        # The log is the coordinator's own table: the device was logged when it was added, before
        # distribution; the purge is logged with its count; the device it removed is not (no triggers).
        events = conn.execute("SELECT action, (details ->> 'total')::INT FROM whatsmeow_tenant_events "
                              "WHERE tenant = %s ORDER BY id", (B,)).fetchall()
        assert events == [("device_added", None), ("purge", sum(len(rows) for rows in tenants["rows"][B].values()))]

    renamed = applier("tenant", "rename", "--business-id", A, "--to", "tenant_c", "--dsn", dsn)
    assert renamed.returncode == 2
    assert "distributed with Citus" in renamed.stderr
    with psycopg.connect(dsn) as conn:
        assert tenant_rows(conn, A) == tenants["rows"][A]


def test_a_tenant_is_imported_into_a_distributed_store_and_exported_byte_for_byte(citus, store, new_database):
    distributed = _install(citus, "whatsmeow_io", tenants=(A,))
    source = new_database()
    make_store(source, UPSTREAM_VERSION)
    with psycopg.connect(source) as conn:
        columns = upstream_columns(conn)
        before = digests(conn, columns)

    imported = applier("tenant", "import", "--business-id", "initech", "--from", source,
                       "--dsn", distributed["dsn"])
    assert imported.returncode == 0, imported.stderr
    with psycopg.connect(distributed["dsn"]) as conn:
        # Every table's rows for the tenant, read through the distributed tables from the shards.
        counts = {table: conn.execute(f"SELECT count(*) FROM {table} WHERE business_id = 'initech'").fetchone()[0]
                  for table in columns}
        assert tenant_rows(conn, A) == distributed["rows"][A]
    assert counts == {table: n for table, (n, _) in before.items()}

    target = new_database()
    exported = applier("tenant", "export", "--business-id", "initech", "--to", target, "--dsn", distributed["dsn"])
    assert exported.returncode == 0, exported.stderr
    with psycopg.connect(target) as conn:
        assert digests(conn, upstream_columns(conn)) == before

    # An older store goes through temporary tables and upstream's own steps on the coordinator.
    older = new_database()
    make_store(older, 8)
    imported = applier("tenant", "import", "--business-id", "umbrella", "--from", older, "--dsn", distributed["dsn"])
    assert imported.returncode == 0, imported.stderr
    with psycopg.connect(distributed["dsn"]) as conn:
        assert conn.execute("SELECT count(*) FROM whatsmeow_sessions WHERE business_id = 'umbrella'").fetchone()[0]


# ==========================================================================
# Big tenants: isolate, move, placement and load
# ==========================================================================
# One store of its own: tenant A with a few hundred rows, a neighbour that hashes into A's shard, and a
# busy tenant on the same worker in another shard, whose writer runs while A moves. The tests below run
# in this order, each on what the one before left.

BIG_INDEX_MACS = 8  # about 340 mutation MAC rows


def _shard_of(conn: psycopg.Connection, tenant: str, table: str = "whatsmeow_device") -> tuple[int, str]:
    return conn.execute(
        "SELECT s.shardid, n.nodename || ':' || n.nodeport FROM pg_dist_shard AS s "
        "JOIN pg_dist_placement AS pl USING (shardid) JOIN pg_dist_node AS n USING (groupid) "
        "WHERE s.shardid = get_shard_id_for_distribution_column(%s::REGCLASS, %s::TEXT)", (table, tenant)
    ).fetchone()


def _first_tenant(conn: psycopg.Connection, prefix: str, wanted) -> str:
    for i in range(500):
        name = f"{prefix}-{i}"
        if wanted(_shard_of(conn, name)):
            return name
    raise AssertionError(f"no {prefix} tenant found")


def _placements(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT s.logicalrelid::TEXT, s.shardid, s.shardminvalue, s.shardmaxvalue, pl.groupid "
        "FROM pg_dist_shard AS s JOIN pg_dist_placement AS pl USING (shardid) ORDER BY 2"
    ).fetchall()


def _tenant_placement(conn: psycopg.Connection, tenant: str) -> set[tuple[str, bool]]:
    """(node, isolated) of the tenant's shard in each tenant table: one pair once it is in one place."""
    return {row for row in conn.execute(
        "SELECT n.nodename || ':' || n.nodeport, s.shardminvalue = s.shardmaxvalue "
        "FROM unnest(%s::TEXT[]) AS t (name) "
        "JOIN pg_dist_shard AS s ON s.shardid = get_shard_id_for_distribution_column(t.name::REGCLASS, %s::TEXT) "
        "JOIN pg_dist_placement AS pl USING (shardid) JOIN pg_dist_node AS n USING (groupid)",
        (list(TENANT_TABLES), tenant))}


def _single_shard(conn: psycopg.Connection, tenant: str) -> dict[str, list[int]]:
    """The catalogue queries that do not run on one shard for the tenant, as its application login."""
    counts = {}
    for name, query in sorted(QUERIES.items()):
        with conn.transaction(force_rollback=True):
            conn.execute("SELECT whatsmeow_set_tenant(%s)", (tenant,))
            values = _values(name, tenant)
            counts[name] = _task_counts(conn, query.sql, [values[p] for p in query.params])
    return {name: c for name, c in counts.items() if c != [1]}


def _all_rows(conn: psycopg.Connection, tenants: list[str]) -> dict[str, dict]:
    return {tenant: tenant_rows(conn, tenant) for tenant in tenants}


def _track_tenants(citus: CitusCluster, value: str) -> None:
    """citus_stat_tenants counts on the node that runs a tenant's queries: on every node, as docs/citus.md says."""
    for name in citus.nodes:
        with citus.connect(name, dbname="postgres") as conn:
            conn.execute(f"ALTER SYSTEM SET citus.stat_tenants_track = '{value}'")
            conn.execute("SELECT pg_reload_conf()")


@pytest.fixture(scope="session")
def big(citus):
    placed = _install(citus, "whatsmeow_placement")
    with psycopg.connect(placed["dsn"], autocommit=True) as conn:
        superseded_history(conn, A, OUR_JID, BIG_INDEX_MACS, collection="critical_block")
        shard, node = _shard_of(conn, A)
        neighbour = _first_tenant(conn, "neighbour", lambda found: found[0] == shard)
        busy = _first_tenant(conn, "busy", lambda found: found[0] != shard and found[1] == node)
        for tenant in (neighbour, busy):
            seed(conn, tenant)
        workers = [f"{citus.nodes[name].socketdir}:{PORT}" for name in ("worker1", "worker2")]
        rows = sum(len(r) for r in tenant_rows(conn, A).values())
        answers = _answers(conn, tenant_context=False, both_tenants=True)
        others = _all_rows(conn, [B, neighbour, busy])
        mine = tenant_rows(conn, A)
    assert rows > 300
    _track_tenants(citus, "all")
    yield {**placed, "neighbour": neighbour, "busy": busy, "source": node,
            "target": next(w for w in workers if w != node), "a_rows": rows, "answers": answers, "others": others,
            "mine": mine, "figures": {}}
    _track_tenants(citus, "none")


def test_isolate_and_move_refuse_bad_input_with_one_line_and_change_nothing(citus, big, db_dsn):
    coordinator = f"{citus.nodes['coordinator'].socketdir}:{PORT}"
    with psycopg.connect(big["dsn"], autocommit=True) as conn:
        before = _placements(conn)
    refusals = {
        ("isolate", "--business-id", "nobody", "--yes"): "tenant nobody does not exist",
        ("isolate", "--business-id", "acme corp", "--yes"): "invalid --business-id",
        ("isolate", "--business-id", A): "refusing to isolate tenant acme without --yes",
        ("isolate", "--business-id", A, "--yes", "--lock-timeout", "0"): "invalid --lock-timeout",
        ("move", "--business-id", A, "--to-node", big["target"], "--yes"): "isolate it first",
        ("move", "--business-id", A, "--to-node", coordinator, "--isolate", "--yes"): "is not an active worker",
        ("move", "--business-id", A, "--to-node", "nowhere:5432", "--isolate", "--yes"): "is not a node",
        ("move", "--business-id", A, "--to-node", "nowhere", "--isolate", "--yes"): "invalid --to-node",
        ("move", "--business-id", "nobody", "--to-node", big["target"], "--yes"): "does not exist",
        # Citus connects to the workers as the tables' owner, NOLOGIN as rls/roles.sql creates it.
        ("isolate", "--business-id", A, "--yes"): f"as the tables' owner {OWNER}, which cannot log in",
        ("move", "--business-id", A, "--to-node", big["target"], "--isolate", "--yes"): "which cannot log in",
    }
    for args, reason in refusals.items():
        result = applier("tenant", *args, "--dsn", big["dsn"])
        errors_ = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert (result.returncode, len(errors_)) == (2, 1), (args, result.stderr)
        assert reason in errors_[0], (args, result.stderr)
    dry_run = applier("tenant", "isolate", "--business-id", A, "--dsn", big["dsn"]).stderr
    with psycopg.connect(big["dsn"], autocommit=True) as conn:
        shard = _shard_of(conn, A)[0]
    assert f"would split shard {shard} of whatsmeow_device" in dry_run
    assert "would give 1 rows of whatsmeow_device a shard of their own" in dry_run
    assert "transfer: block_writes (row-level security is on" in dry_run
    # Plain PostgreSQL: the same one line, whatever the tenant.
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        seed(conn, A)
    for args in (("isolate", "--business-id", A, "--yes"), ("move", "--business-id", A, "--to-node", "w:5432")):
        result = applier("tenant", *args, "--dsn", db_dsn)
        assert result.returncode == 2 and result.stderr.splitlines()[-1].startswith("error: "), result.stderr
        assert "needs Citus: this database is plain PostgreSQL" in result.stderr
    with psycopg.connect(big["dsn"], autocommit=True) as conn:
        assert _placements(conn) == before
        assert conn.execute("SELECT count(*) FROM whatsmeow_tenant_events WHERE action NOT IN "
                            "('device_added', 'import')").fetchone() == (0,)


@pytest.fixture(scope="session")
def owner_login(citus, big):
    """The owner role may log in while these tests copy shards, as docs/citus.md tells the operator."""
    # In the store's database, from which Citus carries the change to the workers.
    with psycopg.connect(big["dsn"], autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {OWNER} LOGIN")
    yield
    with psycopg.connect(big["dsn"], autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {OWNER} NOLOGIN")


def test_an_isolate_that_cannot_take_its_locks_gives_up_and_leaves_the_placements(big, owner_login):
    with psycopg.connect(big["dsn"], autocommit=True) as conn, psycopg.connect(big["dsn"]) as holder:
        before = _placements(conn)
        # What a VACUUM or an index build of the application's holds, for longer than the operation waits.
        holder.execute("LOCK TABLE whatsmeow_contacts IN SHARE UPDATE EXCLUSIVE MODE")
        started = time.monotonic()
        result = applier("tenant", "isolate", "--business-id", A, "--yes", "--lock-timeout", "0.5",
                         "--dsn", big["dsn"])
        waited = time.monotonic() - started
        holder.rollback()
        assert result.returncode == 2, result.stderr
        assert "the tenant's placement is unchanged" in result.stderr and "lock timeout" in result.stderr
        assert waited < 10
        assert _placements(conn) == before
        assert tenant_rows(conn, A) == big["mine"]


def test_isolate_gives_the_tenant_its_own_shards_and_every_query_stays_on_one_shard(citus, big, owner_login):
    started = time.monotonic()
    result = applier("tenant", "isolate", "--business-id", A, "--yes", "--json", "--dsn", big["dsn"])
    big["figures"]["isolate_seconds"] = round(time.monotonic() - started, 2)
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    # Row-level security is forced, and logical replication cannot apply changes to such tables.
    assert done["transfer"] == "block_writes" and len(done["groups"]) == 1
    assert done["groups"][0]["tables"] == len(TENANT_TABLES)
    with psycopg.connect(big["dsn"], autocommit=True) as conn:
        assert _tenant_placement(conn, A) == {(big["source"], True)}
        assert _shard_of(conn, big["neighbour"])[0] != _shard_of(conn, A)[0]
        # Split into the hash values below the tenant's, its own, and those above: two shards more per table.
        shards = conn.execute("SELECT DISTINCT count(*) FROM pg_dist_shard WHERE logicalrelid::TEXT = ANY(%s) "
                              "GROUP BY logicalrelid", (list(TENANT_TABLES),)).fetchall()
        assert shards == [(34,)]
        assert _answers(conn, tenant_context=False, both_tenants=True) == big["answers"]
        assert _all_rows(conn, [B, big["neighbour"], big["busy"]]) == big["others"]
    with citus.connect(user=APP_LOGIN, dbname="whatsmeow_placement") as app_conn:
        assert _single_shard(app_conn, A) == {}
    again = applier("tenant", "isolate", "--business-id", A, "--dsn", big["dsn"])
    assert again.returncode == 0 and "already has its own shards" in again.stderr


def test_move_takes_the_tenant_to_another_worker_while_another_tenant_keeps_writing(citus, big, owner_login):
    stop = threading.Event()
    waits: dict[str, list[float]] = {A: [], big["busy"]: []}
    failures: dict[str, list[str]] = {A: [], big["busy"]: []}

    def write(tenant: str) -> None:
        """The busy tenant adds a session per write; the moving tenant rewrites its own with the same bytes."""
        with citus.connect(user=APP_LOGIN, dbname="whatsmeow_placement") as conn:
            i = 0
            while not stop.is_set() and i < 20000:
                i += 1
                values = {**params(tenant), "their_id": f"1555{i:07d}:1"} if tenant != A else params(A)
                began = time.monotonic()
                try:
                    with conn.transaction():
                        conn.execute("SELECT whatsmeow_set_tenant(%s)", (tenant,))
                        QUERIES["putSessionQuery"].run(conn, values)
                except psycopg.Error as exc:
                    failures[tenant].append(str(exc))
                waits[tenant].append(time.monotonic() - began)
                time.sleep(0.01)

    writers = [threading.Thread(target=write, args=(tenant,)) for tenant in waits]
    for writer in writers:
        writer.start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        result = applier("tenant", "move", "--business-id", A, "--to-node", big["target"], "--yes",
                         "--dsn", big["dsn"])
        big["figures"]["move_seconds"] = round(time.monotonic() - started, 2)
        time.sleep(0.3)
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
    assert result.returncode == 0, result.stderr
    assert "transfer: block_writes" in result.stdout
    assert failures == {A: [], big["busy"]: []} and min(len(w) for w in waits.values()) > 10
    big["figures"].update(move_writes=len(waits[big["busy"]]),
                          other_tenant_longest_write_wait_seconds=round(max(waits[big["busy"]]), 3),
                          moving_tenant_writes=len(waits[A]),
                          moving_tenant_longest_write_wait_seconds=round(max(waits[A]), 3))
    print(f"\nbig tenant ({big['a_rows']} rows): {big['figures']}")
    waits = waits[big["busy"]]
    assert max(waits) < 5
    with psycopg.connect(big["dsn"], autocommit=True) as conn:
        assert _tenant_placement(conn, A) == {(big["target"], True)}
        assert _answers(conn, tenant_context=False, both_tenants=True) == big["answers"]
        others = _all_rows(conn, [B, big["neighbour"], big["busy"]])
        sessions = others[big["busy"]].pop("whatsmeow_sessions")
        assert len(sessions) == 1 + len(waits)
        expected_others = {tenant: dict(rows) for tenant, rows in big["others"].items()}
        expected_others[big["busy"]].pop("whatsmeow_sessions")
        assert others == expected_others
    # The application's login on the new placement: the tenant context and forced row-level security.
    with citus.connect(user=APP_LOGIN, dbname="whatsmeow_placement") as app_conn:
        assert _single_shard(app_conn, A) == {}
        mine = {key: answer for key, answer in big["answers"].items() if key[1] == A}
        answers = _answers(app_conn, tenant_context=True, both_tenants=False)
        assert {key: answer for key, answer in answers.items() if key[1] == A} == _without_other(mine)
        with app_conn.transaction():
            app_conn.execute("SELECT whatsmeow_set_tenant(%s)", (B,))
            assert app_conn.execute("SELECT count(*) FROM whatsmeow_app_state_mutation_macs WHERE business_id = %s",
                                    (A,)).fetchone() == (0,)


def test_tenant_list_shows_each_tenants_node_and_its_load(big):
    listed = applier("tenant", "list", "--json", "--dsn", big["dsn"])
    assert listed.returncode == 0, listed.stderr
    tenants = {t["business_id"]: t for t in json.loads(listed.stdout)}
    assert tenants[A]["placement"]["node"] == big["target"] and tenants[A]["placement"]["isolated"]
    assert tenants[big["busy"]]["placement"]["node"] == big["source"]
    assert not tenants[big["busy"]]["placement"]["isolated"]
    # citus.stat_tenants_track is on for the database: the moved tenant's reads above were counted.
    assert tenants[A]["load"]["queries_this_period"] + tenants[A]["load"]["queries_last_period"] > 0
    assert tenants[big["busy"]]["load"]["queries_this_period"] + tenants[big["busy"]]["load"]["queries_last_period"] > 0
    text = applier("tenant", "list", "--dsn", big["dsn"])
    assert text.returncode == 0, text.stderr
    line = next(line for line in text.stdout.splitlines() if line.startswith(A + " "))
    assert big["target"] in line and f"{tenants[A]['placement']['shard']}*" in line


def test_without_row_level_security_the_tenant_moves_back_with_logical_replication_while_it_writes(citus, big,
                                                                                                   owner_login):
    _check(applier("rls", "disable", "--dsn", big["dsn"]))
    stop = threading.Event()
    waits: list[float] = []
    failures: list[str] = []

    def write() -> None:
        with citus.connect(user=APP_LOGIN, dbname="whatsmeow_placement") as conn:
            while not stop.is_set() and len(waits) < 20000:
                began = time.monotonic()
                try:
                    with conn.transaction():
                        QUERIES["putSessionQuery"].run(conn, params(A))  # the same bytes again
                except psycopg.Error as exc:
                    failures.append(str(exc))
                waits.append(time.monotonic() - began)
                time.sleep(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        result = applier("tenant", "move", "--business-id", A, "--to-node", big["source"], "--yes", "--json",
                         "--dsn", big["dsn"])
        big["figures"]["logical_move_seconds"] = round(time.monotonic() - started, 2)
        time.sleep(0.3)
    finally:
        stop.set()
        writer.join(timeout=30)
        _check(applier("rls", "enable", "--force", "--dsn", big["dsn"]))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["transfer"] == "logical"
    assert failures == [] and len(waits) > 10
    big["figures"].update(logical_moving_tenant_writes=len(waits),
                          logical_moving_tenant_longest_write_wait_seconds=round(max(waits), 3))
    print(f"\nbig tenant ({big['a_rows']} rows): {big['figures']}")
    with psycopg.connect(big["dsn"], autocommit=True) as conn:
        assert _tenant_placement(conn, A) == {(big["source"], True)}
        assert _answers(conn, tenant_context=False, both_tenants=True) == big["answers"]


def test_the_event_log_records_the_isolate_and_the_moves(big):
    with psycopg.connect(big["dsn"], autocommit=True) as conn:
        events = conn.execute("SELECT action, details ->> 'transfer' FROM whatsmeow_tenant_events "
                              "WHERE tenant = %s AND action IN ('isolate', 'move') ORDER BY id", (A,)).fetchall()
    assert events == [("isolate", "block_writes"), ("move", "block_writes"), ("move", "logical")]
