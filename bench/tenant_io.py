"""`tenant import` and `tenant export` of a store of about --rows rows, against a plain COPY of the same rows.

    .venv/bin/python bench/tenant_io.py --rows 1000000      # about four minutes on 2 cores

Starts its own PostgreSQL in a temporary folder and builds, once, an upstream v15 store
of about --rows rows (bench/upstream_data.sql, the conversion benchmark's data). Then,
each the best of --rounds runs on fresh databases:

- import: the command, end to end, from that store into an empty multi-tenant store (through
  temporary tables without keys, so that the source never sees the tenant); against the plain COPY of the same rows, every table's `COPY (SELECT 'acme', * ...) TO
  STDOUT` piped into `COPY ... FROM STDIN` of an empty multi-tenant store in one
  transaction, with none of the command's checks;
- import of the same rows as a v14 store, whose temporary tables keep upstream's keys for
  upstream's step 15, which runs on them;
- export: the command, into an empty database; against the plain COPY of the tenant's
  rows into an empty upstream v15 store;
- export to a new SQLite file, and import from that file (no COPY exists there; rows/s only).

Writes bench/results/tenant-io.md. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import psycopg
from psycopg import sql

from applier.embedded import Cluster
from applier.upgrade import upgrade
from applier.upstream_store import TABLES, upstream_v15_script
from harness import BENCH, RESULTS, ROOT, header, machine, new_cluster, progress, remove_cluster

DATA = BENCH / "upstream_data.sql"


def say(message: str) -> None:
    progress(message, name="tenant-io")


def database(cluster: Cluster, name: str, template: str = "template0") -> str:
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    return cluster.dsn(name)


def applier(*args: str) -> float:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "applier", "tenant", *args, "--quiet"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if result.returncode:
        raise SystemExit(f"tenant {args[0]} failed: {result.stderr}")
    return elapsed


def plain_copy(source: str, target: str, select: str, into: str) -> float:
    """Each table's rows from `source` into `target` with COPY, in one transaction on the target."""
    started = time.monotonic()
    with psycopg.connect(source) as src, psycopg.connect(target) as dst:
        for table in TABLES:
            columns = [r[0] for r in src.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
                "AND NOT attisdropped AND attname NOT IN ('business_id', 'stored_at') ORDER BY attnum", (table,))]
            listed = sql.SQL(", ").join(map(sql.Identifier, columns))
            with src.cursor().copy(sql.SQL(select).format(cols=listed, table=sql.Identifier(table))) as out, \
                    dst.cursor().copy(sql.SQL(into).format(cols=listed, table=sql.Identifier(table))) as sink:
                for block in out:
                    sink.write(block)
        dst.commit()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cluster, home = new_cluster("tenant-io", {"shared_buffers": "512MB", "max_wal_size": "4GB"}, defaults=False)
    home.chmod(0o777)
    try:
        say(f"building an upstream v15 store of about {args.rows} rows")
        source = database(cluster, "source")
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute(upstream_v15_script())
            conn.execute("SELECT set_config('bench.rows', %s, false)", (str(args.rows),))
            conn.execute(DATA.read_text())
            conn.execute("VACUUM ANALYZE")
            rows = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)
        server = machine(cluster)
        # The same rows as a v14 store: imported through temporary tables and upstream's step 15.
        older = database(cluster, "source_v14", "source")
        with psycopg.connect(older, autocommit=True) as conn:
            conn.execute("ALTER TABLE whatsmeow_device DROP COLUMN companion_meta_nonce")
            conn.execute("UPDATE whatsmeow_version SET version = 14")
        store = database(cluster, "store_template")
        with psycopg.connect(store, autocommit=True) as conn:
            upgrade(conn, quiet=True)
        upstream_empty = database(cluster, "upstream_template")
        with psycopg.connect(upstream_empty, autocommit=True) as conn:
            conn.execute(upstream_v15_script())

        times: dict[str, list[float]] = {}
        for round_ in range(1, args.rounds + 1):
            say(f"round {round_}: COPY into the store, then tenant import")
            target = database(cluster, "copy_target", "store_template")
            times.setdefault("copy in", []).append(plain_copy(
                source, target, "COPY (SELECT 'acme', {cols} FROM {table}) TO STDOUT",
                "COPY {table} (business_id, {cols}) FROM STDIN"))
            target = database(cluster, "imported", "store_template")
            times.setdefault("import", []).append(applier("import", "--business-id", "acme", "--from", source,
                                                          "--dsn", target))
            target_v14 = database(cluster, "imported_v14", "store_template")
            times.setdefault("import v14", []).append(applier("import", "--business-id", "acme", "--from", older,
                                                              "--dsn", target_v14))
            say(f"round {round_}: COPY out of the store, then tenant export")
            out = database(cluster, "copy_out", "upstream_template")
            times.setdefault("copy out", []).append(plain_copy(
                target, out, "COPY (SELECT {cols} FROM {table} WHERE business_id = 'acme') TO STDOUT",
                "COPY {table} ({cols}) FROM STDIN"))
            out = database(cluster, "exported")
            times.setdefault("export", []).append(applier("export", "--business-id", "acme", "--to", out,
                                                          "--dsn", target))
            say(f"round {round_}: tenant export to SQLite, then tenant import from it")
            path = home / f"acme-{round_}.db"
            times.setdefault("export sqlite", []).append(applier("export", "--business-id", "acme", "--to",
                                                                 str(path), "--dsn", target))
            again = database(cluster, "from_sqlite", "store_template")
            times.setdefault("import sqlite", []).append(applier("import", "--business-id", "acme", "--from",
                                                                 str(path), "--dsn", again))
        best = {name: min(values) for name, values in times.items()}
        report(rows, best, times, args.rounds, server, args.rows)
    finally:
        remove_cluster(cluster, home)
    return 0


