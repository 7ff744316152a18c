"""What naming the tenant costs a client: row-level security against the bare store, as a client pays it.

    .venv/bin/python bench/tenant_cost.py             # about ten minutes on 2 cores
    .venv/bin/python bench/tenant_cost.py --rounds 3 --duration 3 --output /tmp/tc

Starts its own PostgreSQL, loads the same rows (bench/data.py) into upstream's store (a), the
multi-tenant store (b), (c) a copy of (b) with row-level security forced and this package's tenant
context, (c1) the same with the policies of earlier versions, which call whatsmeow_current_tenant(),
and (c0) the tenant context of earlier versions (those policies, the PL/pgSQL call with a pinned
search_path, SET LOCAL by EXECUTE, and a to_char() stamp), used by a login role in whatsmeow_app.
Then, in alternating rounds:
  - pipelined: one round trip (pgbench \\startpipeline, one client, -M prepared, the tenant a
    bind parameter) of a session lookup alone in (b), of SELECT 1 and the lookup in (b), of the
    tenant call and the lookup in (b) (the functions installed, no policy), (c) and (c0), and of
    the two set_config() calls the call amounts to and the lookup in (c); and, unprepared
    (-M extended), of the lookup alone in (b) and the tenant call and the lookup in (c);
  - the hot-path transaction of bench/hotpath.py (BEGIN, the tenant call, the message's
    statements, COMMIT; each a round trip; two clients, -M prepared) in (a), (b), (c) and (c0),
    and with BEGIN and the call sent with the first statement;
  - pg_stat_statements (track = top) over all of the above: each statement's execution time per
    call at top level, planning included;
  - the Go wrapper (tests/go/fork/tenantdb.go), built for this checkout by bash .ci/go, if it can be: the
    fork's store calls through the pool on (b), through the wrapper on (b) with a trivial statement in
    the tenant call's place (the floor: one more statement in the round trip) and with the call, and
    through the wrapper as the login on (c), (c1) and (c0), with pg_stat_statements counting the
    fork's reads.
Writes bench/results/tenant-cost.md.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
from pathlib import Path

import hotpath
from applier.embedded import Cluster
from catalogue import forms
from data import BID, JID, PN, Shape
from harness import (PLANNING_COUNTED_FROM, RESULTS, ROOT, admin, header, machine, postmaster_pid, progress,
                     statement_stats, temporary_cluster)
from stores import APP_LOGIN, build, copy_database, with_rls

SHAPE = Shape(10, 4, 1000)

# The tenant context before this version: what (c0) runs.
EARLIER_CONTEXT = """
CREATE OR REPLACE FUNCTION whatsmeow_current_tenant() RETURNS TEXT LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN pg_catalog.current_setting('app.current_business_id_xact', TRUE)
            OPERATOR(pg_catalog.=) pg_catalog.to_char(pg_catalog.timezone('UTC', pg_catalog.now()), 'YYYYMMDDHH24MISSUS')
            THEN pg_catalog.current_setting('app.current_business_id', TRUE)
    END
$$;
CREATE OR REPLACE FUNCTION whatsmeow_set_tenant(business_id TEXT) RETURNS VOID LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    stamp TEXT := pg_catalog.to_char(pg_catalog.timezone('UTC', pg_catalog.now()), 'YYYYMMDDHH24MISSUS');
    named TEXT;
BEGIN
    IF whatsmeow_business_id_is_valid(business_id) IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'invalid business_id';
    END IF;
    IF pg_catalog.current_setting('app.current_business_id_xact', TRUE) OPERATOR(pg_catalog.=) stamp THEN
        named := pg_catalog.current_setting('app.current_business_id', TRUE);
        IF named OPERATOR(pg_catalog.=) business_id THEN
            RETURN;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'invalid_transaction_state', MESSAGE = 'second tenant';
    END IF;
    IF pg_catalog.current_setting('citus.propagate_set_commands', TRUE) IS NOT NULL THEN
        SET LOCAL citus.propagate_set_commands = 'local';
    END IF;
    EXECUTE pg_catalog.format('SET LOCAL app.current_business_id = %L', business_id);
    PERFORM pg_catalog.set_config('app.current_business_id_xact', stamp, TRUE);
