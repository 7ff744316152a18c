"""`upgrade`: bring the database to the latest multi-tenant version."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from applier.database import StoreState, acquire_lock, read_state, release_lock
from applier.errors import ApplierError
from applier.rls import reapply_if_enabled
from applier.sqlfile import sql_error
from applier.steps import MULTI_TENANT_SINCE, VERSION_TABLE_SQL, Step, latest_version, load_steps, plan
from applier.tenancy import check_business_id, oldest_upstream


def check_convertible(state: StoreState, adopt_business_id: str | None = None) -> None:
    """Refuse stores this command cannot carry forward, before anything changes."""
    if state.kind == "upstream-single-tenant":
        if state.version < oldest_upstream():
            raise ApplierError(
                f"the database holds an upstream single-tenant whatsmeow store at v{state.version}, older than "
                f"v{oldest_upstream()}; upgrade it with whatsmeow itself first, then convert it"
            )
        if adopt_business_id is None:
            raise ApplierError(
                f"the database holds an upstream single-tenant whatsmeow store at v{state.version}; to convert it, "
                "name the tenant that will own its rows: upgrade --adopt-business-id BUSINESS_ID"
            )
        return
    if state.kind == "conversion-in-progress":
        if adopt_business_id is None:
            raise ApplierError(
                f"an online conversion of this v{state.version} store was interrupted; finish it with "
                "upgrade --online --adopt-business-id BUSINESS_ID (the same tenant as before)"
            )
        return
    if state.kind == "multi-tenant" and state.version < MULTI_TENANT_SINCE:
        raise ApplierError(
            f"whatsmeow tables have business_id but whatsmeow_version records v{state.version}, "
            f"not v{MULTI_TENANT_SINCE} or newer; refusing to guess what this database is"
        )
    if state.kind == "empty" and state.version:
        raise ApplierError(f"whatsmeow_version records v{state.version} but no whatsmeow tables exist")


@dataclass(frozen=True)
class Statement:
    """One statement of the plan; `step` is set for an upgrade file's whole text."""

    sql: str
    params: tuple | None = None
    step: Step | None = None


def version_table_statements(state: StoreState) -> list[Statement]:
    """Create the version table, or add `compat` to a pre-dbutil one, as dbutil does."""
    if not state.has_version_table:
        return [Statement(VERSION_TABLE_SQL.read_text(encoding="utf-8"))]
    if not state.has_compat_column:
        return [Statement("ALTER TABLE whatsmeow_version ADD COLUMN compat INTEGER")]
    return []


def step_statements(step: Step) -> list[Statement]:
    if not step.transaction:
        raise ApplierError(f"{step.name}: steps with `-- transaction: off` are not supported by this version")
    return [
        Statement(step.sql, step=step),
        Statement("DELETE FROM whatsmeow_version"),
        Statement("INSERT INTO whatsmeow_version (version, compat) VALUES (%s, %s)", (step.to_version, step.compat)),
    ]


def transactions(state: StoreState, path: list[Step], adopt_business_id: str | None) -> list[list[Statement]]:
    """The plan: each inner list runs as one transaction.

    A conversion is one transaction from the first upstream step to the last, so
    that a refusal (an invalid business_id) leaves even the upstream steps undone.
    """
    if not path:
        return []
    prelude = version_table_statements(state)
    if adopt_business_id is not None and state.kind == "upstream-single-tenant":
        # Read by the conversion step; SET LOCAL semantics, so it ends with the transaction.
        setting = Statement("SELECT set_config('whatsmeow.adopt_business_id', %s, true)", (adopt_business_id,))
        return [[setting, *prelude, *(s for step in path for s in step_statements(step))]]
    return [[*(prelude if i == 0 else []), *step_statements(step)] for i, step in enumerate(path)]


def render(conn: psycopg.Connection, plan_: list[list[Statement]]) -> str:
    """The exact SQL `execute` would send, as a psql-runnable script."""
    cursor = psycopg.ClientCursor(conn)
    out = []
    for statements in plan_:
        out.append("BEGIN;")
        for statement in statements:
            if statement.step:
                out.append(f"-- upgrades/{statement.step.name}")
                out.append(statement.sql.rstrip())
            else:
                out.append(cursor.mogrify(statement.sql, statement.params).rstrip().rstrip(";") + ";")
        out.append("COMMIT;")
    return "\n".join(out) + "\n"


# On Citus, row-level security is re-applied in the step's transaction below, and Citus refuses the
# function DDL of rls/ after DDL it ran over parallel connections to the shards in that transaction.
CITUS_SEQUENTIAL = (
    "SELECT pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true) "
    "FROM pg_catalog.pg_extension WHERE extname = 'citus'"
)


