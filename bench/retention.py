"""Retention at the size upstream PR #1240 reported: pruning 4.4M mutation MACs, 97.65 % superseded.

    .venv/bin/python bench/retention.py      # about three minutes on 2 cores

Starts its own PostgreSQL, writes one device's app-state history with the
generator of bench/devices.py, and measures: the prune (rows/s), a concurrent
writer's latency while it runs against the same writer without it, the table's
bytes before, after VACUUM, and after VACUUM FULL, the same content in an
upstream v15 table, and what stored_at costs an insert into message secrets.
Writes bench/results/retention.md.
"""

from __future__ import annotations

import itertools
import statistics
import time

import psycopg

from applier.upgrade import upgrade
from applier.upstream_store import upstream_v15_script
from applier.seed import SUPERSEDED_VERSIONS, insert_device, superseded_history
from harness import RESULTS, header, machine, new_cluster, progress, remove_cluster
from writer import alongside, quantile

JID = "15550001111:7@s.whatsapp.net"
VERSIONS = itertools.count(1001)  # new versions, unique across every writer
INDEX_MACS = 103_500  # about 4.4M rows at 42.5 versions each
SECRETS_PER_ROUND = 200_000
ROUNDS = 5


def say(message: str) -> None:
    progress(message, name="retention")


def size(conn: psycopg.Connection, table: str) -> int:
    return conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0]


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def new_mac_version() -> tuple[str, tuple]:
    """whatsmeow's app-state write on the pruned collection: one new MAC version."""
    n = next(VERSIONS)
    return ("INSERT INTO whatsmeow_app_state_mutation_macs (business_id, jid, name, version, index_mac, value_mac) "
            "VALUES ('acme', %s, 'regular_high', %s, sha256(('index ' || %s)::BYTEA), sha256(%s::BYTEA))",
            (JID, n, n * 7919 % INDEX_MACS + 1, str(n).encode()))


