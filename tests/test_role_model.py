"""The logins people actually create, on a managed PostgreSQL where nobody is a superuser.

The administrator of a hosted database is its owner with CREATEROLE, nothing
more. As that login every command works: the fresh install, the roles, row-level
security, audit and verify. The login it then creates as a member of the owner
role runs the maintenance commands, and the one it creates as a member of the
application role works in one tenant at a time.
"""

from __future__ import annotations

import itertools

import psycopg
import pytest
from psycopg import sql
from rls_helpers import counts
from runners import applier
from store import TENANT_TABLES, seed

_runs = itertools.count()


def _dsn(cluster, database: str, user: str, **settings: str) -> str:
    options = " ".join(f"-c {name}={value}" for name, value in settings.items())
    dsn = f"{cluster.dsn(database)} user={user}"
    return dsn + (f" options='{options}'" if options else "")


@pytest.fixture
def managed(pg_cluster):
    """A database owned by an administrator with CREATEROLE only; yields (DSN builder, role names, server major)."""
    run = next(_runs)
    names = {
        "admin": f"managed_admin_{run}", "database": f"managed_{run}", "owner_role": f"managed_owner_{run}",
        "app_role": f"managed_app_{run}", "maintainer": f"managed_maintainer_{run}", "app_login": f"managed_login_{run}",
    }
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as superuser:
        superuser.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE NOSUPERUSER").format(sql.Identifier(names["admin"])))
        superuser.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(names["database"]), sql.Identifier(names["admin"])))
        major = superuser.info.server_version // 10000
    roles = {"whatsmeow.app_role": names["app_role"], "whatsmeow.owner_role": names["owner_role"]}

    def dsn(user_key: str) -> str:
        return _dsn(pg_cluster, names["database"], names[user_key], **roles)

    yield dsn, names, major
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as superuser:
        superuser.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)" if major >= 13 else "DROP DATABASE {}").format(
            sql.Identifier(names["database"])))
        for key in ("app_login", "maintainer", "app_role", "owner_role", "admin"):
            superuser.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(names[key])))


def _ok(result, expected: int = 0) -> str:
    assert result.returncode == expected, result.stdout + result.stderr
    return result.stdout + result.stderr


def _install_with_roles(admin: str, names: dict) -> None:
    """As the managed admin: install the schema, then the owner and application roles."""
    _ok(applier("upgrade", "--dsn", admin))
    _ok(applier("rls", "roles", "--app-role", names["app_role"], "--owner-role", names["owner_role"],
                "--dsn", admin))


def test_a_database_owner_with_createrole_runs_every_command(managed):
    dsn, names, major = managed
    admin = dsn("admin")
    _install_with_roles(admin, names)
    _ok(applier("rls", "enable", "--dsn", admin))
    _ok(applier("verify", "--dsn", admin))
    _ok(applier("status", "--json", "--dsn", admin))
    # Before PostgreSQL 15, PUBLIC may CREATE in public and only the bootstrap
    # superuser, its owner, can take that away: the audit keeps saying so.
    audit = applier("audit", "--dsn", admin)
    if major >= 15:
        _ok(audit)
    else:
        report = _ok(audit, 1)
        assert "PUBLIC holds CREATE on the store's schema" in report and "result: 1 finding" in report


def test_logins_of_the_owner_and_application_roles_do_their_jobs(managed):
    dsn, names, major = managed
    admin = dsn("admin")
    _install_with_roles(admin, names)
    with psycopg.connect(admin, autocommit=True) as conn:
        seed(conn, "acme")
        seed(conn, "globex")
        for login, role in (("maintainer", "owner_role"), ("app_login", "app_role")):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(names[login]), sql.Identifier(names[role])))

    maintainer = dsn("maintainer")
    _ok(applier("rls", "enable", "--dsn", maintainer))
    _ok(applier("upgrade", "--dsn", maintainer))
    _ok(applier("verify", "--dsn", maintainer))
    _ok(applier("audit", "--dsn", maintainer), 0 if major >= 15 else 1)
    # A second login of the owner role replaces what the first one's audit created.
    _ok(applier("audit", "--dsn", admin), 0 if major >= 15 else 1)

    with psycopg.connect(dsn("app_login")) as app:
        with app.transaction():
            app.execute("SELECT whatsmeow_set_tenant('globex')")
            assert {row[0] for row in app.execute("SELECT business_id FROM whatsmeow_sessions")} == {"globex"}
        with app.transaction():
            assert counts(app) == {table: 0 for table in TENANT_TABLES}
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("TRUNCATE whatsmeow_sessions")


def test_guardrails_reach_the_application_role_and_each_of_its_logins(managed):
    dsn, names, major = managed
    admin = dsn("admin")
    _ok(applier("upgrade", "--dsn", admin))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(names["app_role"])))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
            sql.Identifier(names["app_login"]), sql.Identifier(names["app_role"])))
    flags = ["--app-connection-limit", "20", "--app-idle-in-transaction-timeout", "30s"]
    if major >= 14:
        flags += ["--app-idle-session-timeout", "10min"]
    report = _ok(applier("rls", "roles", "--app-role", names["app_role"], "--owner-role", names["owner_role"],
                         *flags, "--dsn", admin))
    assert f"changed: role {names['app_login']} may open at most 20 connections" in report
    with psycopg.connect(admin) as conn:
        for role in (names["app_role"], names["app_login"]):
            limit, settings = conn.execute(
                "SELECT r.rolconnlimit, s.setconfig FROM pg_roles AS r "
                "LEFT JOIN pg_db_role_setting AS s ON s.setrole = r.oid AND s.setdatabase = 0 WHERE r.rolname = %s",
                (role,),
            ).fetchone()
            assert limit == 20
            assert "idle_in_transaction_session_timeout=30s" in settings
            assert ("idle_session_timeout=10min" in settings) == (major >= 14)
