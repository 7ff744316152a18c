"""`embedded`: the local PostgreSQL the applier starts when no database is given: status, start, stop."""

from __future__ import annotations

import json
import sys

from applier.commands.options import Shared, as_json
from applier.embedded import Cluster


def describe(cluster: Cluster) -> dict:
    initialised = cluster.initialised()
    return {
        "home": str(cluster.home),
        "initialised": initialised,
        "running": initialised and cluster.running(),
        "dsn": cluster.dsn(),
        "server_binaries": str(cluster.bindir),
        "os_user": cluster.os_user or "(this user)",
        "log": str(cluster.logfile),
    }


def run(args) -> int:
    cluster = Cluster.default()
    if args.action == "start":
        cluster.ensure_running()
        cluster.ensure_database()
    elif args.action == "stop" and cluster.initialised() and cluster.running():
        cluster.stop()
    state = describe(cluster)
    if args.json:
        print(json.dumps(state, indent=2))
    elif args.action == "status":
        print(f"embedded PostgreSQL in {state['home']}: "
              + ("running" if state["running"] else "stopped" if state["initialised"] else "not created yet"))
        if state["running"]:
            print(f"  connect with: psql '{state['dsn']}'")
        print(f"  server binaries {state['server_binaries']}, run as {state['os_user']}, log {state['log']}")
    if not args.quiet and args.action == "start":
        print(f"embedded PostgreSQL in {state['home']} is running: {state['dsn']}", file=sys.stderr)
    if not args.quiet and args.action == "stop":
        print(f"embedded PostgreSQL in {state['home']} is stopped; the next command without a database "
              "starts it again", file=sys.stderr)
    return 0


def add_parser(commands, shared: Shared) -> None:
    parser, actions = shared.group(
        commands, "embedded", "the local PostgreSQL used when no database is given: status, start, stop",
        epilog="It lives in $WHATSMEOW_TENANCY_HOME (default ~/.local/share/whatsmeow-tenancy, or "
        "/var/lib/whatsmeow-tenancy for root), listens only on a socket there, and keeps running after a command "
        "until `embedded stop`.")
    parser.set_defaults(run=run)
    for name, summary in (("status", "whether it exists and runs, and how to connect (exit 0)"),
                          ("start", "create it if needed and start it"),
                          ("stop", "stop it; the data stays")):
        as_json(shared.command(actions, name, summary, database=False, epilog=""), "the state")
