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

import difflib

import psycopg

from applier import catalog, rls
from applier.database import StoreState, read_state
from applier.errors import ApplierError, DatabaseNewerError
from applier.sqlfile import fresh_install_scratch
from applier.steps import MULTI_TENANT_SINCE, latest_version, load_steps, plan

# The fields of each kind of catalog row (catalog.QUERIES), and how many of them
# name the object; the rest describe it, so a row whose name matches but whose
# description differs is altered rather than missing plus extra.
FIELDS = {
    "columns": (("table", "column"), ("type", "not null", "default", "collation")),
    "constraints": (("table", "constraint"), ("type", "definition", "validated")),
    "indexes": (("table", "index"), ("definition",)),
    "policies": (("table", "policy"), ("permissive", "roles", "command", "using", "with check")),
    "row_security": (("table",), ("enabled", "forced")),
    "comments": (("table",), ("comment",)),
    "triggers": (("table", "trigger"), ("definition",)),
    "functions": (("function", "arguments"), ("definition",)),
}
SINGULAR = {"columns": "column", "constraints": "constraint", "indexes": "index", "policies": "policy",
            "row_security": "row security", "comments": "comment", "triggers": "trigger",
            "functions": "function"}
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


def _name(kind: str, row: tuple) -> str:
    if kind == "functions":
        return f"{row[0]}({row[1]})"
    return ".".join(row[: len(FIELDS[kind][0])])


def _details(kind: str, row: tuple) -> str:
    """What the object is, in the catalog's own words."""
    if kind in ("indexes", "constraints", "triggers"):
        return row[3] if kind == "constraints" else row[2]  # pg_get_constraintdef says NOT VALID itself
    if kind == "columns":
        return row[2] + (" NOT NULL" if row[3] else "") + (f" DEFAULT {row[4]}" if row[4] is not None else "")
    if kind == "functions":
        return row[2].split("\n", 1)[0]
    if kind == "policies":
        return f"AS {row[2]} FOR {row[4]} TO {row[3]} USING {row[5]} WITH CHECK {row[6]}"
    if kind == "comments":
        return repr(row[1])
    return f"enabled {row[1]}, forced {row[2]}"


def _altered(kind: str, expected: tuple, actual: tuple) -> str:
    names, labels = FIELDS[kind]
    parts = []
    for label, want, have in zip(labels, expected[len(names):], actual[len(names):]):
        if want == have:
            continue
        if isinstance(want, str) and isinstance(have, str) and "\n" in want + have:
            diff = list(difflib.unified_diff(want.splitlines(), have.splitlines(), lineterm="", n=0))[3:]
            parts.append(f"{label} differs (- expected, + live):\n    " + "\n    ".join(diff))
        else:
            parts.append(f"{label} {_shown(want)} -> {_shown(have)}")
    return f"altered {SINGULAR[kind]} {_name(kind, expected)}: " + "; ".join(parts)


def _shown(value) -> str:
    """A catalog value as the report shows it: NULL as `none` (no default, the default collation)."""
    return "none" if value is None else repr(value)


def compare(expected: dict[str, set[tuple]], actual: dict[str, set[tuple]]) -> list[str]:
    """One line per difference: missing (expected, not live), extra (live, not expected) or altered."""
    lines = []
    for kind, (names, _) in FIELDS.items():
        want = {row[: len(names)]: row for row in expected[kind]}
        have = {row[: len(names)]: row for row in actual[kind]}
        for key in sorted(want.keys() | have.keys(), key=repr):
            if key not in have:
                lines.append(f"missing {SINGULAR[kind]} {_name(kind, key)}: {_details(kind, want[key])}")
            elif key not in want:
                lines.append(f"extra {SINGULAR[kind]} {_name(kind, key)}: {_details(kind, have[key])}")
            elif want[key] != have[key]:
                lines.append(_altered(kind, want[key], have[key]))
    return lines


def differences(conn: psycopg.Connection) -> list[str]:
    """Every difference between the live schema and the package's definition of its version."""
    check_verifiable(read_state(conn))
    live = normalize(catalog.snapshot(conn), current_schema(conn)[1])
    return compare(expected_snapshot(conn, live), live)