def main() -> None:
    cluster, home = new_cluster("retention", {"shared_buffers": "1GB", "max_wal_size": "4GB"}, defaults=False)
    lines: list[str] = []
    try:
        with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE tenancy")
            admin.execute("CREATE DATABASE upstream")
        dsn = cluster.dsn("tenancy")
        with psycopg.connect(dsn, autocommit=True) as conn:
            upgrade(conn, quiet=True)
            say("writing the history")
            started = time.monotonic()
            rows = superseded_history(conn, "acme", JID, INDEX_MACS)
            conn.execute("VACUUM ANALYZE whatsmeow_app_state_mutation_macs")
            say(f"{rows:,} rows in {time.monotonic() - started:.0f}s")
            before = size(conn, "whatsmeow_app_state_mutation_macs")

            quiet_latencies = alongside(dsn, new_mac_version, seconds=10)
            say("pruning with a writer alongside")
            pruned: dict[str, float] = {}

            def run_prune() -> None:
                with psycopg.connect(dsn, autocommit=True) as pruner:
                    t = time.monotonic()
                    pruner.execute("CALL whatsmeow_prune()")
                    pruned["seconds"] = time.monotonic() - t

            busy_latencies = alongside(dsn, new_mac_version, work=run_prune)
            kept, written = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE version > 1000) FROM whatsmeow_app_state_mutation_macs"
            ).fetchone()
            removed = rows + len(busy_latencies) + len(quiet_latencies) - kept
            conn.execute("VACUUM whatsmeow_app_state_mutation_macs")
            after_vacuum = size(conn, "whatsmeow_app_state_mutation_macs")
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            free = conn.execute(
                "SELECT free_space FROM pgstattuple('whatsmeow_app_state_mutation_macs')").fetchone()[0]
            conn.execute("VACUUM FULL whatsmeow_app_state_mutation_macs")
            after_full = size(conn, "whatsmeow_app_state_mutation_macs")

        with psycopg.connect(cluster.dsn("upstream"), autocommit=True) as up:
            up.execute(upstream_v15_script())
            low, high = SUPERSEDED_VERSIONS
            up.execute("INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key, signed_pre_key, "
                       "signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, "
                       "adv_account_sig_key, adv_device_sig) VALUES (%s, 1, %s, %s, %s, 1, %s, %s, %s, %s, %s, %s)",
                       (JID, b"n" * 32, b"i" * 32, b"s" * 32, b"g" * 64, b"a" * 32, b"d", b"x" * 64, b"k" * 32,
                        b"v" * 64))
            up.execute("INSERT INTO whatsmeow_app_state_version VALUES (%s, 'regular_high', 43, %s)",
                       (JID, b"h" * 128))
            up.execute(
                "INSERT INTO whatsmeow_app_state_mutation_macs (jid, name, version, index_mac, value_mac) "
                "SELECT %s, 'regular_high', v, sha256(('index ' || i)::BYTEA), sha256((i || ' ' || v)::BYTEA) "
                "FROM generate_series(1, %s) AS i "
                "CROSS JOIN LATERAL generate_series(1, CASE WHEN i %% 2 = 0 THEN %s ELSE %s END) AS v",
                (JID, INDEX_MACS, low, high))
            up.execute("VACUUM ANALYZE whatsmeow_app_state_mutation_macs")
            upstream_size = size(up, "whatsmeow_app_state_mutation_macs")

        say("the write cost of stored_at")
        costs = {"with stored_at": [], "without": []}
        with psycopg.connect(dsn, autocommit=True) as conn:
            insert_device(conn, "acme", "15550009999:3@s.whatsapp.net")
            for round_ in range(ROUNDS):
                for variant in ("with stored_at", "without"):
                    if variant == "without":
                        conn.execute("ALTER TABLE whatsmeow_message_secrets DROP COLUMN stored_at")
                    conn.execute("TRUNCATE whatsmeow_message_secrets")
                    t = time.monotonic()
                    conn.execute(
                        "INSERT INTO whatsmeow_message_secrets (business_id, our_jid, chat_jid, sender_jid, "
                        "message_id, key) SELECT 'acme', '15550009999:3@s.whatsapp.net', 'c' || i %% 500 || "
                        "'@s.whatsapp.net', 's@s.whatsapp.net', 'M' || %s || '.' || i, sha256(i::TEXT::BYTEA) "
                        "FROM generate_series(1, %s) AS i", (round_, SECRETS_PER_ROUND))
                    costs[variant].append((time.monotonic() - t) / SECRETS_PER_ROUND * 1e6)
                    if variant == "without":
                        conn.execute("ALTER TABLE whatsmeow_message_secrets ADD COLUMN stored_at TIMESTAMPTZ "
                                     "NOT NULL DEFAULT now()")
            with_size = size(conn, "whatsmeow_message_secrets")

        seconds = pruned["seconds"]
        lines += [
            *header("Retention benchmark", machine(cluster), "bench/retention.py"),
            f"One device, one collection: {INDEX_MACS:,} index MACs set {SUPERSEDED_VERSIONS[0]} or "
            f"{SUPERSEDED_VERSIONS[1]} times each, {rows:,} rows, {1 - INDEX_MACS / rows:.2%} superseded "
            "(upstream PR #1240's proportions).",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| `CALL whatsmeow_prune()`, batches of 1,000 | {seconds:.1f} s |",
            f"| rows removed | {removed:,} |",
            f"| rows removed per second | {removed / seconds:,.0f} |",
            f"| rows kept (the newest version of each index MAC, and the writer's) | {kept:,} ({written:,} "
            "written during the runs) |",
            f"| table with indexes before | {mib(before)} |",
            f"| after VACUUM (size unchanged; free space inside it, reused by later writes) | "
            f"{mib(after_vacuum)}; {mib(free)} free |",
            f"| after VACUUM FULL (returned to the operating system; takes an exclusive lock) | {mib(after_full)} |",
            f"| the same history in upstream's v15 table, never pruned | {mib(upstream_size)} |",
            f"| pruned multi-tenant table / upstream's | {after_full / upstream_size:.3f} |",
            "",
            "A writer adding one MAC version every 2 ms on the same collection, in ms:",
            "",
            "| writer | statements | p50 | p99 | longest |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, values in (("alone, 10 s", quiet_latencies), ("while the prune ran", busy_latencies)):
            lines.append(f"| {label} | {len(values):,} | {quantile(values, 0.5) * 1e3:.2f} | "
                         f"{quantile(values, 0.99) * 1e3:.2f} | {max(values) * 1e3:.1f} |")
        with_cost, without_cost = statistics.median(costs["with stored_at"]), statistics.median(costs["without"])
        lines += [
            "",
            f"Message secrets: INSERT of {SECRETS_PER_ROUND:,} rows in one statement, {ROUNDS} alternating rounds, "
            "medians:",
            "",
            "| table | µs per row |",
            "|---|---:|",
            f"| with `stored_at` | {with_cost:.2f} |",
            f"| without | {without_cost:.2f} |",
            f"| cost of `stored_at` | {with_cost - without_cost:+.2f} ({with_cost / without_cost - 1:+.1%}) |",
            "",
            f"Table with `stored_at`, {SECRETS_PER_ROUND:,} rows: {mib(with_size)}.",
            "",
        ]
    finally:
        remove_cluster(cluster, home)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "retention.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
