"""`embedded`: the local PostgreSQL the applier starts when no database is given: status, start, stop."""

from __future__ import annotations

import json
import sys

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
