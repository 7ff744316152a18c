"""The stores a benchmark compares, loaded with the same rows (bench/data.py): upstream's
single-tenant store, the multi-tenant store, and a copy of it under forced row-level security
with the application's login role."""

from __future__ import annotations

import psycopg

from applier import rls
from applier.embedded import Cluster
from applier.upgrade import upgrade
from applier.upstream_store import upstream_v15_script
from data import Shape, statements
from harness import admin

APP_LOGIN = "bench_app"


def login(cluster: Cluster, dbname: str) -> psycopg.Connection:
    """A connection as the application's login role."""
    return psycopg.connect(f"{cluster.dsn(dbname)} user={APP_LOGIN}", autocommit=True)


def build(cluster: Cluster, name: str, shape: Shape, tenant: bool) -> None:
    """An upstream v15 store (`tenant` false) or the multi-tenant store at the latest version, filled."""
    cluster.ensure_database(name)
    with admin(cluster, name) as conn:
        if tenant:
            upgrade(conn, quiet=True)
        else:
            conn.execute(upstream_v15_script())
        # The generated rows are consistent; checking each foreign key row by row only slows the load.
        conn.execute("SET session_replication_role = replica")
        for _, sql in statements(shape, tenant):
            conn.execute(sql)
        conn.execute("RESET session_replication_role")
        conn.execute("VACUUM (ANALYZE)")


def copy_database(cluster: Cluster, source: str, name: str) -> None:
    with admin(cluster) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {source}")


def with_rls(cluster: Cluster, source: str, name: str) -> None:
    """A copy of `source` with RLS forced, and the login role the application uses."""
    copy_database(cluster, source, name)
    with admin(cluster, name) as conn:
        rls.create_roles(conn)
        rls.enable(conn, force=True)
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_LOGIN,)).fetchone():
            conn.execute(f"CREATE ROLE {APP_LOGIN} LOGIN IN ROLE whatsmeow_app")
        conn.execute("VACUUM (ANALYZE)")
