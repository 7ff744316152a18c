"""`rls`: tenant row-level security: enable, disable, roles and status.

Each action runs files from rls/ in one transaction. The files carry their own
BEGIN/COMMIT for psql; the applier takes those two lines out and supplies the
transaction itself, so several files apply together or not at all.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

import psycopg

from applier.database import acquire_lock, open_database, read_state, release_lock
from applier.errors import ApplierError
from applier.sqlfile import read_wrapped, sql_error
from applier.steps import PACKAGE_ROOT

RLS_DIR = PACKAGE_ROOT / "rls"
CONTEXT = "tenant-context.sql"
ROLES = "roles.sql"
ENABLE = "enable.sql"
FORCE = "force.sql"
DISABLE = "disable.sql"
STATUS = "status.sql"
# The settings roles.sql reads its role names and guardrails from.
ROLE_SETTINGS = {
    "app_role": "whatsmeow.app_role",
    "owner_role": "whatsmeow.owner_role",
    "connection_limit": "whatsmeow.app_connection_limit",
    "idle_session_timeout": "whatsmeow.app_idle_session_timeout",
    "idle_in_transaction_session_timeout": "whatsmeow.app_idle_in_transaction_session_timeout",
}


@dataclass(frozen=True)
class TableStatus:
    table: str
    enabled: bool
    forced: bool
    policy: bool

    @property
    def covered(self) -> bool:
        return self.enabled and self.policy


def read_sql(name: str, *, wrapped: bool = True) -> str:
    """The text of rls/<name>; a wrapped file's BEGIN;/COMMIT; are left to the caller's transaction."""
    path = RLS_DIR / name
    if wrapped:
        return read_wrapped(path, f"rls/{name}")
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ApplierError(f"cannot read {path}: {exc.strerror}") from exc


def apply(conn: psycopg.Connection, names: tuple[str, ...], settings: dict[str, str] | None = None) -> None:
    """Run rls/ files in order inside one transaction (a savepoint if one is already open)."""
    with conn.transaction():
        for setting, value in (settings or {}).items():
            conn.execute("SELECT set_config(%s, %s, TRUE)", (setting, value))
        for name in names:
            text = read_sql(name)
            try:
                conn.execute(text)
            except psycopg.Error as exc:
                raise sql_error(f"rls/{name}", text, exc) from exc


def read_status(conn: psycopg.Connection) -> list[TableStatus]:
    """Row-level security of each tenant table, in name order."""
    text = read_sql(STATUS, wrapped=False)
    try:
        rows = conn.execute(text).fetchall()
    except psycopg.Error as exc:
        raise sql_error(f"rls/{STATUS}", text, exc) from exc
    return [TableStatus(*row) for row in rows]


def enable(conn: psycopg.Connection, *, force: bool = False) -> None:
    apply(conn, (CONTEXT, ENABLE, FORCE) if force else (CONTEXT, ENABLE))


def disable(conn: psycopg.Connection) -> None:
    apply(conn, (DISABLE,))


def create_roles(conn: psycopg.Connection, **options: str | int | None) -> None:
    """roles.sql with the role names and guardrails of ROLE_SETTINGS; None leaves an option at its default."""
    settings = {ROLE_SETTINGS[key]: str(value) for key, value in options.items() if value is not None}
    apply(conn, (CONTEXT, ROLES), settings)


def reapply_if_enabled(conn: psycopg.Connection) -> bool:
    """After upgrade steps: if any tenant table has row-level security, cover every tenant table again.

    enable.sql keeps FORCE on every table once any table is forced, so a table an
    upgrade added ends up like the others. Returns whether anything was re-applied.
    The caller holds the appliers' advisory lock.
    """
    if not any(status.enabled for status in read_status(conn)):
        return False
    enable(conn)
    return True


def summary(tables: list[TableStatus]) -> str:
    covered = sum(t.covered for t in tables)
    forced = sum(t.forced for t in tables)
    if not tables:
        return "row-level security: no tenant tables in this schema"
    if not covered:
        return f"row-level security: off on all {len(tables)} tenant tables"
    state = "on" if covered == len(tables) else "partial"
    return f"row-level security: {state}, {covered} of {len(tables)} tenant tables covered, {forced} forced"


def show_status(conn: psycopg.Connection, as_json: bool) -> None:
    tables = read_status(conn)
    if as_json:
        doc = {
            "tables": [{**asdict(t), "covered": t.covered} for t in tables],
            "covered": sum(t.covered for t in tables),
            "forced": sum(t.forced for t in tables),
            "total": len(tables),
        }
        print(json.dumps(doc, indent=2))
        return
    width = max((len(t.table) for t in tables), default=5)
    print(f"{'table':<{width}}  enabled  forced  policy")
    for t in tables:
        print(f"{t.table:<{width}}  {_yes(t.enabled):<7}  {_yes(t.forced):<6}  {_yes(t.policy)}")
    print(summary(tables))


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def report_notices(conn: psycopg.Connection) -> None:
    """Print what the rls/ files say they changed (NOTICE) or could not change (WARNING)."""
    def show(diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity_nonlocalized in ("NOTICE", "WARNING"):
            label = "warning" if diag.severity_nonlocalized == "WARNING" else "changed"
            print(f"{label}: {diag.message_primary}", file=sys.stderr)

    conn.add_notice_handler(show)


def run(args) -> int:
    quiet = args.quiet or getattr(args, "json", False)
    with open_database(args.dsn, quiet=quiet) as conn:
        if not quiet:
            report_notices(conn)
        if args.action == "status":
            show_status(conn, args.json)
            return 0
        if args.action != "disable" and read_state(conn).kind != "multi-tenant":
            raise ApplierError("the database has no multi-tenant store yet; run `upgrade` first")
        acquire_lock(conn, args.lock_timeout)
        try:
            if args.action == "enable":
                enable(conn, force=args.force)
            elif args.action == "disable":
                disable(conn)
            elif args.action == "roles":
                create_roles(
                    conn,
                    app_role=args.app_role,
                    owner_role=args.owner_role,
                    connection_limit=args.app_connection_limit,
                    idle_session_timeout=args.app_idle_session_timeout,
                    idle_in_transaction_session_timeout=args.app_idle_in_transaction_timeout,
                )
            else:
                raise ApplierError(f"unknown rls action {args.action!r}")
            tables = read_status(conn)
        finally:
            release_lock(conn)
    if not quiet:
        done = {"enable": "enabled", "disable": "disabled", "roles": "roles and privileges applied"}[args.action]
        print(f"{done}; {summary(tables)}", file=sys.stderr)
    return 0
