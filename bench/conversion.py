"""Conversion timings: offline and online against a pg_dump | pg_restore round trip of the same store.

    .venv/bin/python bench/conversion.py --rows 1000000

Starts its own PostgreSQL cluster in a temporary folder, builds an upstream v15
store of about --rows rows once, and converts copies of it. The online run has
a writer updating sessions throughout and reports its longest commit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from applier.embedded import Cluster
from applier.upgrade import upgrade
from applier.upstream_store import upstream_v15_script
from harness import BENCH, header, machine, progress, temporary_cluster

DATA = BENCH / "upstream_data.sql"


def build_store(cluster: Cluster, name: str, rows: int) -> int:
    cluster.ensure_database(name)
    with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
        conn.execute(upstream_v15_script())
        conn.execute("SELECT set_config('bench.rows', %s, false)", (str(rows),))
        conn.execute(DATA.read_text())
        total = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for (t,) in conn.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'whatsmeow\\_%'").fetchall())
        conn.execute(f"ALTER DATABASE {name} WITH is_template true")
    return total


def copy_of(cluster: Cluster, template: str, name: str) -> str:
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return cluster.dsn(name)


def dump_restore(cluster: Cluster, template: str, workdir: Path) -> float:
    source = copy_of(cluster, template, "dump_source")
    target = copy_of(cluster, "template0", "dump_target")
    dump = workdir / "store.dump"
    started = time.monotonic()
    subprocess.run([str(cluster.bindir / "pg_dump"), "-Fc", "-f", str(dump), "-d", source], check=True)
    subprocess.run([str(cluster.bindir / "pg_restore"), "-d", target, str(dump)], check=True)
    return time.monotonic() - started


def offline(cluster: Cluster, template: str) -> float:
    dsn = copy_of(cluster, template, "offline")
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.monotonic()
        upgrade(conn, adopt_business_id="acme", quiet=True)
        return time.monotonic() - started


def online(cluster: Cluster, template: str) -> tuple[float, float, int]:
    """Online conversion while a writer updates sessions: (seconds, longest writer commit, writer commits)."""
    dsn = copy_of(cluster, template, "online")
    with psycopg.connect(dsn) as conn:
        # Keys that exist in whatever store the template holds, so every update changes a row.
        keys = conn.execute("SELECT our_jid, their_id FROM whatsmeow_sessions TABLESAMPLE SYSTEM (1) LIMIT 1000"
                            ).fetchall() or [("none", "none")]
    done = threading.Event()
    latencies: list[float] = []

    def writer() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            n = 0
            while not done.is_set():
                n += 1
                our_jid, their_id = keys[n % len(keys)]
                started = time.monotonic()
                conn.execute("UPDATE whatsmeow_sessions SET session = %s WHERE our_jid = %s AND their_id = %s",
                             (str(n).encode(), our_jid, their_id))
                latencies.append(time.monotonic() - started)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            started = time.monotonic()
            upgrade(conn, adopt_business_id="acme", online=True, quiet=True)
            elapsed = time.monotonic() - started
    finally:
        done.set()
        thread.join()
    return elapsed, max(latencies), len(latencies)


def measure(cluster: Cluster, template: str, workdir: Path, say=progress) -> dict:
    """Dump/restore round trip, offline and online conversion of copies of the upstream store `template`."""
    say("conversion: pg_dump | pg_restore round trip")
    round_trip = dump_restore(cluster, template, workdir)
    say(f"conversion: dump + restore took {round_trip:.1f}s; offline conversion")
    offline_s = offline(cluster, template)
    say(f"conversion: offline took {offline_s:.1f}s; online conversion with a concurrent writer")
    online_s, stall, writes = online(cluster, template)
    say(f"conversion: online took {online_s:.1f}s, longest writer commit {stall * 1000:.0f} ms")
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        for name in ("dump_source", "dump_target", "offline", "online"):
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
    return {"dump_restore_s": round_trip, "offline_s": offline_s, "online_s": online_s,
            "writer_stall_s": stall, "writer_commits": writes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the upstream store (default 1000000)")
    args = parser.parse_args()
    with temporary_cluster("conversion", defaults=False) as (cluster, workdir):
        workdir.chmod(0o777)
        progress(f"building an upstream v15 store of about {args.rows} rows")
        total = build_store(cluster, "upstream_store", args.rows)
        result = measure(cluster, "upstream_store", workdir)
        print("\n".join(header("Conversion", machine(cluster), f"bench/conversion.py --rows {args.rows}")))
        print("| rows | dump+restore | offline | offline/dump | online | writer commits | longest writer commit |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {total} | {result['dump_restore_s']:.1f} s | {result['offline_s']:.1f} s | "
              f"{result['offline_s'] / result['dump_restore_s']:.2f}x | {result['online_s']:.1f} s | "
              f"{result['writer_commits']} | {result['writer_stall_s'] * 1000:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
