"""bench/results/latest.md and latest.png from one run's results."""

from __future__ import annotations

from pathlib import Path

from hotpath import MESSAGES, median

TARGETS = {
    "storage": 1.08,
    "offline_vs_dump": 1.5,
    "online_stall_s": 1.0,
    "noop_s": 0.150,
    "fresh_s": 1.0,
}


def yes(ok) -> str:
    if isinstance(ok, str):
        return ok
    if ok is None:
        return "no target"
    return "met" if ok else "**missed**"


def both(by_tps: bool, by_cpu: bool):
    """A throughput verdict: measured messages/s, and the CPU each message cost."""
    if by_tps and by_cpu:
        return True
    if by_cpu:
        return "met by CPU/msg, **missed** by messages/s"
    if by_tps:
        return "met by messages/s, **missed** by CPU/msg"
    return False


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f}"


def write(results: dict, md_path: Path, png_path: Path) -> None:
    lines = header(results)
    summary = []
    if "hotpath" in results:
        lines += hot_path(results, summary)
    if "writecost" in results:
        lines += write_cost(results)
    if "tenantcontext" in results:
        lines += tenant_context(results)
    lines += storage(results, summary)
    if "sweep" in results:
        lines += sweep(results, summary)
    if "conversion" in results:
        lines += conversion(results, summary)
    if "applier" in results:
        lines += applier(results, summary)
    targets = ["", "## Targets", "", "| target | measured | |", "|---|---|---|"]
    targets += [f"| {name} | {value} | {yes(ok)} |" for name, value, ok in summary]
    if "hotpath" in results:
        targets += round_trips_note(results["hotpath"])
    head = header(results)
    md_path.write_text("\n".join(head + targets + lines[len(head):]) + "\n")
    chart(results, png_path)


def header(results: dict) -> list[str]:
    m, s = results["machine"], results["shape"]
    settings = ", ".join(f"{k} {v}" for k, v in sorted(m["settings"].items()))
    return [
        "# Benchmark: multi-tenant store vs upstream whatsmeow",
        "",
        f"`bench/run.py --preset {results['preset']}` on {m['date']}: {m['nproc']} CPUs ({m['cpu']}), "
        f"{m['memory_gib']:.1f} GiB memory, PostgreSQL {m['postgres']} (database collation {m['collate']}; "
        f"{settings}). Data: {s.tenants} tenants x {s.devices} devices x {s.peers} peers per device.",
    ]


