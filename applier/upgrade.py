"""`upgrade`: bring the database to the latest multi-tenant version."""

from __future__ import annotations

import sys
import time

import psycopg

from applier.database import StoreState, acquire_lock, open_database, read_state, release_lock
from applier.errors import ApplierError
from applier.steps import VERSION_TABLE_SQL, Step, latest_version, load_steps, plan


def check_convertible(state: StoreState) -> None:
    """Refuse stores this command cannot carry forward, before anything changes."""
    if state.kind == "upstream-single-tenant":
        raise ApplierError(
            f"the database holds an upstream single-tenant whatsmeow store at v{state.version}; "
            "this version of the package cannot convert it"
        )
    if state.kind == "multi-tenant" and not state.version:
        raise ApplierError("whatsmeow tables exist but whatsmeow_version records no version; refusing to guess")
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


def apply_step(conn: psycopg.Connection, step: Step, state: StoreState) -> None:
    """Run one step and record its version in the same transaction."""
    if not step.transaction:
        raise ApplierError(f"{step.name}: steps with `-- transaction: off` are not supported by this version")
    with conn.transaction():
        ensure_version_table(conn, state)
        try:
            conn.execute(step.sql)
        except psycopg.Error as exc:
            raise sql_error(step, exc) from exc
        write_version(conn, step.to_version, step.compat)


def upgrade(conn: psycopg.Connection, *, lock_timeout: float = 60.0, quiet: bool = False) -> list[Step]:
    """Apply every pending step; returns the steps applied."""
    steps = load_steps()
    acquire_lock(conn, lock_timeout)
    try:
        applied = []
        while True:
            state = read_state(conn)
            check_convertible(state)
            pending = plan(state.version, state.compat, steps)
            if not pending:
                break
            step = pending[0]
            started = time.monotonic()
            apply_step(conn, step, state)
            applied.append(step)
            if not quiet:
                print(f"applied {step.describe()} in {time.monotonic() - started:.2f}s", file=sys.stderr)
        if not quiet:
            verb = "now" if applied else "already"
            print(f"database is {verb} at v{latest_version(steps)}", file=sys.stderr)
        return applied
    finally:
        release_lock(conn)


def run(args) -> int:
    with open_database(args.dsn, quiet=args.quiet) as conn:
        upgrade(conn, lock_timeout=args.lock_timeout, quiet=args.quiet)
    return 0
