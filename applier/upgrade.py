"""`upgrade`: bring the database to the latest multi-tenant version."""

from __future__ import annotations

import sys
import time

import psycopg

from applier.database import StoreState, acquire_lock, open_database, read_state, release_lock
from applier.errors import ApplierError
from applier.steps import MULTI_TENANT_SINCE, VERSION_TABLE_SQL, Step, latest_version, load_steps, plan


# The oldest upstream store whose remaining upstream steps this package replays.
OLDEST_ADOPTABLE = 2


def check_convertible(state: StoreState, adopt_business_id: str | None = None) -> None:
    """Refuse stores this command cannot carry forward, before anything changes."""
    if state.kind == "upstream-single-tenant":
        if state.version < OLDEST_ADOPTABLE:
            raise ApplierError(
                f"the database holds an upstream single-tenant whatsmeow store at v{state.version}, older than "
                f"v{OLDEST_ADOPTABLE}; upgrade it with whatsmeow itself first, then convert it"
            )
        if adopt_business_id is None:
            raise ApplierError(
                f"the database holds an upstream single-tenant whatsmeow store at v{state.version}; to convert it, "
                "name the tenant that will own its rows: upgrade --adopt-business-id BUSINESS_ID"
            )
        return
    if state.kind == "multi-tenant" and state.version < MULTI_TENANT_SINCE:
        raise ApplierError(
            f"whatsmeow tables have business_id but whatsmeow_version records v{state.version}, "
            f"not v{MULTI_TENANT_SINCE} or newer; refusing to guess what this database is"
        )
    if state.kind == "empty" and state.version:
        raise ApplierError(f"whatsmeow_version records v{state.version} but no whatsmeow tables exist")


def sql_error(step: Step, exc: psycopg.Error) -> ApplierError:
    """Name the file, line:column and SQLSTATE of a failed statement."""
    where = step.name
    position = exc.diag.statement_position
    if position:
        before = step.sql[: int(position) - 1]
        where += f":{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"
    message = exc.diag.message_primary or str(exc).strip()
    return ApplierError(f"{where}: {message} (SQLSTATE {exc.sqlstate})")


def write_version(conn: psycopg.Connection, version: int, compat: int) -> None:
    conn.execute("DELETE FROM whatsmeow_version")
    conn.execute("INSERT INTO whatsmeow_version (version, compat) VALUES (%s, %s)", (version, compat))


def ensure_version_table(conn: psycopg.Connection, state: StoreState) -> None:
    """Create the version table, or add `compat` to a pre-dbutil one, as dbutil does."""
    if not state.has_version_table:
        conn.execute(VERSION_TABLE_SQL.read_text(encoding="utf-8"))
    elif not state.has_compat_column:
        conn.execute("ALTER TABLE whatsmeow_version ADD COLUMN compat INTEGER")


def run_step(conn: psycopg.Connection, step: Step, quiet: bool) -> None:
    """Run one step's SQL and record its version, inside the caller's transaction."""
    if not step.transaction:
        raise ApplierError(f"{step.name}: steps with `-- transaction: off` are not supported by this version")
    started = time.monotonic()
    try:
        conn.execute(step.sql)
    except psycopg.Error as exc:
        raise sql_error(step, exc) from exc
    write_version(conn, step.to_version, step.compat)
    if not quiet:
        print(f"applied {step.describe()} in {time.monotonic() - started:.2f}s", file=sys.stderr)


def adopt(conn: psycopg.Connection, state: StoreState, path: list[Step], business_id: str, quiet: bool) -> None:
    """Convert an upstream store: its remaining upstream steps and the conversion commit together or not at all."""
    with conn.transaction():
        # Read by the conversion step; SET LOCAL semantics, so it ends with the transaction.
        conn.execute("SELECT set_config('whatsmeow.adopt_business_id', %s, true)", (business_id,))
        ensure_version_table(conn, state)
        for step in path:
            run_step(conn, step, quiet)


def upgrade(
    conn: psycopg.Connection,
    *,
    adopt_business_id: str | None = None,
    lock_timeout: float = 60.0,
    quiet: bool = False,
) -> list[Step]:
    """Apply every pending step; returns the steps applied."""
    steps = load_steps()
    acquire_lock(conn, lock_timeout)
    try:
        applied: list[Step] = []
        state = read_state(conn)
        check_convertible(state, adopt_business_id)
        if state.kind == "upstream-single-tenant":
            path = plan(state.version, state.compat, steps)
            adopt(conn, state, path, adopt_business_id, quiet)
            applied += path
        elif adopt_business_id is not None and not quiet:
            print(f"note: the database is {state.kind}, not an upstream store; --adopt-business-id is ignored",
                  file=sys.stderr)
        while True:
            state = read_state(conn)
            check_convertible(state)
            pending = plan(state.version, state.compat, steps)
            if not pending:
                break
            with conn.transaction():
                ensure_version_table(conn, state)
                run_step(conn, pending[0], quiet)
            applied.append(pending[0])
        if not quiet:
            verb = "now" if applied else "already"
            print(f"database is {verb} at v{latest_version(steps)}", file=sys.stderr)
        return applied
    finally:
        release_lock(conn)


def run(args) -> int:
    with open_database(args.dsn, quiet=args.quiet) as conn:
        upgrade(conn, adopt_business_id=args.adopt_business_id, lock_timeout=args.lock_timeout, quiet=args.quiet)
    return 0
