"""`status`: what version the database is at and what would run next."""

from __future__ import annotations

import json
import sys

from applier.commands.options import Shared, as_json
from applier.database import open_database, read_state
from applier.errors import EXIT_OK, EXIT_PENDING, ApplierError
from applier.rls import read_status
from applier.steps import latest_version, load_steps, plan
from applier.upgrade import check_convertible


def collect(conn) -> tuple[dict, int]:
    """The status document (its keys are a stable, documented interface) and the exit code."""
    steps = load_steps()
    state = read_state(conn)
    problem, code = None, EXIT_OK
    try:
        check_convertible(state)
    except ApplierError as exc:
        problem, code = str(exc), exc.exit_code
    try:
        pending = [
            {"from": s.from_version, "to": s.to_version, "compat": s.compat, "file": s.name, "message": s.message}
            for s in plan(state.version, state.compat, steps)
        ]
    except ApplierError as exc:
        pending, problem, code = [], str(exc), exc.exit_code
    if code == EXIT_OK and pending:
        code = EXIT_PENDING
    tenants = None
    rls = None
    if state.kind == "multi-tenant":
        tables = read_status(conn)
        enabled, covered = sum(t.enabled for t in tables), sum(t.covered for t in tables)
        forced = sum(t.forced for t in tables)
        rls = "off" if not enabled else "partial" if covered < len(tables) else "forced" if forced else "on"
        tenants = conn.execute("SELECT count(DISTINCT business_id) FROM whatsmeow_device").fetchone()[0]
    return {
        "version": state.version,
        "compat": state.compat,
        "latest_version": latest_version(steps),
        "store": state.kind,
        "pending": pending,
        "problem": problem,
        "rls": rls,
        "tenants": tenants,
    }, code


def run(args) -> int:
    with open_database(args.dsn, quiet=args.quiet or args.json) as conn:
        doc, code = collect(conn)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"version:  v{doc['version']} (compatible down to v{doc['compat']})")
        print(f"latest:   v{doc['latest_version']}")
        print(f"store:    {doc['store']}")
        if doc["rls"] is not None:
            print(f"rls:      {doc['rls']}")
        if doc["tenants"] is not None:
            print(f"tenants:  {doc['tenants']}")
        for step in doc["pending"]:
            print(f"pending:  v{step['from']} -> v{step['to']}: {step['message']} [{step['file']}]")
        if doc["problem"]:
            print(f"problem:  {doc['problem']}", file=sys.stderr)
    return code


def add_parser(commands, shared: Shared) -> None:
    parser = shared.command(commands, "status", "show the recorded version, the newest known one and the pending steps "
                            "(exit 1 if any)", "status --json")
    as_json(parser, "the status document")
    parser.set_defaults(run=run)