def report(rows: int, best: dict[str, float], times: dict[str, list[float]], rounds: int, server: dict,
           asked: int) -> None:
    def line(name: str, what: str, baseline: str | None) -> str:
        rate = rows / best[name]
        ratio = f"{best[baseline] / best[name]:.2f}" if baseline else "-"
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        return f"| {what} | {best[name]:.2f} | {rate:,.0f} | {ratio} | {runs} |"

    lines = [
        *header("tenant import and export against a plain COPY", server,
                f"bench/tenant_io.py --rows {asked} --rounds {rounds}",
                f"One store of {rows:,} rows (bench/upstream_data.sql): best of {rounds} runs."),
        "| what | s | rows/s | speed vs COPY | runs (s) |",
        "|---|---:|---:|---:|---|",
        line("copy in", "plain COPY of the rows into an empty multi-tenant store", None),
        line("import", "`tenant import` from the PostgreSQL store (the command, end to end, through temporary "
             "tables)", "copy in"),
        line("import v14", "`tenant import` of the same rows as a v14 store (through temporary tables with "
             "upstream's keys, and upstream's step 15)", "copy in"),
        line("copy out", "plain COPY of the tenant's rows into an empty upstream v15 store", None),
        line("export", "`tenant export` to an empty PostgreSQL database (end to end)", "copy out"),
        line("export sqlite", "`tenant export` to a new SQLite file", "copy out"),
        line("import sqlite", "`tenant import` from that SQLite file", "copy in"),
        "",
        "Speed vs COPY is the COPY's time over the command's: 1.00 is as fast as the COPY. The commands' times "
        "include starting Python and connecting, the checks (source shape, conflicts), the upstream shape in "
        "temporary tables and the event log; the COPYs do none of that. The COPYs use the text format, the "
        "commands binary COPY; both spend most of their time on the store's indexes and foreign keys. The "
        "machine is shared, so runs vary by up to half. SQLite rows are read and written one by "
        "one in Python, converted the way whatsmeow's Go driver stores them.",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tenant-io.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
