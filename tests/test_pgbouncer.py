"""Behind PgBouncer in transaction mode, a transaction sees its own tenant or nothing.

Many tenants' transactions, some rolled back and some naming no tenant, take
turns on two server connections, before and after one client has left a
session-level SET app.current_business_id behind on them, the seed guide's
own pattern. PgBouncer 1.18 has no protocol-level prepared statements in this
mode, so the clients send none (prepare_threshold=None).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from rls_helpers import APP
from scratch import scratch_database
from store import TENANT_TABLES, seed

from applier import rls

TENANTS = [f"pooled-{n}" for n in range(8)]
LOGIN = "pooled_app"
PORT = 6432
POOL_SIZE = 2


@pytest.fixture(scope="module")
def store(pg_cluster, template_db):
    with scratch_database(pg_cluster, template_db) as dsn:
        with psycopg.connect(dsn, autocommit=True) as admin:
            for tenant in TENANTS:
                seed(admin, tenant)
            rls.create_roles(admin)
            rls.enable(admin)
            if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (LOGIN,)).fetchone():
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(LOGIN)))
            admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP), sql.Identifier(LOGIN)))
            expected = {
                tenant: admin.execute("SELECT count(*) FROM whatsmeow_sessions WHERE business_id = %s",
                                      (tenant,)).fetchone()[0]
                for tenant in TENANTS
            }
        yield dsn, expected


@pytest.fixture(scope="module")
def pooler(pg_cluster, store):
    """PgBouncer in transaction mode in front of the test cluster; yields the DSN template for a database."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    assert Path(binary).is_file(), "PgBouncer is not installed: bash .ci/setup installs it (apt-get install pgbouncer)"
    home = Path(tempfile.mkdtemp(prefix="whatsmeow-tenancy-pgbouncer-"))
    home.chmod(0o755)
    (home / "users.txt").write_text(f'"{LOGIN}" ""\n', encoding="utf-8")
    (home / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={pg_cluster.socketdir} port=5432\n"
        "[pgbouncer]\n"
        "listen_addr =\n"
        f"listen_port = {PORT}\n"
        f"unix_socket_dir = {home}\n"
        "auth_type = trust\n"
        f"auth_file = {home / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {POOL_SIZE}\n"
        "max_client_conn = 100\n"
        f"logfile = {home / 'pgbouncer.log'}\n"
        f"pidfile = {home / 'pgbouncer.pid'}\n",
        encoding="utf-8",
    )
    for path in home.iterdir():
        path.chmod(0o644)
    if pg_cluster.os_user:  # PgBouncer refuses to run as root, like the server
        shutil.chown(home, pg_cluster.os_user)
    process = subprocess.Popen([binary, str(home / "pgbouncer.ini")], user=pg_cluster.os_user,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    socket = home / f".s.PGSQL.{PORT}"
    deadline = time.monotonic() + 10
    while not socket.exists():
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "PgBouncer did not open its socket"
        time.sleep(0.05)
    database = store[0].rsplit("dbname=", 1)[1]
    yield f"host={home} port={PORT} user={LOGIN} dbname={database}"
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(home, ignore_errors=True)


def _client(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, prepare_threshold=None)


def _sessions(conn: psycopg.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT business_id FROM whatsmeow_sessions")]


def _interleave(clients: list[psycopg.Connection], expected: dict[str, int], rounds: int, rng: random.Random) -> int:
    """Random transactions on random clients; returns how many read a tenant's rows."""
    answered = 0
    for _ in range(rounds):
        conn = rng.choice(clients)
        kind = rng.choice(("commit", "rollback", "no-tenant", "autocommit"))
        if kind == "autocommit":
            assert _sessions(conn) == []
            continue
        tenant = rng.choice(TENANTS)
        with conn.transaction(force_rollback=kind == "rollback"):
            if kind == "no-tenant":
                assert _sessions(conn) == []
                continue
            conn.execute("SELECT whatsmeow_set_tenant(%s)", (tenant,))
            rows = _sessions(conn)
            assert rows == [tenant] * expected[tenant], (kind, tenant, rows)
            answered += 1
    return answered


def test_tenants_stay_apart_on_shared_server_connections_before_and_after_a_poisoned_pool(pooler, store):
    _, expected = store
    rng = random.Random(1240)
    clients = [_client(pooler) for _ in range(6)]
    try:
        assert _interleave(clients, expected, 300, rng) > 50
        # A session-level SET sticks to whichever server connection ran it, for
        # every later client of that connection: the seed guide's pattern.
        for conn in clients[:POOL_SIZE]:
            conn.execute(sql.SQL("SET app.current_business_id = {}").format(sql.Literal(TENANTS[0])))
        poisoned = {conn.execute("SELECT current_setting('app.current_business_id', TRUE)").fetchone()[0]
                    for conn in clients}
        assert TENANTS[0] in poisoned, "the SET reached a server connection"
        assert _interleave(clients, expected, 300, rng) > 50
    finally:
        for conn in clients:
            conn.close()


def test_a_second_tenant_in_one_transaction_is_refused_through_the_pooler(pooler):
    with _client(pooler) as conn:
        with pytest.raises(psycopg.errors.InvalidTransactionState):
            with conn.transaction():
                conn.execute("SELECT whatsmeow_set_tenant(%s)", (TENANTS[1],))
                conn.execute("SELECT whatsmeow_set_tenant(%s)", (TENANTS[2],))
        assert _sessions(conn) == []


def test_every_table_reads_empty_through_the_pooler_without_a_tenant(pooler):
    with _client(pooler) as conn:
        conn.execute(sql.SQL("SET app.current_business_id = {}").format(sql.Literal(TENANTS[3])))
        for table in TENANT_TABLES:
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
            assert count == 0, table
