"""`rls`: tenant row-level security: enable, disable, roles and status.

Each action runs files from rls/ in one transaction (applier.sqlfile.run_files).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from applier.errors import ApplierError
from applier.sqlfile import run_files, sql_error
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


def apply(conn: psycopg.Connection, names: tuple[str, ...], settings: dict[str, str] | None = None) -> None:
    """Run rls/ files in order inside one transaction (a savepoint if one is already open)."""
    run_files(conn, [RLS_DIR / name for name in names], settings)


def read_status(conn: psycopg.Connection) -> list[TableStatus]:
    """Row-level security of each tenant table, in name order."""
    path = RLS_DIR / STATUS
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ApplierError(f"cannot read {path}: {exc.strerror}") from exc
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
