"""Connections and what the database says about itself."""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from applier.errors import ApplierError
from applier.steps import MULTI_TENANT_SINCE, PACKAGE_ROOT, load_steps, refuse_unknown_compat
from applier.upstream_store import TABLES as TENANT_TABLES

APPLICATION_NAME = "whatsmeow-tenancy"
# Session-level advisory lock that serializes appliers: the bytes of "whatsmeo".
ADVISORY_LOCK_KEY = 8604234240871982447
LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


def resolve_dsn(dsn: str | None) -> tuple[str, str]:
    """The DSN to use and where it came from: --dsn, DATABASE_URL, PG* variables, else the embedded default."""
    if dsn:
        return dsn, "--dsn"
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"], "DATABASE_URL"
    if any(os.environ.get(name) for name in LIBPQ_ENV):
        return "", "PG* environment"
    from applier.embedded import default_dsn

    return default_dsn(), "embedded default"


def redact(dsn: str) -> str:
    """The DSN with any password replaced, safe to print."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**params) if params else "<libpq defaults>"


# What to do about a failed connection, by what libpq said.
CONNECT_HINTS = (
    ("password authentication failed", "check the password (DSN, PGPASSWORD or ~/.pgpass)"),
    ("no password supplied", "supply a password (DSN, PGPASSWORD or ~/.pgpass)"),
    ("does not exist", "create it or fix the DSN"),
    ("Connection refused", "start PostgreSQL or fix the host and port"),
    ("No such file or directory", "start PostgreSQL or fix the host and port"),
    ("timeout expired", "check the host and the network, or raise PGCONNECT_TIMEOUT"),
    ("could not translate host name", "fix the host name"),
    ("permission denied", "ask for CONNECT privilege on the database"),
)


def _without_quoted_text(message: str) -> str:
    """libpq's complaint about a connection string quotes the string itself, password and all: keep only
    one-character quotes such as "="."""
    return re.sub(r'"[^"]*"', lambda quoted: quoted[0] if len(quoted[0]) <= 3 else '"…"', message)


def connect(dsn: str, *, autocommit: bool = True) -> psycopg.Connection:
    try:
        return psycopg.connect(
            dsn,
            autocommit=autocommit,
            application_name=APPLICATION_NAME,
            connect_timeout=int(os.environ.get("PGCONNECT_TIMEOUT", "10")),
        )
    except psycopg.ProgrammingError as exc:  # libpq could not parse the string
        reason = " ".join(str(exc).split())
        raise ApplierError(
            f"invalid connection string: {_without_quoted_text(reason)}; write key=value pairs "
            "(host=... dbname=...) or a postgresql://user@host/dbname URL"
        ) from exc
    except psycopg.OperationalError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        detail = lines[-1].removeprefix("FATAL:").strip() if lines else type(exc).__name__
        hint = next((what for pattern, what in CONNECT_HINTS if pattern in str(exc)), None)
        raise ApplierError(f"cannot connect to {redact(dsn)}: {detail}" + (f"; {hint}" if hint else "")) from exc


BUILTIN_SHADOWS_SQL = PACKAGE_ROOT / "schema" / "builtin-shadows.sql"


class BuiltinShadowsError(ApplierError):
    """Objects on the search_path would stand in for built-ins; `objects` names each one."""

    def __init__(self, message: str, objects: list[str]):
        super().__init__(message)
        self.objects = objects


def refuse_builtin_shadows(conn: psycopg.Connection) -> None:
    """Run schema/builtin-shadows.sql: nothing the package runs may resolve a name to an object planted
    on this session's search_path."""
    try:
        conn.execute(BUILTIN_SHADOWS_SQL.read_text(encoding="utf-8"))
    except psycopg.Error as exc:
        if exc.sqlstate != "55000" or not (exc.diag.message_primary or "").startswith("refusing to run"):
            raise
        objects = (exc.diag.message_detail or "").splitlines()
        raise BuiltinShadowsError(
            f"{exc.diag.message_primary}: {'; '.join(objects)}. {exc.diag.message_hint}", objects
        ) from exc


def open_database(dsn_arg: str | None, *, quiet: bool = False, check_shadows: bool = True) -> psycopg.Connection:
    """Connect, then refuse a database whose search_path holds objects named like built-ins (unless the
    caller reports them itself)."""
    dsn, source = resolve_dsn(dsn_arg)
    if not quiet:
        print(f"database: {redact(dsn)} ({source})", file=sys.stderr)
    conn = connect(dsn)
    if check_shadows:
        try:
            refuse_builtin_shadows(conn)
        except BaseException:
            conn.close()
            raise
    return conn


