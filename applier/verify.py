"""`verify`: compare the live whatsmeow schema with this package's definition of its version.

The expected schema is built, never written by hand: inside a transaction that is
always rolled back, a scratch schema receives the package's fresh-install step
(and, when the live store uses row-level security, the rls/ files that set it
up), and the catalog pictures of both schemas are compared object by object.
Column order is ignored, since ALTER TABLE appends columns.

Row-level security: the expected state follows the live store. No tenant table
with row-level security means none is expected, and no policy either; any table
with it means rls/enable.sql on every table (and rls/force.sql on every table if
any is forced). whatsmeow_set_tenant is expected when row-level security is on,
or when the function exists (rls disable keeps it). Roles and privileges are not
compared; `audit` checks those.
"""

from __future__ import annotations

import psycopg

from applier import catalog, rls
from applier.database import StoreState, read_state
from applier.errors import ApplierError, DatabaseNewerError
from applier.sqlfile import fresh_install_scratch
from applier.steps import MULTI_TENANT_SINCE, latest_version, load_steps, plan

TENANT_FUNCTION = "whatsmeow_set_tenant"


def check_verifiable(state: StoreState) -> None:
    """Refuse what this command cannot compare with a definition of the package."""
    if state.kind == "empty":
        raise ApplierError("the database holds no whatsmeow store; nothing to verify (install it with `upgrade`)")
    if state.kind == "upstream-single-tenant":
        raise ApplierError(
            f"the database holds an upstream single-tenant whatsmeow store at v{state.version}, which this "
            "package does not define; convert it with `upgrade --adopt-business-id BUSINESS_ID`, then verify"
        )
    steps = load_steps()
    plan(state.version, state.compat, steps)  # a database newer than the package exits 3 here
    if state.version > latest_version(steps):
        raise DatabaseNewerError(
            f"whatsmeow_version records v{state.version}, newer than this package (v{latest_version(steps)}), "
            "which cannot say what that version should look like; verify it with a newer package"
        )
    if state.version < MULTI_TENANT_SINCE or state.version != latest_version(steps):
        raise ApplierError(
            f"whatsmeow_version records v{state.version}, but this package can only build v{latest_version(steps)}; "
            "run `upgrade` first, then verify"
        )


def normalize(snapshot: dict[str, set[tuple]], quoted_schema: str) -> dict[str, set[tuple]]:
    """Take the schema's own name out of the texts that always name it: index and function definitions,
    the search_path a function pins, and the package's functions that a function body calls by their
    qualified name (whatsmeow_set_tenant names whatsmeow_refuse_tenant so, having no search_path to pin)."""
    prefix = f"{quoted_schema}."
    out = dict(snapshot)
    out["indexes"] = {(t, name, d.replace(f" ON {prefix}", " ON ", 1)) for t, name, d in snapshot["indexes"]}
    out["triggers"] = {(t, name, d.replace(f" ON {prefix}", " ON ", 1).replace(f"FUNCTION {prefix}", "FUNCTION ", 1))
                       for t, name, d in snapshot["triggers"]}
    out["functions"] = {
        (name, args, d.replace(f"FUNCTION {prefix}", "FUNCTION ", 1).replace(f"PROCEDURE {prefix}", "PROCEDURE ", 1)
         .replace(f"SET search_path TO 'pg_catalog', '{quoted_schema}', ", "SET search_path TO 'pg_catalog', <store>, ")
         .replace(f"{prefix}whatsmeow_", "<store>.whatsmeow_"))
        for name, args, d in snapshot["functions"]
    }
    return out


def current_schema(conn: psycopg.Connection) -> tuple[str, str]:
    """The current schema's name, and that name as an identifier, as the catalog prints it."""
    row = conn.execute("SELECT current_schema(), quote_ident(current_schema())").fetchone()
    if row[0] is None:
        raise ApplierError("no current schema: the search_path names no existing schema")
    return row[0], row[1]


def live_rls(live: dict[str, set[tuple]]) -> tuple[bool, bool, bool]:
    """Whether the live store has row-level security on any table, forced on any, and the tenant function."""
    flags = live["row_security"]
    functions = {name for name, _, _ in live["functions"]}
    enabled = any(row[1] for row in flags)
    return enabled, any(row[2] for row in flags), enabled or TENANT_FUNCTION in functions


def expected_snapshot(conn: psycopg.Connection, live: dict[str, set[tuple]]) -> dict[str, set[tuple]]:
    """Build the package's schema in a scratch schema and picture it; everything is rolled back."""
    enabled, forced, tenant_function = live_rls(live)
    try:
        with fresh_install_scratch(conn, "verify"):
            files = (rls.CONTEXT,) if tenant_function else ()
            files += (rls.ENABLE,) if enabled else ()
            files += (rls.FORCE,) if forced else ()
            if files:
                rls.apply(conn, files)
            return normalize(catalog.snapshot(conn), current_schema(conn)[1])
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ApplierError(
            "verify builds the expected schema in a scratch schema it rolls back, and needs CREATE on the "
            f"database for that: {exc.diag.message_primary} (SQLSTATE {exc.sqlstate})"
        ) from exc
    except psycopg.Error as exc:
        raise ApplierError(f"cannot build the expected schema: {exc.diag.message_primary or exc} "
                           f"(SQLSTATE {exc.sqlstate})") from exc


def differences(conn: psycopg.Connection) -> list[str]:
    """Every difference between the live schema and the package's definition of its version."""
    check_verifiable(read_state(conn))
    live = normalize(catalog.snapshot(conn), current_schema(conn)[1])
    return catalog.differences(expected_snapshot(conn, live), live)
