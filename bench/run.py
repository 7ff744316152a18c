"""The benchmark: multi-tenant store vs upstream whatsmeow, side by side on one server.

    .venv/bin/python bench/run.py                     # default preset, about twelve minutes on 2 cores
    .venv/bin/python bench/run.py --preset large      # about 10M rows; a deliberate run
    # the hot path alone, its report written elsewhere than bench/results:
    .venv/bin/python bench/run.py --skip writecost --skip sweep --skip conversion --skip applier --output /tmp/hot

Starts its own PostgreSQL in a temporary folder and loads the same rows into
  (a) an upstream single-tenant v15 store (every tenant's devices in one store),
  (b) the multi-tenant schema at its newest version, without row-level security,
  (c) a copy of (b) with row-level security forced, used by a login role in whatsmeow_app;
then measures the hot path with pgbench (tps, p50/p99), every catalogue query's
work at two data sizes, storage, conversion and the applier, and writes
bench/results/latest.md and bench/results/latest.png.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

import conversion
import hotpath
import report
import sweep
import tenantcontext
import writecost
from applier.embedded import Cluster
from catalogue import forms
from data import Shape
from harness import RESULTS, ROOT, admin, machine, postmaster_pid, progress, statement_stats, temporary_cluster
from stores import APP_LOGIN, build, login, with_rls

PRESETS = {
    "default": {"tenants": 20, "devices_per_tenant": 5, "peers_per_device": 1000, "duration": 8},
    "large": {"tenants": 100, "devices_per_tenant": 10, "peers_per_device": 750, "duration": 20},
}
SWEEP_PEERS = 500  # peers per device at 1x in the EXPLAIN sweep (4 tenants x 2 devices); 4x has 2000


# --------------------------------------------------------------------------
# The databases
# --------------------------------------------------------------------------

def rows_and_sizes(cluster: Cluster, name: str) -> tuple[int, int, dict[str, tuple[int, int]]]:
    """(total rows, database bytes, {table: (rows, table + index bytes)})."""
    with admin(cluster, name) as conn:
        tables = {}
        for (table,) in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r' "
                                     "AND relname LIKE 'whatsmeow\\_%' AND relname <> 'whatsmeow_version'"):
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            size = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()[0]
            tables[table] = (count, size)
        database = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return sum(rows for rows, _ in tables.values()), database, tables


def rebuild_indexes(cluster: Cluster, name: str) -> None:
    with admin(cluster, name) as conn:
        for (table,) in conn.execute("SELECT relname FROM pg_class WHERE relkind = 'r' "
                                     "AND relname LIKE 'whatsmeow\\_%'").fetchall():
            conn.execute(f"REINDEX TABLE {table}")


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------

CONFIGS = [
    # label, title, database, user, form, shape
    ("A-op", "(a) upstream, statements autocommitted", "upstream", "postgres", "upstream", "op"),
    ("B-op", "(b) multi-tenant, statements autocommitted", "tenant", "postgres", "tenant", "op"),
    ("A-optx", "(a) upstream, each statement in BEGIN … COMMIT", "upstream", "postgres", "upstream", "op-tx"),
    ("C-op", "(c) RLS forced, tenant set per transaction (one per statement)", "tenant_rls", APP_LOGIN, "tenant",
     "op-rls"),
    ("A-optxpipe", "(a) upstream, each statement in BEGIN … COMMIT, pipelined: one round trip per statement",
     "upstream", "postgres", "upstream", "op-tx-pipe"),
    ("C-pipe", "(c) RLS forced, tenant set per transaction, pipelined: one round trip per statement",
     "tenant_rls", APP_LOGIN, "tenant", "op-rls-pipe"),
    ("A-batch", "(a) upstream, message in one transaction", "upstream", "postgres", "upstream", "batch"),
    ("B-batch", "(b) multi-tenant, message in one transaction", "tenant", "postgres", "tenant", "batch"),
    ("D-batch", "(d) RLS forced, tenant set once per checkout (one transaction per message)", "tenant_rls",
     APP_LOGIN, "tenant", "batch-rls"),
    ("A-batchpipe", "(a) upstream, message in one transaction, BEGIN pipelined with the first statement",
     "upstream", "postgres", "upstream", "batch-pipe"),
    ("D-pipe", "(d) RLS forced, tenant set once per checkout, BEGIN and tenant pipelined with the first statement",
     "tenant_rls", APP_LOGIN, "tenant", "batch-rls-pipe"),
]
# (ratio label, numerator, denominator, target or None for information only, client form)
# The naive forms send BEGIN, the tenant call and COMMIT each as a round trip of their own;
# the pipelined forms send them with the statements, so only the schema's own cost remains.
RATIOS = [
    ("(b) / (a), per statement", "B-op", "A-op", 0.98, ""),
    ("(b) / (a), per message", "B-batch", "A-batch", 0.98, ""),
    ("(c) / (a), context per transaction", "C-op", "A-op", 0.90, "naive: 4 round trips per statement, (a) 1"),
    ("(c) / (a) with the same transactions", "C-op", "A-optx", 0.90, "naive: 4 round trips per statement, (a) 3"),
    ("(c) / (a), context per transaction, pipelined", "C-pipe", "A-op", 0.90,
     "pipelined: 1 round trip per statement, as upstream"),
    ("(c) / (a) with the same transactions, pipelined", "C-pipe", "A-optxpipe", None,
     "pipelined: what the tenant call and the policies cost"),
    ("(a) in transactions / (a) autocommitted", "A-optx", "A-op", None,
     "upstream: 3 round trips per statement instead of 1"),
    ("(a) in transactions, pipelined / (a) autocommitted", "A-optxpipe", "A-op", None,
     "upstream: BEGIN and COMMIT in the statement's round trip"),
    ("(d) / (a), context per checkout", "D-batch", "A-batch", 0.97,
     "naive: 1 round trip per message more than (a)"),
    ("(d) / (a), context per checkout, pipelined", "D-pipe", "A-batchpipe", 0.97,
     "pipelined: the same round trips as (a)"),
    ("(d) pipelined / (a) not pipelined", "D-pipe", "A-batch", None,
     "pipelined: 1 round trip per message fewer than (a)"),
]


def hot_path(cluster: Cluster, workdir: Path, shape: Shape, clients: int, duration: int, rounds: int) -> dict:
    tenant_forms, upstream_forms = forms()
    scripts_dir = workdir / "scripts"
    scripts_dir.mkdir()
    logs = workdir / "logs"
    logs.mkdir()
    pid = postmaster_pid(cluster)
    configs = [hotpath.Config(*c) for c in CONFIGS]
    scripts = {c.label: hotpath.write_scripts(scripts_dir, shape, clients, c,
                                              tenant_forms if c.form == "tenant" else upstream_forms)
               for c in configs}
    progress(f"hot path: warming up each of {len(configs)} configurations for 3s")
    for c in configs:
        hotpath.run_pgbench(cluster.bindir, cluster.socketdir, c, scripts[c.label], clients, 3, None)
    for r in range(rounds):
        # Alternate the order, so a drift over time does not favour one configuration.
        for c in configs if r % 2 == 0 else reversed(configs):
            run = hotpath.run_pgbench(cluster.bindir, cluster.socketdir, c, scripts[c.label], clients, duration,
                                      logs / f"{c.label}-{r}", pid)
            c.tps.append(run.tps)
            c.cpu.append(run.cpu_per_message)
            c.p50.append(hotpath.percentile(run.latencies, 0.50))
            c.p99.append(hotpath.percentile(run.latencies, 0.99))
            progress(f"hot path: round {r + 1}/{rounds} {c.label:11} {run.tps:7.0f} msg/s  {run.cpu_per_message:5.0f} "
                     f"us CPU/msg  p50 {c.p50[-1]:5.2f} ms  p99 {c.p99[-1]:6.2f} ms")
    by_label = {c.label: c for c in configs}
    ratios = []
    for label, num, den, target, form in RATIOS:
        per_round = [n / d for n, d in zip(by_label[num].tps, by_label[den].tps)]
        cpu_rounds = [d / n for n, d in zip(by_label[num].cpu, by_label[den].cpu)]
        ratios.append({"label": label, "num": num, "den": den, "target": target, "form": form,
                       "ratio": statistics.median(per_round), "rounds": per_round,
                       "cpu_ratio": statistics.median(cpu_rounds), "cpu_rounds": cpu_rounds})
    return {"configs": configs, "ratios": ratios, "statements": statement_costs(cluster, scripts, by_label, clients)}


def statement_costs(cluster: Cluster, scripts: dict, configs: dict, clients: int) -> list[tuple]:
    """Server time per call of each statement (planning included) in (a), (b) and (d), from pg_stat_statements."""
    with admin(cluster) as conn:
        conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'top'")
        conn.execute("SELECT pg_reload_conf()")
    costs: dict[str, dict[str, float]] = {}
    try:
        for label in ("A-op", "B-op", "D-batch"):
            c = configs[label]
            with admin(cluster, c.database) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")
            hotpath.run_pgbench(cluster.bindir, cluster.socketdir, c, scripts[label], clients, 5, None)
            with admin(cluster, c.database) as conn:
                for query, calls, plans, us in conn.execute(
                    "SELECT query, calls, plans, (total_exec_time + total_plan_time) / calls * 1000 "
                    f"FROM {statement_stats(conn)} AS s WHERE calls > 50 AND (query LIKE '%whatsmeow%' OR query IN "
                    "('BEGIN', 'COMMIT'))"
                ):
                    name = hotpath.statement_name(query)
                    costs.setdefault(name, {})[label] = us
                    costs[name][label + " replanned"] = plans is not None and plans >= calls
    finally:
        with admin(cluster) as conn:
            conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'none'")
            conn.execute("SELECT pg_reload_conf()")
    progress(f"hot path: server time of {len(costs)} statements in (a) and (b) from pg_stat_statements")
    return sorted((name, v.get("A-op"), v.get("B-op"), v.get("D-batch"), v.get("A-op replanned"),
                   v.get("B-op replanned")) for name, v in costs.items())


def query_sweep(cluster: Cluster, shapes: dict[str, Shape]) -> list[dict]:
    """Every catalogue query (and prune) at 1x and 4x: (a), (b), (b) as a prepared statement, (c)."""
    tenant_forms, upstream_forms = forms()
    results = {name: {} for name in tenant_forms}
    for size, shape in shapes.items():
        values, overrides = None, None
        for config, database, user, use_forms, prepared in (
            ("a", f"sweep{size}_a", "postgres", upstream_forms, False),
            ("b", f"sweep{size}_b", "postgres", tenant_forms, False),
            ("b-prepared", f"sweep{size}_b", "postgres", tenant_forms, True),
            ("c", f"sweep{size}_c", APP_LOGIN, tenant_forms, False),
        ):
            dsn = cluster.dsn(database).replace("user=postgres", f"user={user}")
            with psycopg.connect(dsn) as conn:
                if values is None:
                    values, overrides = sweep.key_values(conn, shape)
                for name, form in use_forms.items():
                    v = {**values, **overrides.get(name, {})}
                    tenant = values["business_id"] if config == "c" else None
                    results[name][(config, size)] = sweep.explain(conn, form, v, tenant=tenant, prepared=prepared)
        progress(f"sweep: explained {len(tenant_forms)} queries at {size} in (a), (b), (b) prepared and (c)")
    rows = []
    for name, by in results.items():
        row = {"name": name}
        for config in ("a", "b", "b-prepared", "c"):
            small, large = by[(config, "1x")], by[(config, "4x")]
            row[config] = (small, large, sweep.proportional(small, large))
        rows.append(row)
    return rows


def applier_timings(cluster: Cluster) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PG")}

    def timed(dsn: str) -> float:
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "applier", "upgrade", "--dsn", dsn], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        return time.monotonic() - started

    noop = [timed(cluster.dsn("tenant")) for _ in range(5)]
    fresh = []
    with admin(cluster) as conn:
        for i in range(3):
            conn.execute(f"DROP DATABASE IF EXISTS fresh_{i}")
            conn.execute(f"CREATE DATABASE fresh_{i}")
            fresh.append(timed(cluster.dsn(f"fresh_{i}")))
            conn.execute(f"DROP DATABASE fresh_{i}")
    return {"noop_s": statistics.median(noop), "noop_all": noop, "fresh_s": statistics.median(fresh),
            "fresh_all": fresh}


# --------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default="default")
    parser.add_argument("--tenants", type=int)
    parser.add_argument("--devices-per-tenant", type=int)
    parser.add_argument("--peers-per-device", type=int)
    parser.add_argument("--clients", type=int, default=4, help="pgbench clients (default 4)")
    parser.add_argument("--duration", type=int, help="seconds per pgbench run (default 8, large 20)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of every configuration (default 5)")
    parser.add_argument("--skip", action="append", default=[], metavar="PART",
                        choices=["hotpath", "writecost", "tenantcontext", "sweep", "conversion", "applier"],
                        help="leave a part out (repeatable)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder for latest.md and latest.png")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    shape = Shape(args.tenants or preset["tenants"], args.devices_per_tenant or preset["devices_per_tenant"],
                  args.peers_per_device or preset["peers_per_device"])
    duration = args.duration or preset["duration"]

    with temporary_cluster("bench", profile=True) as (cluster, workdir):
        results: dict = {"preset": args.preset, "shape": shape, "clients": args.clients, "duration": duration,
                         "rounds": args.rounds, "machine": machine(cluster)}
        progress(f"PostgreSQL {results['machine']['postgres']} in {workdir}; loading {shape.tenants} tenants x "
                 f"{shape.devices} devices x {shape.peers} peers into (a) upstream and (b) multi-tenant")
        build(cluster, "upstream", shape, tenant=False)
        progress("loaded (a)")
        build(cluster, "tenant", shape, tenant=True)
        progress("loaded (b); copying it to (c) with row-level security forced")
        with_rls(cluster, "tenant", "tenant_rls")
        rows_a, db_a, tables_a = rows_and_sizes(cluster, "upstream")
        rows_b, db_b, tables_b = rows_and_sizes(cluster, "tenant")
        results["storage"] = {"rows": (rows_a, rows_b), "database": (db_a, db_b), "tables": (tables_a, tables_b)}
        progress(f"storage: {rows_b:,} rows; (b) {db_b / 2**20:.0f} MiB vs (a) {db_a / 2**20:.0f} MiB "
                 f"= {db_b / db_a:.3f}x")
        # The same rows with every index rebuilt: how full the loaded indexes' pages are depends on the
        # order the rows arrived in, which favours whichever key matches the load order.
        for name in ("upstream", "tenant"):
            rebuild_indexes(cluster, name)
        _, packed_a, packed_tables_a = rows_and_sizes(cluster, "upstream")
        _, packed_b, packed_tables_b = rows_and_sizes(cluster, "tenant")
        results["storage"]["rebuilt"] = {"database": (packed_a, packed_b), "tables": (packed_tables_a, packed_tables_b)}
        progress(f"storage with every index rebuilt: (b) {packed_b / 2**20:.0f} MiB vs (a) {packed_a / 2**20:.0f} MiB "
                 f"= {packed_b / packed_a:.3f}x")

        if "hotpath" not in args.skip:
            for name in ("upstream", "tenant", "tenant_rls"):
                with admin(cluster, name) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            results["hotpath"] = hot_path(cluster, workdir, shape, args.clients, duration, args.rounds)
        if "writecost" not in args.skip:
            results["writecost"] = writecost.measure(cluster, "tenant", shape, args.clients, workdir, progress,
                                                     duration=max(2, duration // 3), rounds=args.rounds)
        if "tenantcontext" not in args.skip:
            with admin(cluster, "tenant_rls") as owner, login(cluster, "tenant_rls") as app:
                results["tenantcontext"] = tenantcontext.measure(owner, app, rounds=args.rounds)
            tc = results["tenantcontext"]
            progress(f"tenant context: {tc['statement_extra_us']:+.2f} µs per statement, tenant call "
                     f"{tc['call_us']['earlier']:.1f} -> {tc['call_us']['current']:.1f} µs")
        if "sweep" not in args.skip:
            shapes = {"1x": Shape(4, 2, SWEEP_PEERS), "4x": Shape(4, 2, 4 * SWEEP_PEERS)}
            for size, s in shapes.items():
                build(cluster, f"sweep{size}_a", s, tenant=False)
                build(cluster, f"sweep{size}_b", s, tenant=True)
                with_rls(cluster, f"sweep{size}_b", f"sweep{size}_c")
            progress("sweep: loaded (a), (b) and (c) at 1x and 4x")
            results["sweep"] = query_sweep(cluster, shapes)
            results["sweep_shapes"] = shapes
        if "conversion" not in args.skip:
            results["conversion"] = conversion.measure(cluster, "upstream", workdir, say=progress)
            results["conversion"]["rows"] = rows_a
        if "applier" not in args.skip:
            results["applier"] = applier_timings(cluster)
            progress(f"applier: no-op upgrade {results['applier']['noop_s'] * 1000:.0f} ms, fresh install "
                     f"{results['applier']['fresh_s'] * 1000:.0f} ms (medians)")
        args.output.mkdir(parents=True, exist_ok=True)
        report.write(results, args.output / "latest.md", args.output / "latest.png")
        progress(f"wrote {args.output / 'latest.md'} and {args.output / 'latest.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