def hot_path(results: dict, summary: list) -> list[str]:
    hp = results["hotpath"]
    out = [
        "",
        "## Hot path (pgbench)",
        "",
        f"`pgbench -n -M prepared -c {results['clients']} -j 2 -T {results['duration']}` per run, "
        f"{results['rounds']} alternating rounds of every configuration, medians. One pgbench transaction is "
        "one message handled by the store, one of four kinds drawn by weight; every script first draws its "
        "keys with one table-less SELECT, the same in all configurations. The pipelined configurations "
        "(C-pipe, A-batchpipe, D-pipe) send BEGIN, the tenant call and COMMIT in the same round trip as the "
        "statement next to them (pgbench `\\startpipeline` … `\\endpipeline`), as a pgx Batch or libpq "
        "pipeline mode does:",
        "",
        "| message | weight | catalogue queries |",
        "|---|---:|---|",
    ]
    for message, (weight, _, queries) in MESSAGES.items():
        out.append(f"| {message} | {weight} | {', '.join(queries)} |")
    out += [
        "",
        "Commits do not wait for the WAL flush (`synchronous_commit = off`), so the runs are bound by the "
        "queries rather than by the disk. CPU/msg is the CPU the server's backends and pgbench used per "
        "message: on a shared machine it moves less than the throughput when other work competes for the "
        "cores.",
        "",
        "| configuration | messages/s | CPU/msg µs | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in hp["configs"]:
        out.append(f"| {c.label}: {c.title} | {median(c.tps):,.0f} | {median(c.cpu):,.0f} | {median(c.p50):.2f} | "
                   f"{median(c.p99):.2f} |")
    out += ["", "| throughput ratio | median | per round | by CPU/msg (median of rounds) | target |",
            "|---|---:|---|---:|---|"]
    for r in hp["ratios"]:
        rounds = ", ".join(f"{x:.3f}" for x in r["rounds"])
        form = f"; {r['form']}" if r.get("form") else ""
        name = f"{r['label']} ({r['num']} / {r['den']}{form})"
        if r["target"] is None:
            out.append(f"| {name} | **{r['ratio']:.3f}** | {rounds} | {r['cpu_ratio']:.3f} | for information |")
            continue
        ok = both(r["ratio"] >= r["target"], r["cpu_ratio"] >= r["target"])
        out.append(f"| {name} | **{r['ratio']:.3f}** | {rounds} | {r['cpu_ratio']:.3f} | "
                   f">= {r['target']:.2f}: {yes(ok)} |")
        summary.append((f"{name} >= {r['target']:.2f}x",
                        f"{r['ratio']:.3f}x messages/s, {r['cpu_ratio']:.3f}x by CPU/msg", ok))
    if hp.get("statements"):
        out += [
            "",
            "Server time per call of each statement (execution and planning, from pg_stat_statements, one "
            "5 s run each of A-op, B-op and D-batch). *replanned*: a custom plan is made on every call.",
            "",
            "| statement | (a) µs | (b) µs | (b) / (a) | (d) RLS µs |",
            "|---|---:|---:|---:|---:|",
        ]

        def us(x):
            return "" if x is None else f"{x:.1f}"

        for name, a, b, d, a_re, b_re in hp["statements"]:
            notes = " (replanned: " + ", ".join(x for x, flag in (("a", a_re), ("b", b_re)) if flag) + ")" \
                if a_re or b_re else ""
            ratio = f"{b / a:.2f}" if a and b else ""
            out.append(f"| {name}{notes} | {us(a)} | {us(b)} | {ratio} | {us(d)} |")
    return out


def round_trips_note(hp: dict) -> list[str]:
    """Why the naive client forms miss the RLS targets, with the figure that shows it."""
    by_label = {c.label: c for c in hp["configs"]}
    if not {"A-op", "A-optx"} <= by_label.keys():
        return []
    wrapped = median(by_label["A-optx"].tps) / median(by_label["A-op"].tps)
    return [
        "",
        (f"The naive rows send BEGIN, the tenant call and COMMIT as round trips of their own, and round trips "
         f"cost more than the schema does: upstream's own statements, only wrapped in BEGIN … COMMIT, run at "
         f"{wrapped:.3f}x (A-optx / A-op). The pipelined rows (C-pipe, D-pipe) send those in the same round "
         "trip as a statement, as a pgx Batch or libpq pipeline mode does, and so show the cost that is the "
         "schema's."),
    ]


def write_cost(results: dict) -> list[str]:
    out = [
        "",
        "## Write cost of what upstream does not have",
        "",
        "pgbench, alternating rounds with each secondary index in place and dropped, and with the peer ids in "
        "the C collation and in the database's default one, in (b). Updates change the indexed column where "
        "the store ever does (so they stop being HOT updates).",
        "",
        "| addition | inserts/s with | without | cost | updates/s with | without | cost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["writecost"]:
        (iw, io), (uw, uo) = row["insert"], row["update"]
        out.append(f"| {row['index']} | {iw:,.0f} | {io:,.0f} | {1 - iw / io:+.1%} | {uw:,.0f} | {uo:,.0f} | "
                   f"{1 - uw / uo:+.1%} |")
    return out


def tenant_context(results: dict) -> list[str]:
    tc = results["tenantcontext"]
    statement, call = tc["statement_us"], tc["call_us"]
    return [
        "",
        "## The tenant context bound to its transaction",
        "",
        f"Inside the server, as the application login of (c), medians of {tc['rounds']} alternating rounds "
        f"(PostgreSQL {results['machine']['postgres']}). A session lookup by primary key in a PL/pgSQL loop under "
        "each policy, and `whatsmeow_set_tenant` as the only work of a transaction, net of an empty "
        f"transaction ({tc['empty_transaction_us']:.1f} µs). What a client pays for them at top level, "
        "against the bare store, is in [tenant-cost.md](tenant-cost.md) (`bench/tenant_cost.py`).",
        "",
        "| | earlier: `NULLIF(current_setting(...), '')` | current: `whatsmeow_current_tenant()` | difference |",
        "|---|---:|---:|---:|",
        f"| per statement under the policy | {statement['earlier']:.2f} µs | {statement['current']:.2f} µs | "
        f"{tc['statement_extra_us']:+.2f} µs |",
        f"| per tenant call | {call['earlier']:.2f} µs | {call['current']:.2f} µs | "
        f"{call['current'] - call['earlier']:+.2f} µs |",
    ]


def storage(results: dict, summary: list) -> list[str]:
    st = results["storage"]
    (rows_a, rows_b), (db_a, db_b) = st["rows"], st["database"]
    tables_a, tables_b = st["tables"]
    ratio = db_b / db_a
    summary.append(("storage (b) / (a) <= 1.08x", f"{ratio:.3f}x", ratio <= TARGETS["storage"]))
    rebuilt = st.get("rebuilt")
    if rebuilt:
        (packed_a, packed_b), (packed_tables_a, packed_tables_b) = rebuilt["database"], rebuilt["tables"]
        summary.append(("storage (b) / (a), every index rebuilt (for information)",
                        f"{packed_b / packed_a:.3f}x", None))
    out = [
        "",
        "## Storage",
        "",
        f"Same rows in both ({rows_a:,} in (a), {rows_b:,} in (b)), after VACUUM ANALYZE, as loaded"
        + (", and again after REINDEX of every table in both. Loading fills an index's pages densely "
           "when rows arrive in its key order and to about 70 % when they arrive at random: the load "
           "order suits whichever key matches it, and a live store's order is neither. The rebuilt "
           "sizes leave that out." if rebuilt else "."),
        "",
        "| table | rows | (a) MiB | (b) MiB | (b) / (a) |" + (" (a) rebuilt | (b) rebuilt | (b) / (a) |" if rebuilt else ""),
        "|---|---:|---:|---:|---:|" + ("---:|---:|---:|" if rebuilt else ""),
    ]
    for table in sorted(tables_b):
        rb, sb = tables_b[table]
        if table not in tables_a:  # the package's own, such as the tenant event log: nothing to compare
            line = f"| {table} (no upstream table) | {rb:,} | - | {mib(sb)} | - |"
            if rebuilt:
                line += f" - | {mib(packed_tables_b[table][1])} | - |"
            out.append(line)
            continue
        ra, sa = tables_a[table]
        line = f"| {table} | {rb:,} | {mib(sa)} | {mib(sb)} | {sb / sa:.3f} |"
        if rebuilt:
            pa, pb = packed_tables_a[table][1], packed_tables_b[table][1]
            line += f" {mib(pa)} | {mib(pb)} | {pb / pa:.3f} |"
        out.append(line)
    line = f"| **database** | {rows_b:,} | {mib(db_a)} | {mib(db_b)} | **{ratio:.3f}** |"
    if rebuilt:
        line += f" {mib(packed_a)} | {mib(packed_b)} | **{packed_b / packed_a:.3f}** |"
    out.append(line)
    return out


def sweep(results: dict, summary: list) -> list[str]:
    shapes = results["sweep_shapes"]
    out = [
        "",
        "## Work per query at two sizes",
        "",
        f"`EXPLAIN (ANALYZE, BUFFERS)` of every catalogue query, 1x = {shapes['1x'].tenants} tenants x "
        f"{shapes['1x'].devices} devices x {shapes['1x'].peers} peers, 4x = {shapes['4x'].peers} peers per device "
        "(4x the rows in every table, same rows to find or delete). Cells: shared buffers hit + read at 1x -> 4x; "
        "rows handled in brackets, rows removed by a filter after `/`. ok = the buffers grow no faster than "
        "the rows handled (<= 1.5x that growth + 3). (a) upstream's own form; (b) tenant form, custom plans; "
        "(b) prepared: a prepared statement after ten executions, the plan a pooled connection keeps (PostgreSQL may "
        "switch to a generic plan after five); (c) RLS forced, as the application role.",
        "",
        "| query | (a) upstream | ok | (b) | ok | (b) prepared | ok | (c) RLS | ok | (b) plan at 4x |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(m):
        small, large, ok = m
        removed = f" /{small.removed}->{large.removed}" if large.removed else ""
        return f"{small.buffers} -> {large.buffers} [{small.rows}->{large.rows}]{removed}", "ok" if ok else "**no**"

    failures = {"a": [], "b": [], "b-prepared": [], "c": []}
    for row in results["sweep"]:
        cells = []
        for config in ("a", "b", "b-prepared", "c"):
            text, ok = cell(row[config])
            cells += [text, ok]
            if not row[config][2]:
                failures[config].append(row["name"])
        out.append(f"| {row['name']} | " + " | ".join(cells) + f" | {row['b'][1].node} |")
    total = len(results["sweep"])
    for config, label in (("b", "(b)"), ("c", "(c) RLS"), ("b-prepared", "(b) prepared statements")):
        bad = failures[config]
        summary.append((f"{label}: every query's work proportional to its rows",
                        f"{total - len(bad)}/{total}" + (f" (not: {', '.join(bad)})" if bad else ""), not bad))
    out += ["", f"Upstream (a) fails on {len(failures['a'])} of {total}: {', '.join(failures['a']) or 'none'}."]
    return out


def conversion(results: dict, summary: list) -> list[str]:
    c = results["conversion"]
    ratio = c["offline_s"] / c["dump_restore_s"]
    summary.append(("offline conversion <= 1.5x dump/restore", f"{ratio:.2f}x", ratio <= TARGETS["offline_vs_dump"]))
    summary.append((f"online conversion: longest writer stall <= 1 s ({results['preset']} preset)",
                    f"{c['writer_stall_s'] * 1000:.0f} ms", c["writer_stall_s"] <= TARGETS["online_stall_s"]))
    return [
        "",
        "## Conversion of the upstream store (a)",
        "",
        "| rows | pg_dump + pg_restore | offline | offline / dump+restore | online | writer commits | "
        "longest writer commit |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {c['rows']:,} | {c['dump_restore_s']:.1f} s | {c['offline_s']:.1f} s | {ratio:.2f}x | "
        f"{c['online_s']:.1f} s | {c['writer_commits']:,} | {c['writer_stall_s'] * 1000:.0f} ms |",
    ]


def applier(results: dict, summary: list) -> list[str]:
    a = results["applier"]
    summary.append(("no-op `upgrade` <= 150 ms", f"{a['noop_s'] * 1000:.0f} ms", a["noop_s"] <= TARGETS["noop_s"]))
    summary.append(("fresh install <= 1 s", f"{a['fresh_s'] * 1000:.0f} ms", a["fresh_s"] <= TARGETS["fresh_s"]))
    runs = ", ".join(f"{x * 1000:.0f}" for x in a["noop_all"])
    fresh = ", ".join(f"{x * 1000:.0f}" for x in a["fresh_all"])
    return [
        "",
        "## Applier",
        "",
        "Wall time of `python -m applier upgrade --dsn …` as a subprocess, interpreter start included.",
        "",
        "| run | median | all runs (ms) |",
        "|---|---:|---|",
        f"| no-op (database current) | {a['noop_s'] * 1000:.0f} ms | {runs} |",
        f"| fresh install into an empty database | {a['fresh_s'] * 1000:.0f} ms | {fresh} |",
    ]


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "hotpath" not in results:
        return
    hp = results["hotpath"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    labels = [r["label"].replace(", ", "\n", 1) for r in hp["ratios"]]
    values = [r["ratio"] for r in hp["ratios"]]
    colors = ["tab:grey" if r["target"] is None else "tab:green" if r["ratio"] >= r["target"] else "tab:red"
              for r in hp["ratios"]]
    left.barh(labels, values, color=colors)
    for i, r in enumerate(hp["ratios"]):
        if r["target"] is not None:
            left.plot([r["target"], r["target"]], [i - 0.4, i + 0.4], color="black", linewidth=2)
        left.text(r["ratio"] + 0.01, i, f"{r['ratio']:.3f}", va="center")
    left.axvline(1.0, color="grey", linestyle=":")
    left.set_xlim(0, max(1.2, max(values) + 0.15))
    left.invert_yaxis()
    left.set_title("throughput vs upstream (bar), target (black line), grey: no target")
    configs = hp["configs"]
    right.bar([c.label for c in configs], [median(c.p99) for c in configs], color="tab:blue", label="p99")
    right.bar([c.label for c in configs], [median(c.p50) for c in configs], color="tab:orange", label="p50")
    right.set_ylabel("ms per message")
    right.set_title("latency per message")
    right.legend()
    right.tick_params(axis="x", rotation=30)
    s = results["shape"]
    fig.suptitle(f"whatsmeow store, multi-tenant vs upstream: {s.tenants}x{s.devices}x{s.peers}, "
                 f"{results['clients']} clients, PostgreSQL {results['machine']['postgres']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
