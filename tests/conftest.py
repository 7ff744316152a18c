"""A real PostgreSQL for the whole run, and one fresh database per test.

The suite starts its own throwaway cluster (as the `postgres` OS user when run
as root, since the server refuses root), installs the latest schema once into a
template database with the applier, and gives each test a copy made with
CREATE DATABASE ... TEMPLATE. No server, no run: a missing PostgreSQL fails the
suite; nothing is skipped.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from pytest_postgresql.janitor import DatabaseJanitor

from applier import catalog
from applier.embedded import SUPERUSER, Cluster, find_bindir, server_user
from applier.upgrade import upgrade

TEMPLATE = "whatsmeow_template"
_names = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster():
    home = Path(tempfile.mkdtemp(prefix="whatsmeow-tenancy-test-"))
    home.chmod(0o755)
    # A throwaway cluster: durability buys nothing here and costs every commit a flush.
    settings = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    cluster = Cluster(home, find_bindir(), server_user(), settings)
    cluster.ensure_running()
    yield cluster
    cluster.stop()
    shutil.rmtree(home, ignore_errors=True)


def _janitor(cluster: Cluster, dbname: str, **kwargs) -> DatabaseJanitor:
    return DatabaseJanitor(
        user=SUPERUSER, host=str(cluster.socketdir), port=5432, dbname=dbname, **kwargs
    )


def _install_latest(host, port, user, dbname, password=None, **_):
    with psycopg.connect(host=host, port=port, user=user, dbname=dbname, autocommit=True) as conn:
        upgrade(conn, quiet=True)


@pytest.fixture(scope="session")
def template_db(pg_cluster):
    janitor = _janitor(pg_cluster, TEMPLATE, as_template=True)
    janitor.init()
    janitor.load(_install_latest)
    yield TEMPLATE
    janitor.drop()


@pytest.fixture(scope="session")
def fresh_catalog(template_db, pg_cluster):
    """The catalog of a fresh install, which every upgrade and conversion must reach."""
    with psycopg.connect(pg_cluster.dsn(template_db)) as conn:
        return catalog.snapshot(conn)


@pytest.fixture
def new_database(pg_cluster):
    """A factory of databases that live until the test ends: new_database(template=None) -> DSN."""
    janitors = []

    def make(template: str | None = None) -> str:
        name = f"test_{next(_names)}"
        janitor = _janitor(pg_cluster, name, template_dbname=template)
        janitor.init()
        janitors.append(janitor)
        return pg_cluster.dsn(name)

    yield make
    for janitor in janitors:
        janitor.drop()


@pytest.fixture
def db_dsn(template_db, new_database) -> str:
    """DSN of a database holding the freshly installed latest schema."""
    return new_database(template_db)


@pytest.fixture
def db(db_dsn):
    """An autocommit connection to a database holding the latest schema."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def empty_dsn(new_database) -> str:
    """DSN of an empty database."""
    return new_database()


@pytest.fixture(scope="session")
def psql(pg_cluster) -> Path:
    return pg_cluster.bindir / "psql"


@pytest.fixture
def make_role(db):
    """A factory of throwaway roles (roles are cluster-wide): make_role('LOGIN') -> name."""
    names = []

    def make(options: str = "") -> str:
        name = f"role_{uuid.uuid4().hex[:10]}"
        db.execute(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(name)))
        names.append(name)
        return name

    yield make
    db.execute("RESET ROLE")
    for name in names:
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
