"""pytest fixtures for services built on the multi-tenant store: database-level isolation tests.

Loaded by pytest through the package's `pytest11` entry point, so installing whatsmeow-tenancy is
enough. Nothing runs until a test asks for one of these fixtures (docs/testing-with-pytest.md):

- whatsmeow_server: a DSN of a PostgreSQL server where the fixtures may create databases: the
  `--whatsmeow-dsn` option, else WHATSMEOW_TENANCY_TEST_DSN, else a throwaway cluster started for
  the session in a temporary folder (the applier's embedded-cluster machinery);
- whatsmeow_template: a database holding the package schema, the roles and forced row-level
  security, from which each store is copied;
- whatsmeow_store: a fresh copy for one test (its `dsn`, `app_role`, `owner_role`, `connect()`);
- whatsmeow_tenants: two tenants seeded in that store, sharing every natural key;
- whatsmeow_tenant_conn: a connection as the application role bound to the first tenant;
- whatsmeow_connect: a factory of such connections for any tenant;
- whatsmeow_assert_isolated: runs a query for each tenant, with row-level security off and on, and
  fails with the rows or tables of the other tenant it reached (the check of `check-queries`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

DSN_ENV = "WHATSMEOW_TENANCY_TEST_DSN"
APP_ROLE = "whatsmeow_app"
OWNER_ROLE = "whatsmeow_owner"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("whatsmeow-tenancy", "whatsmeow-tenancy store fixtures")
    group.addoption("--whatsmeow-dsn", metavar="DSN", default=None,
                    help=f"PostgreSQL server where the whatsmeow_* fixtures create their databases (default: "
                    f"${DSN_ENV}, else a throwaway cluster for the session)")


def _with_dbname(dsn: str, dbname: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, dbname=dbname)


def _create_database(server: str, name: str, template: str | None = None) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server, autocommit=True) as conn:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)


def _drop_database(server: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                     "pg_backend_pid()", (name,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def whatsmeow_server(request: pytest.FixtureRequest):
    """DSN of a server where the fixtures create (and drop) databases, as a role that may create them."""
    dsn = request.config.getoption("--whatsmeow-dsn") or os.environ.get(DSN_ENV)
    if dsn:
        yield dsn
        return
    from applier.embedded import Cluster, find_bindir, server_user

    home = Path(tempfile.mkdtemp(prefix="whatsmeow-tenancy-pytest-"))
    home.chmod(0o755)
    # A throwaway cluster: durability buys nothing here and costs every commit a flush.
    settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    cluster = Cluster(home, find_bindir(), server_user(), settings)
    cluster.ensure_running()
    try:
        yield cluster.dsn("postgres")
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def whatsmeow_template(whatsmeow_server: str):
    """Name of a database with the package schema, the roles whatsmeow_app and whatsmeow_owner, and forced
    row-level security; each whatsmeow_store is a copy of it."""
    import psycopg

    from applier import rls
    from applier.upgrade import upgrade

    name = f"whatsmeow_test_template_{secrets.token_hex(4)}"
    _create_database(whatsmeow_server, name)
    try:
        with psycopg.connect(_with_dbname(whatsmeow_server, name), autocommit=True) as conn:
            upgrade(conn, quiet=True)
            rls.create_roles(conn, app_role=APP_ROLE, owner_role=OWNER_ROLE)
            rls.enable(conn, force=True)
        yield name
    finally:
        _drop_database(whatsmeow_server, name)


@dataclass(frozen=True)
class WhatsmeowStore:
    """A scratch store for one test. `dsn` connects as the server's role (a superuser sees every tenant)."""

    dsn: str
    app_role: str = APP_ROLE
    owner_role: str = OWNER_ROLE

    def connect(self, tenant: str | None = None, *, role: str | None = APP_ROLE):
        """A connection as `role` (None: the DSN's own role); with a tenant, bound to it in an open transaction.

        The tenant context lasts for that transaction, as in the application: after a commit or
        rollback, call bind() again."""
        import psycopg
        from psycopg import sql

        conn = psycopg.connect(self.dsn, autocommit=True)
        if role:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.autocommit = False
        if tenant is not None:
            self.bind(conn, tenant)
        return conn

    @staticmethod
    def bind(conn, tenant: str) -> None:
        """Name the tenant for the connection's current (or next) transaction."""
        conn.execute("SELECT whatsmeow_set_tenant(%s)", (tenant,))