END
$$;
"""

# The policies as earlier versions wrote them: a call of whatsmeow_current_tenant(), which the
# planner inlines from its source text for every table of every statement it plans. (c0) has
# them, and (c1), which is this version's tenant context otherwise.
CALLING_POLICIES = """
DO $$
DECLARE
    tenant_table REGCLASS;
BEGIN
    FOR tenant_table IN SELECT polrelid::REGCLASS FROM pg_policy WHERE polname = 'whatsmeow_tenant_isolation' LOOP
        EXECUTE format('ALTER POLICY whatsmeow_tenant_isolation ON %s USING (business_id = whatsmeow_current_tenant()) '
                       'WITH CHECK (business_id = whatsmeow_current_tenant())', tenant_table);
    END LOOP;
END
$$;
"""

# One pipelined round trip: (label, title, database, user, statements before the lookup). The tenant
# arrives as a bind parameter, as a client sends it (pgbench -D b=…): the first tenant's devices and
# peers, drawn at random.
TENANT = "biz00001"  # BID for t = 1
KEYS = ["\\set g random(1, {devices})", "\\set p random(1, {peers})"]
LOOKUP = (f"SELECT session FROM whatsmeow_sessions WHERE business_id = :b "
          f"AND our_jid = {JID.format(g='(:g)::INT')} AND their_id = {PN.format(t='1', p='(:p)::INT')} || ':0';")
# ::VARCHAR only keeps pg_stat_statements from counting it with the hot path's call.
CALL = "SELECT whatsmeow_set_tenant(:b::VARCHAR);"
CALL_UNPREPARED = "SELECT whatsmeow_set_tenant(:b::VARCHAR(64));"
SET_CONFIG = ("SELECT pg_catalog.set_config('app.current_business_id', :b, TRUE), "
              "pg_catalog.set_config('app.current_business_id_xact', "
              "pg_catalog.encode(pg_catalog.timestamptz_send(pg_catalog.now()), 'hex'), TRUE);")
PIPELINED = [
    ("lookup", "the lookup alone, (b)", "tenant", "postgres", []),
    ("select1", "SELECT 1 + the lookup, (b)", "tenant", "postgres", ["SELECT 1;"]),
    ("call-b", "tenant call + the lookup, (b) with the tenant functions and no policy", "tenant_go", "postgres",
     [CALL]),
    ("call", "tenant call + the lookup, (c)", "tenant_rls", APP_LOGIN, [CALL]),
    ("call-before", "tenant call + the lookup, (c0) before", "tenant_rls_before", APP_LOGIN, [CALL]),
    ("set_config", "set_config() x2 + the lookup, (c)", "tenant_rls", APP_LOGIN, [SET_CONFIG]),
    # Unprepared (-M extended), as behind a pooler without prepared statements: every statement is
    # planned on each run. Compared with the lookup alone, unprepared.
    ("lookup-unprepared", "the lookup alone, (b), unprepared", "tenant", "postgres", []),
    ("call-unprepared", "tenant call + the lookup, (c), unprepared", "tenant_rls", APP_LOGIN, [CALL_UNPREPARED]),
]

# The hot-path transaction, as hotpath.Config arguments.
HOT = [
    ("A", "(a) upstream, the message in one transaction", "upstream", "postgres", "upstream", "batch"),
    ("B", "(b) multi-tenant, no RLS, the message in one transaction", "tenant", "postgres", "tenant", "batch"),
    ("C", "(c) RLS forced, tenant call after BEGIN", "tenant_rls", APP_LOGIN, "tenant", "batch-rls"),
    ("C0", "(c0) before, tenant call after BEGIN", "tenant_rls_before", APP_LOGIN, "tenant", "batch-rls"),
    ("A-pipe", "(a) upstream, BEGIN sent with the first statement", "upstream", "postgres", "upstream",
     "batch-pipe"),
    ("C-pipe", "(c) RLS, BEGIN and the call sent with the first statement", "tenant_rls", APP_LOGIN, "tenant",
     "batch-rls-pipe"),
]


def pipelined_script(folder: Path, label: str, before: list[str]) -> list[str]:
    path = folder / f"pipe-{label}.pgbench"
    keys = [k.format(devices=SHAPE.devices, peers=SHAPE.peers) for k in KEYS]
    unprepared = label.endswith("-unprepared")
    lookup = LOOKUP.replace(":b ", ":b::VARCHAR ") if unprepared else LOOKUP  # its own pg_stat_statements entry
    path.write_text("\n".join([*keys, "\\startpipeline", *before, lookup, "\\endpipeline"]) + "\n")
    mode = ["-M", "extended"] if unprepared else []
    return [*mode, "-D", f"b={TENANT}", "-f", str(path)]


def fork_store_program() -> tuple[Path | None, str]:
    """The fork's program with the tenant wrapper, built for this checkout by bash .ci/go (a few
    seconds when its cache is current), or None and why not: a program built from other sources
    would measure another schema."""
    result = subprocess.run(["bash", str(ROOT / ".ci" / "go")], capture_output=True, text=True, check=False)
    built = re.search(r"every program built in \d+ s, into (.+)$", result.stderr.strip())
    if result.returncode != 0 or not built:
        return None, (result.stderr.strip().splitlines() or ["bash .ci/go printed nothing"])[-1]
    return Path(built[1]) / "fork-store-tenantdb", ""


# The fork's GetMessageSecret is upstream's query form, which PostgreSQL plans on every call; its
# other reads run cached plans.
PLANNED_EVERY_CALL = "GetMessageSecret"


def go_bench(program: Path, tenant: str, iterations: int, targets: list[str]) -> list[dict]:
    """One run of the fork's store calls against each target (pool=, wrap= or floor=DSN), interleaved;
    with each target's mean of the reads that run cached plans."""
    args = [str(program), "bench", tenant, str(iterations), *targets]
    result = subprocess.run(args, capture_output=True, text=True, timeout=1200, check=False)
    report = json.loads(result.stdout.splitlines()[-1]) if result.stdout else {}
    if result.returncode != 0 or not report.get("ok"):
        raise RuntimeError(f"{program.name} failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    cached = [name for name in report["reads"] if name != PLANNED_EVERY_CALL]
    for run in report["microseconds_per_op"]:
        run["mean_cached_read"] = statistics.fmean(run[name] for name in cached)
    return report["microseconds_per_op"]


def measure(cluster: Cluster, workdir: Path, rounds: int, duration: int, go_iterations: int) -> dict:
    scripts = workdir / "scripts"
    scripts.mkdir()
    pid = postmaster_pid(cluster)
    tenant_forms, upstream_forms = forms()
    pipe = [hotpath.Config(label, title, db, user, "tenant", "pipelined")
            for label, title, db, user, _ in PIPELINED]
    pipe_scripts = {label: pipelined_script(scripts, label, before) for label, _, _, _, before in PIPELINED}
    hot = [hotpath.Config(*c) for c in HOT]
    hot_scripts = {c.label: hotpath.write_scripts(scripts, SHAPE, 2, c,
                                                  tenant_forms if c.form == "tenant" else upstream_forms)
                   for c in hot}
    runs = [(c, pipe_scripts[c.label], 1) for c in pipe] + [(c, hot_scripts[c.label], 2) for c in hot]
    progress("warming up every configuration for 2s")
    for c, s, clients in runs:
        hotpath.run_pgbench(cluster.bindir, cluster.socketdir, c, s, clients, 2, None)
    with admin(cluster) as conn:
        conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'top'")
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("SELECT pg_stat_statements_reset()")
    for r in range(rounds):
        for c, s, clients in runs if r % 2 == 0 else reversed(runs):
            run = hotpath.run_pgbench(cluster.bindir, cluster.socketdir, c, s, clients, duration, None, pid)
            c.tps.append(run.tps)
            c.cpu.append(run.cpu_per_message)
            progress(f"round {r + 1}/{rounds} {c.label:11} {run.tps:8.0f} tps {run.cpu_per_message:6.0f} µs CPU")
    statements = top_level_times(cluster)
    with admin(cluster) as conn:
        conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'none'")
        conn.execute("SELECT pg_reload_conf()")
    results = {"pipelined": pipe, "hot": hot, "statements": statements, "go": None}
    program, why_not = fork_store_program()
    if program:
        app = f"user={APP_LOGIN}"
        # One process per round runs every configuration in turn, slice by slice, so that each meets
        # the same machine; each writes its own tenant's device and history first.
        targets = {
            "pool, (b)": f"pool={cluster.dsn('tenant_go')}",
            "wrapper, (b), a trivial statement in the call's place": f"floor={cluster.dsn('tenant_go')}",
            "wrapper, (b) with no policy": f"wrap={cluster.dsn('tenant_go')}",
            "wrapper, (c)": f"wrap={cluster.dsn('tenant_rls')} {app}",
            "wrapper, (c1) policies calling the function": f"wrap={cluster.dsn('tenant_rls_calling')} {app}",
            "wrapper, (c0) before": f"wrap={cluster.dsn('tenant_rls_before')} {app}",
        }
        go_runs: dict[str, list[dict]] = {name: [] for name in targets}
        with admin(cluster) as conn:
            conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'top'")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("SELECT pg_stat_statements_reset()")
        for r in range(rounds):
            for name, run in zip(targets, go_bench(program, f"go{r}x", go_iterations, list(targets.values()))):
                go_runs[name].append(run)
            progress(f"Go round {r + 1}/{rounds}: " + ", ".join(
                f"{name} {runs[-1]['mean_read']:.0f}/{runs[-1]['mean']:.0f} µs" for name, runs in go_runs.items()))
        results["go_statements"] = fork_statement_times(cluster)
        with admin(cluster) as conn:
            conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'none'")
            conn.execute("SELECT pg_reload_conf()")
        results["go"] = {name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
                         for name, runs in go_runs.items()}
        results["go_ratios"] = {
            name: {key: statistics.median(run[key] / base[key] for run, base in zip(runs, go_runs["pool, (b)"]))
                   for key in ("mean_read", "mean_cached_read", "mean")}
            for name, runs in go_runs.items()}
    else:
        progress(f"the Go wrapper is left out: {why_not}")
    return results


def top_level_times(cluster: Cluster) -> list[tuple[str, str, str, float, int]]:
    """(database, user, statement, µs per call, calls) for the tenant statements and the lookup."""
    with admin(cluster) as conn:
        rows = conn.execute(
            f"""
            SELECT d.datname, r.rolname, s.query, (s.total_exec_time + s.total_plan_time) / s.calls * 1000, s.calls
            FROM {statement_stats(conn)} AS s
            JOIN pg_database AS d ON d.oid = s.dbid
            JOIN pg_roles AS r ON r.oid = s.userid
            WHERE s.calls > 20 AND s.toplevel
            ORDER BY 1, 2, 3
            """
        ).fetchall()
    out = []
    for db, user, query, us, calls in rows:
        if "whatsmeow_set_tenant" in query:
            name = "SELECT whatsmeow_set_tenant(…)" + (
                " (unprepared)" if "VARCHAR(64)" in query.upper()
                else " (pipelined runs)" if "VARCHAR" in query.upper() else " (hot path)")
        elif "set_config" in query:
            name = "SELECT set_config(…), set_config(…)"
        elif query.startswith("SELECT session FROM whatsmeow_sessions") and "lpad(" in query:
            name = "session lookup (unprepared)" if "::VARCHAR" in query.upper() else "session lookup (pipelined runs)"
        elif query.strip() in ("SELECT $1", "SELECT 1"):
            name = "SELECT 1"
        elif query in ("BEGIN", "COMMIT"):
            name = query
        elif "whatsmeow_" in query:
            name = hotpath.statement_name(query)
        else:
            continue
        out.append((db, user, name, us, calls))
    return out


def fork_statement_times(cluster: Cluster) -> dict[str, dict[str, tuple[float, float]]]:
    """The fork's read statements during the Go runs: {statement: {database: (plan µs, execution µs)}}."""
    # Each by the start of its text: other reads of the same tables (GetManySessions) run too.
    reads = {"getIdentityQuery": "SELECT identity FROM whatsmeow_identity_keys",
             "getSessionQuery": "SELECT session FROM whatsmeow_sessions",
             "getSenderKeyQuery": "SELECT sender_key FROM whatsmeow_sender_keys",
             "getMsgSecret": "SELECT key, sender_jid FROM whatsmeow_message_secrets"}
    with admin(cluster) as conn:
        rows = conn.execute(
            f"""
            SELECT d.datname, s.query, s.total_plan_time / s.calls * 1000, s.total_exec_time / s.calls * 1000
            FROM {statement_stats(conn)} AS s
            JOIN pg_database AS d ON d.oid = s.dbid
            WHERE s.calls > 20 AND s.query LIKE 'SELECT%'
            """
        ).fetchall()
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for db, query, plan, execute in rows:
        for name, marker in reads.items():
            if " ".join(query.split()).startswith(marker):
                out.setdefault(name, {})[db] = (plan, execute)
    return out


def ratio(configs: dict, num: str, den: str) -> tuple[float, list[float]]:
    per_round = [n / d for n, d in zip(configs[num].tps, configs[den].tps)]
    return statistics.median(per_round), per_round


def cpu_ratio(configs: dict, num: str, den: str) -> float:
    """The denominator's CPU per transaction over the numerator's: above 1 when the numerator costs less."""
    return statistics.median(d / n for n, d in zip(configs[num].cpu, configs[den].cpu))


def ratio_cells(configs: dict, c: hotpath.Config, base: str) -> str:
    """Table cells of one configuration: rate, CPU, the median ratio to `base`, each round's, and by CPU."""
    median_ratio, per_round = ratio(configs, c.label, base)
    return (f"{statistics.median(c.tps):,.0f} | {statistics.median(c.cpu):.0f} | {median_ratio:.2f} | "
            f"{', '.join(f'{x:.2f}' for x in per_round)} | {cpu_ratio(configs, c.label, base):.2f}")


def report(cluster: Cluster, results: dict, rounds: int, duration: int, command: str) -> str:
    pipe = {c.label: c for c in results["pipelined"]}
    hot = {c.label: c for c in results["hot"]}
    m = machine(cluster)
    lines = header(
        "What naming the tenant costs a client",
        m, command,
        f"{SHAPE.tenants} tenants x {SHAPE.devices} devices x {SHAPE.peers} peers; {rounds} alternating rounds of "
        f"{duration}s per configuration; medians of the per-round ratios. The machine is shared with other work: "
        "compare ratios within this page, never µs across runs. pg_stat_statements counts (track = top) during "
        "every round, in every configuration alike. (c0) is the tenant context of earlier versions: PL/pgSQL "
        "with a pinned search_path, SET LOCAL through EXECUTE, a to_char() stamp, and policies that call "
        "whatsmeow_current_tenant(); (c1) is (c) with those policies."
        + (f" PostgreSQL {m['postgres'].split()[0]} counts no planning time: its µs per call are execution alone."
           if m["version_num"] < PLANNING_COUNTED_FROM else ""),
    )
    lines += ["## One pipelined round trip, one client", "",
              "Ratios are medians of the rounds' ratios to the lookup alone (unprepared rows: to the lookup alone, "
              "unprepared); CPU is the server's and pgbench's.", "",
              "| configuration | tps | CPU µs per round trip | vs the lookup alone | per round | by CPU |",
              "|---|---:|---:|---:|---|---:|"]
    for c in results["pipelined"]:
        base = "lookup-unprepared" if c.label.endswith("-unprepared") else "lookup"
        lines.append(f"| {c.title} | {ratio_cells(pipe, c, base)} |")
    lines += ["", "## The hot-path transaction, two clients", "",
              "One message of bench/hotpath.py (4 to 7 catalogue statements) in one transaction, every statement "
              "a round trip unless said otherwise.", "",
              "| configuration | messages/s | CPU µs per message | vs (a) | per round | by CPU | vs (b) |",
              "|---|---:|---:|---:|---|---:|---:|"]
    for c in results["hot"]:
        base = "A-pipe" if c.label.endswith("-pipe") else "A"
        rb = f"{ratio(hot, c.label, 'B')[0]:.2f}" if not c.label.endswith("-pipe") else ""
        lines.append(f"| {c.title} | {ratio_cells(hot, c, base)} | {rb} |")
    lines += ["", "## Server time per call at top level (pg_stat_statements)", "",
              "Execution and planning time per call, wall time under the rounds above (it includes waiting for "
              "a core).", "",
              "| statement | database | user | µs per call | calls |", "|---|---|---|---:|---:|"]
    wanted = ("SELECT whatsmeow_set_tenant(…) (pipelined runs)", "SELECT whatsmeow_set_tenant(…) (hot path)",
              "SELECT whatsmeow_set_tenant(…) (unprepared)", "session lookup (unprepared)",
              "SELECT set_config(…), set_config(…)", "SELECT 1", "session lookup (pipelined runs)")
    for db, user, name, us, calls in sorted(results["statements"], key=lambda row: (row[2], row[0])):
        if name in wanted:
            lines.append(f"| {name} | {db} | {user} | {us:.1f} | {calls:,} |")
    per_db: dict[str, dict[str, float]] = {}
    for db, _, name, us, _ in results["statements"]:
        if name not in wanted and name not in ("BEGIN", "COMMIT"):
            per_db.setdefault(name, {})[db] = us
    lines += ["", "The hot path's catalogue statements, µs per call:", "",
              "| statement | (a) | (b) | (c) | (c0) |", "|---|---:|---:|---:|---:|"]
    for name, by_db in sorted(per_db.items()):
        cells = [by_db.get(db) for db in ("upstream", "tenant", "tenant_rls", "tenant_rls_before")]
        lines.append(f"| {name} | " + " | ".join("" if v is None else f"{v:.1f}" for v in cells) + " |")
    if results["go"]:
        lines += ["", "## The Go wrapper", "",
                  "The fork's store calls of the receive path (four reads, three writes), µs per call, medians of "
                  "the rounds; the ratio is against the pool on (b) in the same round. In each round one process "
                  "runs every configuration in turn, in 20 slices of each call's iterations. The wrapper with a "
                  "trivial statement in the call's place (oneMoreStatement in tests/go/fork/tenantdb.go) is the "
                  f"floor: what one more statement in the round trip costs by itself. Cached reads are the reads but {PLANNED_EVERY_CALL}, which PostgreSQL plans "
                  "on every call.", "",
                  "| how | reads (mean) | all seven (mean) | reads vs pool | cached reads vs pool "
                  "| all seven vs pool |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, values in results["go"].items():
            ratios = results["go_ratios"][name]
            lines.append(f"| {name} | {values['mean_read']:.0f} | {values['mean']:.0f} | "
                         f"{ratios['mean_read']:.2f} | {ratios['mean_cached_read']:.2f} | {ratios['mean']:.2f} |")
        databases = ("tenant_go", "tenant_rls", "tenant_rls_calling", "tenant_rls_before")
        lines += ["", "The fork's reads at top level during these runs (pg_stat_statements), planning + execution µs "
                  "per call. getMsgSecret is the fork's own form, which PostgreSQL plans on every call; the "
                  "policies add their planning to each of its three tables.", "",
                  "| statement | (b) | (c) | (c1) | (c0) |", "|---|---:|---:|---:|---:|"]
        for name, by_db in sorted(results["go_statements"].items()):
            cells = [by_db.get(db) for db in databases]
            lines.append(f"| {name} | " + " | ".join("" if v is None else f"{v[0]:.1f} + {v[1]:.1f}" for v in cells)
                         + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per pgbench run (default 5)")
    parser.add_argument("--go-iterations", type=int, default=1000, help="calls per Go store call and round")
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder for tenant-cost.md")
    args = parser.parse_args()
    command = "bench/tenant_cost.py" + (f" --rounds {args.rounds}" if args.rounds != 5 else "") + (
        f" --duration {args.duration}" if args.duration != 5 else "")
    with temporary_cluster("tenant-cost", profile=True) as (cluster, workdir):
        progress(f"loading {SHAPE.tenants} tenants x {SHAPE.devices} devices x {SHAPE.peers} peers into (a) and (b)")
        build(cluster, "upstream", SHAPE, tenant=False)
        build(cluster, "tenant", SHAPE, tenant=True)
        with_rls(cluster, "tenant", "tenant_rls")
        with_rls(cluster, "tenant", "tenant_rls_before")
        with_rls(cluster, "tenant", "tenant_rls_calling")
        with admin(cluster, "tenant_rls_before") as conn:
            conn.execute("SET ROLE whatsmeow_owner")
            conn.execute(EARLIER_CONTEXT + CALLING_POLICIES)
        with admin(cluster, "tenant_rls_calling") as conn:
            conn.execute("SET ROLE whatsmeow_owner")
            conn.execute(CALLING_POLICIES)
        # The Go program's pool on (b) needs the tenant functions, and none of the policies.
        copy_database(cluster, "tenant", "tenant_go")
        with admin(cluster, "tenant_go") as conn:
            conn.execute((ROOT / "rls" / "tenant-context.sql").read_text())
        for name in ("postgres", "upstream", "tenant", "tenant_rls", "tenant_rls_before", "tenant_rls_calling"):
            with admin(cluster, name) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        results = measure(cluster, workdir, args.rounds, args.duration, args.go_iterations)
        text = report(cluster, results, args.rounds, args.duration, command)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "tenant-cost.md").write_text(text)
    print(text)
    progress(f"wrote {args.output / 'tenant-cost.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