def acquire_lock(conn: psycopg.Connection, timeout: float, *, quiet: bool = False) -> None:
    """Take the appliers' advisory lock, waiting at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    announced = False
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_KEY,)).fetchone()[0]:
        if time.monotonic() >= deadline:
            raise ApplierError(
                f"another applier has held the lock (advisory lock {ADVISORY_LOCK_KEY}) for over {timeout:g}s; "
                "wait for it to finish or raise --lock-timeout"
            )
        if not announced and not quiet:
            print("waiting for another applier to finish ...", file=sys.stderr)
            announced = True
        time.sleep(0.2)


def release_lock(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))


@dataclass(frozen=True)
class StoreState:
    """What the database holds: its recorded version and the kind of store."""

    version: int
    compat: int
    has_version_table: bool
    has_compat_column: bool
    whatsmeow_tables: tuple[str, ...]
    tenant_keyed: bool
    keyed_tables: int = 0

    @property
    def kind(self) -> str:
        if not self.whatsmeow_tables:
            return "empty"
        if self.keyed_tables and self.version < MULTI_TENANT_SINCE:
            return "conversion-in-progress"
        return "multi-tenant" if self.tenant_keyed else "upstream-single-tenant"


def read_state(conn: psycopg.Connection) -> StoreState:
    tables = tuple(
        row[0]
        for row in conn.execute(
            """
            SELECT c.relname FROM pg_class AS c
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname LIKE 'whatsmeow\\_%'
              AND c.relnamespace = quote_ident(current_schema())::regnamespace
            ORDER BY c.relname
            """
        )
    )
    has_version_table = "whatsmeow_version" in tables
    has_compat = False
    version = compat = 0
    if has_version_table:
        has_compat = bool(
            conn.execute(
                """
                SELECT 1 FROM pg_attribute
                WHERE attrelid = 'whatsmeow_version'::regclass AND attname = 'compat' AND NOT attisdropped
                """
            ).fetchone()
        )
        row = conn.execute(
            f"SELECT version, {'compat' if has_compat else 'NULL'} FROM whatsmeow_version LIMIT 1"
        ).fetchone()
        if row:
            version = row[0] or 0
            # dbutil treats a missing or zero compat as equal to the version.
            compat = row[1] or version
    data_tables = tuple(name for name in tables if name != "whatsmeow_version")
    # Only the package's own tables say what the store is: a table someone else keyed by business_id
    # does not make an upstream store look converted.
    keyed = {
        row[0]
        for row in conn.execute(
            """
            SELECT attrelid::regclass::text FROM pg_attribute
            WHERE attrelid = ANY(%s::regclass[]) AND attname = 'business_id' AND NOT attisdropped
            """,
            ([name for name in data_tables if name in TENANT_TABLES],),
        )
    }
    tenant_keyed = "whatsmeow_device" in keyed
    return StoreState(version, compat, has_version_table, has_compat, data_tables, tenant_keyed, len(keyed))


def refuse_newer(state: StoreState) -> None:
    """Exit 3, before any change, for a database whose compat is newer than every version this package knows."""
    refuse_unknown_compat(state.version, state.compat, load_steps())


def require_store(state: StoreState, since: int, commands: str, what: str) -> None:
    """Refuse, before any change, a store the commands cannot work on: newer than this package, not
    multi-tenant, or older than v`since`, the version whose step created `what`."""
    refuse_newer(state)
    if state.kind != "multi-tenant":
        raise ApplierError(f"{commands}: this database holds a {state.kind} store, not a multi-tenant one")
    if state.version < since:
        raise ApplierError(f"{commands}: the store is at v{state.version} and needs v{since} ({what}): "
                           "run `upgrade` first")


# The version whose step created whatsmeow_foreign_table_objects and its allow-list.
TABLE_OBJECTS_SINCE = 1003


def refuse_foreign_table_objects(conn: psycopg.Connection) -> None:
    """Refuse, before any change, while a trigger, rule, policy or foreign key that the package did not create
    (and the owner did not allow by name) sits on a store table: it would run as whoever runs the command."""
    if not conn.execute("SELECT pg_catalog.to_regprocedure('whatsmeow_refuse_foreign_table_objects()')").fetchone()[0]:
        return  # a store older than v1003, which `upgrade` brings to it first
    try:
        conn.execute("SELECT whatsmeow_refuse_foreign_table_objects()")
    except psycopg.Error as exc:
        if exc.sqlstate != "55000" or not (exc.diag.message_primary or "").startswith("refusing to run"):
            raise
        objects = "; ".join((exc.diag.message_detail or "").splitlines())
        raise ApplierError(f"{exc.diag.message_primary}: {objects}. {exc.diag.message_hint} "
                           "(docs/auditing.md#allowed-table-objects)") from exc


@dataclass(frozen=True)
class ForeignDatabase:
    """A connection to a database the package does not own, and the schema its owner's default path names."""

    conn: psycopg.Connection
    schema: str
    label: str


def connect_foreign(dsn: str, role: str, *, quiet: bool = False) -> ForeignDatabase:
    """Connect to a database someone else controls (an import source, an export target) as to a hostile one.

    The first statement, whose every name is qualified, reads the schema the login's own search_path would
    use and pins search_path to pg_catalog for the rest of the session, so no function, operator or type of
    that database can stand in for a built-in; with row_security off, a policy there raises instead of
    running. Then the look-alike guard looks at that schema and refuses, naming what it found, before any
    other query; the package's queries there name every table by its schema."""
    label = redact(dsn)
    conn = connect(dsn)
    try:
        schema, superuser = conn.execute(
            "SELECT (pg_catalog.current_schemas(FALSE))[1], pg_catalog.current_setting('is_superuser'), "
            "pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', FALSE), "
            "pg_catalog.set_config('row_security', 'off', FALSE)").fetchone()[:2]
        if schema is None:
            raise ApplierError(f"the {role} {label}: its search_path names no existing schema, so there is no "
                               "store to read or write; set the login's search_path")
        conn.execute("SELECT pg_catalog.set_config('search_path', pg_catalog.quote_ident(%s), FALSE)", (schema,))
        try:
            refuse_builtin_shadows(conn)
        except BuiltinShadowsError as exc:
            raise ApplierError(f"the {role} {label}: {exc}") from exc
        finally:
            conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', FALSE)")
        if superuser == "on" and not quiet:
            print(f"warning: the {role} {label} is reached as a superuser; use a login that may do no more than "
                  f"this {role} needs (docs/tenants.md#logins-for-sources-and-targets)", file=sys.stderr)
    except BaseException:
        conn.close()
        raise
    return ForeignDatabase(conn, schema, label)