@pytest.fixture
def whatsmeow_store(whatsmeow_server: str, whatsmeow_template: str):
    """A fresh store for this test, copied from whatsmeow_template and dropped afterwards."""
    name = f"whatsmeow_test_{secrets.token_hex(6)}"
    _create_database(whatsmeow_server, name, whatsmeow_template)
    try:
        yield WhatsmeowStore(_with_dbname(whatsmeow_server, name))
    finally:
        _drop_database(whatsmeow_server, name)


@dataclass(frozen=True)
class WhatsmeowTenants:
    """The two seeded tenants. They share every natural key (device JID, peers, chats, message ids);
    payloads differ, so a value tells whose row it came from. values(tenant) gives each parameter of the
    query catalogue by name, as seeded."""

    a: str
    b: str

    @staticmethod
    def values(tenant: str) -> dict:
        from applier.seed import params

        return params(tenant)


@pytest.fixture
def whatsmeow_tenants(whatsmeow_store: WhatsmeowStore) -> WhatsmeowTenants:
    """Seeds two tenants, tenant-a and tenant_b, through the query catalogue: a full store each."""
    import psycopg

    from applier.check_queries import TENANTS
    from applier.seed import seed

    with psycopg.connect(whatsmeow_store.dsn, autocommit=True) as conn:
        for tenant in TENANTS:
            seed(conn, tenant)
    return WhatsmeowTenants(*TENANTS)


@pytest.fixture
def whatsmeow_connect(whatsmeow_store: WhatsmeowStore):
    """connect(tenant) -> a connection as the application role bound to that tenant; closed after the test."""
    opened = []

    def connect(tenant: str, *, role: str | None = APP_ROLE):
        conn = whatsmeow_store.connect(tenant, role=role)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def whatsmeow_tenant_conn(whatsmeow_connect, whatsmeow_tenants: WhatsmeowTenants):
    """A connection as the application role, under forced row-level security, bound to tenant a (the
    transaction stays open; the test's changes are rolled back)."""
    return whatsmeow_connect(whatsmeow_tenants.a)


@pytest.fixture(scope="session")
def _whatsmeow_checker(whatsmeow_server: str):
    """A database of its own holding the check's scratch store for the session (created on first use)."""
    import psycopg

    from applier.check_queries import Checker

    name = f"whatsmeow_test_check_{secrets.token_hex(4)}"
    _create_database(whatsmeow_server, name)
    try:
        with psycopg.connect(_with_dbname(whatsmeow_server, name), autocommit=True, prepare_threshold=None) as conn:
            checker = Checker(conn)
            with checker.store():
                yield checker
    finally:
        _drop_database(whatsmeow_server, name)


@pytest.fixture
def whatsmeow_assert_isolated(_whatsmeow_checker):
    """assert_isolated(sql, params, *, plans=True): run a query for each seeded tenant and fail on any leak.

    `sql` takes $1, $2, … and `params` names them after the store columns they bind (business_id,
    our_jid, their_id, …), as in schema/queries.sql. The query runs beside the other tenant and alone,
    with row-level security off and as the application role with it on; with `plans`, its plan must
    start every scan from business_id among 300 tenants. Nothing is kept.
    """
    from applier.queries import Query

    def assert_isolated(statement: str, params, *, plans: bool = True, name: str = "query"):
        query = Query(name, tuple(params), statement.strip(), "<test>", 1, 1)
        result = _whatsmeow_checker.check(query)
        if plans and not result.refused:
            with _whatsmeow_checker.many_tenants():
                result.findings.extend(_whatsmeow_checker.plan_findings(query))
        if result.findings:
            lines = [f"{name} is not isolated to one tenant:"]
            lines += [f"  {finding.kind}: {finding.detail}" for finding in result.findings]
            raise AssertionError("\n".join(lines))
        return result

    return assert_isolated
