"""Does the number of tenants cost anything? The hot path and the audit at 10, 1,000 and 10,000 tenants.

    .venv/bin/python bench/scale.py          # about twenty minutes on 2 cores

The same total rows every time: 10,000 devices of 10 peers each (about 1.3M
rows), split into 10 tenants of 1,000 devices, 1,000 of 10, or 10,000 of 1.
Each size gets its own PostgreSQL (bench/harness.py), loaded as by the main benchmark
(bench/stores.py) into (a) upstream and (b) multi-tenant stores and (c) a copy of (b) with
row-level security forced; the hot path runs as in the main benchmark (3
alternating rounds) and `audit --json` is timed on (b). Writes
bench/results/scale.md.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import run
from data import Shape
from harness import RESULTS, ROOT, admin, header, machine, progress, temporary_cluster
from stores import build, with_rls

DEVICES = 10_000
PEERS = 10
SIZES = (10, 1_000, 10_000)
ROUNDS = 3
DURATION = 6
AUDITS = 2


def measure(tenants: int) -> dict:
    shape = Shape(tenants, DEVICES // tenants, PEERS)
    with temporary_cluster("scale", profile=True) as (cluster, workdir):
        progress(f"{tenants} tenants x {shape.devices} devices x {PEERS} peers: loading")
        build(cluster, "upstream", shape, tenant=False)
        build(cluster, "tenant", shape, tenant=True)
        with_rls(cluster, "tenant", "tenant_rls")
        rows, _, _ = run.rows_and_sizes(cluster, "tenant")
        for name in ("upstream", "tenant", "tenant_rls"):
            with admin(cluster, name) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        hot = run.hot_path(cluster, workdir, shape, 4, DURATION, ROUNDS)
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PG")}
        audits = []
        for _ in range(AUDITS):
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "applier", "audit", "--json", "--quiet", "--dsn",
                            cluster.dsn("tenant")], cwd=ROOT, env=env, capture_output=True, check=False)
            audits.append(time.monotonic() - started)
        configs = {c.label: c for c in hot["configs"]}
        return {
            "tenants": tenants, "devices": shape.devices, "rows": rows, "machine": machine(cluster),
            "ratios": {r["label"]: r["ratio"] for r in hot["ratios"]},
            "tps": {label: statistics.median(c.tps) for label, c in configs.items()},
            "p99": {label: statistics.median(c.p99) for label, c in configs.items()},
            "audit_s": min(audits),
        }


def main() -> None:
    results = [measure(tenants) for tenants in SIZES]
    labels = list(results[0]["ratios"])
    lines = [
        *header("Tenants at scale", results[0]["machine"], "bench/scale.py"),
        f"{DEVICES:,} devices of {PEERS} peers each in every run, split into more or fewer tenants; the hot path "
        f"as in the main benchmark ({ROUNDS} alternating rounds of {DURATION} s, 4 clients, medians), and "
        "`audit --json` on (b), the faster of two runs.",
        "",
        "| | " + " | ".join(f"{r['tenants']:,} tenants" for r in results) + " |",
        "|---|" + "---:|" * len(results),
        "| devices per tenant | " + " | ".join(f"{r['devices']:,}" for r in results) + " |",
        "| rows in (b) | " + " | ".join(f"{r['rows']:,}" for r in results) + " |",
    ]
    for label in labels:
        lines.append(f"| {label} | " + " | ".join(f"{r['ratios'][label]:.3f}" for r in results) + " |")
    for config in ("A-op", "B-op", "A-batch", "B-batch"):
        lines.append(f"| {config} messages/s | " + " | ".join(f"{r['tps'][config]:,.0f}" for r in results) + " |")
        lines.append(f"| {config} p99 ms | " + " | ".join(f"{r['p99'][config]:.2f}" for r in results) + " |")
    lines.append("| `audit --json` on (b), s | " + " | ".join(f"{r['audit_s']:.1f}" for r in results) + " |")
    lines.append("")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
