"""Databases of the suite's cluster: the one way the tests create and drop them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

from pytest_postgresql.janitor import DatabaseJanitor

from applier.embedded import SUPERUSER, Cluster

_names = itertools.count()


def janitor(cluster: Cluster, dbname: str, **kwargs) -> DatabaseJanitor:
    return DatabaseJanitor(user=SUPERUSER, host=str(cluster.socketdir), port=5432, dbname=dbname, **kwargs)


@contextmanager
def scratch_database(cluster: Cluster, template: str | None = None) -> Iterator[str]:
    """A new database, a copy of `template` if given, dropped when the block ends; yields its DSN."""
    name = f"test_{next(_names)}"
    database = janitor(cluster, name, template_dbname=template)
    database.init()
    try:
        yield cluster.dsn(name)
    finally:
        database.drop()