def execute(conn: psycopg.Connection, plan_: list[list[Statement]], quiet: bool) -> None:
    for statements in plan_:
        with conn.transaction():
            conn.execute(CITUS_SEQUENTIAL)
            for statement in statements:
                started = time.monotonic()
                try:
                    conn.execute(statement.sql, statement.params)
                except psycopg.Error as exc:
                    where, text = (statement.step.name, statement.sql) if statement.step else ("applier", None)
                    raise sql_error(where, text, exc) from exc
                if statement.step and not quiet:
                    elapsed = time.monotonic() - started
                    print(f"applied {statement.step.describe()} in {elapsed:.2f}s", file=sys.stderr)
            # Inside the step's transaction, so a table it adds is never without its policy.
            if reapply_if_enabled(conn) and not quiet:
                print("re-applied row-level security to every tenant table", file=sys.stderr)


def upgrade(
    conn: psycopg.Connection,
    *,
    adopt_business_id: str | None = None,
    lock_timeout: float = 60.0,
    quiet: bool = False,
    dry_run: bool = False,
    online: bool = False,
) -> list[Step]:
    """Apply every pending step (or, with dry_run, print the SQL); returns the steps planned."""
    steps = load_steps()
    acquire_lock(conn, lock_timeout, quiet=quiet)
    try:
        state = read_state(conn)
        check_convertible(state, adopt_business_id)
        # check_convertible has made sure a store to convert comes with the tenant that will own it.
        converting = state.kind in ("upstream-single-tenant", "conversion-in-progress")
        if state.kind == "conversion-in-progress" and not online:
            raise ApplierError("an online conversion of this store was interrupted; finish it with --online")
        if converting and online and dry_run:
            raise ApplierError("--dry-run prints the offline plan; the online conversion decides each "
                               "statement from the catalog as it goes, so it has no script to print")
        if converting:
            # Checked once, here, before anything changes; offline, the conversion step checks it again.
            check_business_id(conn, adopt_business_id, "business_id")
        if converting and online:
            return convert_online(conn, state, steps, adopt_business_id, quiet)
        if adopt_business_id is not None and state.kind == "multi-tenant":
            refuse_adopting_a_converted_store(conn, adopt_business_id, quiet)
        path = plan(state.version, state.compat, steps)
        plan_ = transactions(state, path, adopt_business_id)
        if dry_run:
            sys.stdout.write(render(conn, plan_))
            if not quiet:
                print(f"dry run: {len(path)} step(s) pending, nothing changed", file=sys.stderr)
            return path
        execute(conn, plan_, quiet)
        if not quiet:
            verb = "now" if path else "already"
            print(f"database is {verb} at v{latest_version(steps)}", file=sys.stderr)
        return path
    finally:
        release_lock(conn)


def refuse_adopting_a_converted_store(conn: psycopg.Connection, business_id: str, quiet: bool) -> None:
    """A store is converted once. The same tenant again (or a store with no device at all) is a no-op with a
    note; a store whose devices belong to anyone else is refused, so that the loser of two concurrent
    conversions with different tenants fails instead of reporting success."""
    tenants = [row[0] for row in conn.execute(
        "SELECT DISTINCT business_id FROM whatsmeow_device ORDER BY 1 LIMIT 4")]
    if tenants in ([], [business_id]):
        if not quiet:
            print(f"note: the store is already multi-tenant{' with tenant ' + business_id if tenants else ''}; "
                  "--adopt-business-id has nothing to convert", file=sys.stderr)
        return
    owners = ", ".join(tenants[:3]) + (", ..." if len(tenants) > 3 else "")
    raise ApplierError(
        f"--adopt-business-id {business_id}: the store was already converted and its devices belong to "
        f"{owners}; nothing was changed (leave the flag out to upgrade it)"
    )


def convert_online(conn: psycopg.Connection, state: StoreState, steps: dict[int, Step], business_id: str,
                   quiet: bool) -> list[Step]:
    """Upstream's remaining steps one by one, then the online conversion to the latest schema and the version row."""
    from applier.online import Converter

    path = plan(state.version, state.compat, steps)
    upstream_steps = [step for step in path if step.to_version < MULTI_TENANT_SINCE]
    for step in upstream_steps if state.kind == "upstream-single-tenant" else []:
        execute(conn, transactions(read_state(conn), [step], None), quiet)
    started = time.monotonic()
    converter = Converter(conn, business_id, lock_timeout_ms=500, retries=40, quiet=quiet)
    converter.run()
    # The converter builds the fresh install's schema, so the store is at its version.
    final = steps[0]
    with conn.transaction():
        for statement in [*version_table_statements(read_state(conn)), *step_statements(final)[1:]]:
            conn.execute(statement.sql, statement.params)
        conn.execute(sql.SQL("COMMENT ON TABLE whatsmeow_version IS {}").format(
            sql.Literal(converter.target.version_comment)))
    if not quiet:
        print(f"converted online to v{final.to_version} in {time.monotonic() - started:.2f}s; longest exclusive "
              f"lock held or awaited: {converter.longest_lock_wait:.3f}s", file=sys.stderr)
    return path
