"""`audit`: re-apply the audit views of audits/ and report what they find.

The files of audits/ run in one transaction (applier.sqlfile.run_files), so the
views are replaced together or not at all. Invariant violations come from the
view whatsmeow_audit.findings (exit 1 when it has rows); the informational views
are printed and never change the exit code.
"""

from __future__ import annotations

import datetime
import decimal
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from applier.database import (
    BuiltinShadowsError,
    acquire_lock,
    read_state,
    refuse_builtin_shadows,
    refuse_newer,
    release_lock,
)
from applier.errors import ApplierError
from applier.sqlfile import run_files, sql_error
from applier.steps import PACKAGE_ROOT

AUDITS_DIR = PACKAGE_ROOT / "audits"
FILE_NAME = re.compile(r"^\d\d-[a-z0-9]+(?:-[a-z0-9]+)*\.sql$")
LOCK_TIMEOUT = 60.0

# Informational sections: name -> query. Each is read on its own, so one that
# fails (pg_stat_statements installed but not preloaded, say) is reported as
# unavailable and the others still print.
INFORMATION = {
    "tenants": "SELECT business_id, devices, total_rows, rows_per_table, total_bytes, bytes_per_table "
    "FROM whatsmeow_audit.tenants",
    "mutation_mac_history": "SELECT business_id, mac_rows, superseded_rows, superseded_percent "
    "FROM whatsmeow_audit.mutation_mac_history",
    "row_security": "SELECT table_name, enabled, forced, policies, tenant_policy "
    "FROM whatsmeow_audit.row_security_status",
    "privileged_roles": "SELECT role_name, superuser, bypass_rls, owned_tenant_tables, reason, through_role "
    "FROM whatsmeow_audit.privileged_roles",
    "connections": "SELECT role_name, application_name, connections, active, idle_in_transaction, connection_limit "
    "FROM whatsmeow_audit.connections",
    "unused_indexes": "SELECT index_name, table_name, is_unique, size_bytes, counted_since "
    "FROM whatsmeow_audit.unused_indexes",
    "maintenance": "SELECT table_name, live_tuples, dead_tuples, dead_percent, last_vacuum, since_vacuum, "
    "last_analyze, since_analyze FROM whatsmeow_audit.table_maintenance",
    "slow_statements": "SELECT query, calls, total_ms, mean_ms, rows, note FROM whatsmeow_audit.slow_statements",
    "allowed_table_objects": "SELECT table_name, kind, object_name, object_owner, detail "
    "FROM whatsmeow_audit.table_objects WHERE allowed",
    "distribution": "SELECT table_name, table_type, distribution_column, colocation_id, shards, nodes "
    "FROM whatsmeow_audit.distribution",
}
# The coordinator's own statistics, which on Citus describe tables without rows.
LOCAL_STATISTICS = ("unused_indexes", "maintenance")
CITUS_LOCAL_STATISTICS = (
    "the tables are distributed with Citus, and these statistics would be the coordinator's, whose tables hold "
    "no rows; the shards' are on the workers (run_command_on_shards, or pg_stat_user_tables on each worker)"
)


@dataclass(frozen=True)
class Finding:
    check: str
    object: str
    problem: str


def audit_files(folder: Path = AUDITS_DIR) -> list[Path]:
    files = sorted(path for path in folder.glob("*.sql") if FILE_NAME.match(path.name))
    if not files:
        raise ApplierError(f"no audit files in {folder}")
    return files


def apply_audits(conn: psycopg.Connection) -> int:
    """(Re)create every audit view in one transaction; returns the number of files applied."""
    files = audit_files()
    run_files(conn, files)
    return len(files)


def read_findings(conn: psycopg.Connection) -> tuple[list[tuple[str, str]], list[Finding]]:
    """The checks in report order with their descriptions, and every violation."""
    try:
        checks = conn.execute('SELECT "check", description FROM whatsmeow_audit.checks ORDER BY position').fetchall()
        rows = conn.execute('SELECT "check", object, problem FROM whatsmeow_audit.findings').fetchall()
    except psycopg.Error as exc:
        raise sql_error("whatsmeow_audit.findings", "", exc) from exc
    # A check added to the findings view but not to the checks view still gets reported.
    checks += [(name, "") for name in sorted({row[0] for row in rows} - {name for name, _ in checks})]
    order = {name: i for i, (name, _) in enumerate(checks)}
    findings = sorted((Finding(*row) for row in rows), key=lambda f: (order[f.check], f.object, f.problem))
    return checks, findings


def plain(value):
    """A JSON-ready value: intervals in seconds, timestamps in ISO 8601, decimals as numbers."""
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds(), 3)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def read_information(conn: psycopg.Connection) -> dict[str, dict]:
    sections = {}
    for name, query in INFORMATION.items():
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(query)
                columns = [column.name for column in cur.description]
                rows = [dict(zip(columns, map(plain, row))) for row in cur.fetchall()]
            sections[name] = {"rows": rows, "unavailable": None}
        except psycopg.Error as exc:
            sections[name] = {"rows": [], "unavailable": exc.diag.message_primary or str(exc).strip()}
    if any(row["table_type"] != "local" for row in sections["distribution"]["rows"]):
        for name in LOCAL_STATISTICS:
            sections[name] = {"rows": [], "unavailable": CITUS_LOCAL_STATISTICS}
    return sections


BUILTIN_SHADOWS = ("builtin_shadows", "no schema on search_path holds a look-alike of a built-in "
                   "(checked first: the rest of the audit would call it)")


def shadowed_document(conn: psycopg.Connection, objects: list[str]) -> dict:
    """The audit of a database whose search_path holds look-alikes of built-ins: those, and nothing that
    would call them."""
    schema = conn.execute("SELECT pg_catalog.current_schema()").fetchone()[0]
    name, description = BUILTIN_SHADOWS
    problem = "is named like a built-in, and may run in its place with the rights of whoever calls it"
    return {
        "schema": schema,
        "version": None,
        "ok": False,
        "findings": len(objects),
        "checks": [{"check": name, "description": description,
                    "findings": [{"object": obj, "problem": problem} for obj in objects]}],
        "information": {},
    }


def collect(conn: psycopg.Connection, *, quiet: bool = True) -> dict:
    """Apply the audit views, then read them; the document `--json` prints."""
    try:
        refuse_builtin_shadows(conn)
    except BuiltinShadowsError as exc:
        return shadowed_document(conn, exc.objects)
    state = read_state(conn)
    refuse_newer(state)
    if state.kind != "multi-tenant":
        raise ApplierError(f"the database holds no multi-tenant whatsmeow store ({state.kind}); "
                           "run `upgrade` first, then audit it")
    started = time.monotonic()
    acquire_lock(conn, LOCK_TIMEOUT, quiet=quiet)
    try:
        applied = apply_audits(conn)
    finally:
        release_lock(conn)
    if not quiet:
        print(f"applied {applied} files of audits/ in {time.monotonic() - started:.2f}s", file=sys.stderr)
    checks, findings = read_findings(conn)
    return {
        "schema": conn.execute("SELECT current_schema()").fetchone()[0],
        "version": state.version,
        "ok": not findings,
        "findings": len(findings),
        "checks": [
            {"check": BUILTIN_SHADOWS[0], "description": BUILTIN_SHADOWS[1], "findings": []},
            *(
                {
                    "check": name,
                    "description": description,
                    "findings": [{"object": f.object, "problem": f.problem} for f in findings if f.check == name],
                }
                for name, description in checks
            ),
        ],
        "information": read_information(conn),
    }
