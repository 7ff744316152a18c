"""`rls`: tenant row-level security: enable, disable, roles and status."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import psycopg

from applier.commands.options import Shared, as_json, lock_timeout
from applier.database import acquire_lock, open_database, read_state, refuse_newer, release_lock
from applier.errors import ApplierError
from applier.rls import TableStatus, create_roles, disable, enable, read_status


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
        state = read_state(conn)
        refuse_newer(state)
        if args.action != "disable" and state.kind != "multi-tenant":
            raise ApplierError("the database has no multi-tenant store yet; run `upgrade` first")
        acquire_lock(conn, args.lock_timeout, quiet=quiet)
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


def add_parser(commands, shared: Shared) -> None:
    parser, actions = shared.group(commands, "rls", "tenant row-level security: enable [--force], disable, roles, status")
    parser.set_defaults(run=run)
    enable_ = shared.command(actions, "enable", "turn on the tenant policy for every tenant table (re-runnable)",
                             "rls enable --force")
    disable_ = shared.command(actions, "disable", "remove the tenant policy and turn row-level security off",
                              "rls disable")
    roles = shared.command(actions, "roles", "create the owner and application roles and set their privileges",
                           "rls roles --app-role app")
    for changing in (enable_, disable_, roles):
        lock_timeout(changing)
    enable_.add_argument("--force", action="store_true",
                         help="also bind the tables' owner (for an application connecting as owner)")
    roles.add_argument("--app-role", metavar="NAME", help="default whatsmeow_app")
    roles.add_argument("--owner-role", metavar="NAME", help="default whatsmeow_owner")
    guardrails = roles.add_argument_group(
        "guardrails for the application role and each login that is a member of it (unset unless given)")
    guardrails.add_argument("--app-connection-limit", type=int, metavar="N",
                            help="at most N connections per role (ALTER ROLE ... CONNECTION LIMIT)")
    guardrails.add_argument("--app-idle-session-timeout", metavar="DURATION",
                            help="close sessions idle this long, e.g. 10min (PostgreSQL 14+)")
    guardrails.add_argument("--app-idle-in-transaction-timeout", metavar="DURATION",
                            help="end transactions left idle this long, e.g. 30s")
    as_json(shared.command(actions, "status", "show row-level security per tenant table (exit 0)", "rls status --json"),
            "the status")
