"""Conversion timings: offline and online against a pg_dump | pg_restore round trip of the same store.

    .venv/bin/python bench/conversion.py --rows 1000000

Starts its own PostgreSQL cluster in a temporary folder, builds an upstream v15
store of about --rows rows once, and converts copies of it. The online run has
a writer updating sessions throughout and reports its longest commit.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from applier.embedded import Cluster, find_bindir, server_user  # noqa: E402
from applier.upgrade import upgrade  # noqa: E402

UPSTREAM_V15 = ROOT / "tests" / "fixtures" / "upstream-v15.sql"
DATA = Path(__file__).parent / "upstream_data.sql"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def build_store(cluster: Cluster, name: str, rows: int) -> int:
    cluster.ensure_database(name)
    with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
        conn.execute(UPSTREAM_V15.read_text())
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
    dsn = copy_of(cluster, template, "online")
    done = threading.Event()
    latencies: list[float] = []

    def writer() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            n = 0
            while not done.is_set():
                n += 1
                started = time.monotonic()
                conn.execute("UPDATE whatsmeow_sessions SET session = %s WHERE our_jid = %s AND their_id = %s",
                             (str(n).encode(), f"1555{1 + n % 20}:1@s.whatsapp.net", f"{4915000000 + n}:{n % 4}"))
                latencies.append(time.monotonic() - started)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.monotonic()
        upgrade(conn, adopt_business_id="acme", online=True, quiet=True)
        elapsed = time.monotonic() - started
    done.set()
    thread.join()
    return elapsed, max(latencies), len(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the upstream store (default 1000000)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="whatsmeow-tenancy-bench-"))
    workdir.chmod(0o777)
    cluster = Cluster(workdir / "pg", find_bindir(), server_user())
    try:
        cluster.ensure_running()
        progress(f"building an upstream v15 store of about {args.rows} rows")
        total = build_store(cluster, "upstream_store", args.rows)
        progress("pg_dump | pg_restore round trip")
        round_trip = dump_restore(cluster, "upstream_store", workdir)
        progress("offline conversion")
        offline_s = offline(cluster, "upstream_store")
        progress("online conversion with a concurrent writer")
        online_s, stall, writes = online(cluster, "upstream_store")
        print(f"| rows | dump+restore | offline | offline/dump | online | writer commits | longest writer commit |")
        print(f"|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {total} | {round_trip:.1f} s | {offline_s:.1f} s | {offline_s / round_trip:.2f}x | "
              f"{online_s:.1f} s | {writes} | {stall * 1000:.0f} ms |")
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
