"""Tenant purge at a million rows, and what the device triggers of the event log cost.

    .venv/bin/python bench/tenant_purge.py      # a few minutes on 2 cores

Starts its own PostgreSQL and measures:
  * `tenant purge` of a tenant of about a million rows (four devices: sessions,
    identity keys, contacts, message secrets and app-state history) while a
    writer of another tenant upserts sessions every 2 ms: the purge's rows per
    second and the writer's latency, against the same writer without the purge;
  * the device upsert whatsmeow runs on every device save (insertDeviceQuery,
    the conflict path), with and without the event log's triggers, from the
    client and inside the server; and a device added and removed (two events).
Writes bench/results/tenant-purge.md.
"""

from __future__ import annotations

import itertools
import re
import statistics
import time

import psycopg

from applier.queries import load_queries
from applier.tenant import purge
from applier.upgrade import upgrade
from applier.seed import insert_device, params, superseded_history
from harness import RESULTS, ROOT, header, machine, new_cluster, progress, remove_cluster
from writer import alongside, quantile

STEP = ROOT / "upgrades" / "20-tenant-event-log.sql"
DEVICES = [f"1555000{n:04d}:7@s.whatsapp.net" for n in range(4)]
PEERS = 45_000  # per device, in sessions, identity keys and contacts
SECRETS = 50_000  # per device
INDEX_MACS = 1_500  # per device, 42.5 versions each
BATCH = 5000
UPSERTS = 3_000
ROUNDS = 10
SERVER_UPSERTS = 20_000


def say(message: str) -> None:
    progress(message, name="tenant-purge")


UPSERT_COUNTER = itertools.count(1)


def other_tenants_upsert() -> tuple[str, tuple]:
    """Another tenant's session upsert, as whatsmeow writes one after each message."""
    n = next(UPSERT_COUNTER)
    return ("INSERT INTO whatsmeow_sessions (business_id, our_jid, their_id, session) "
            "VALUES ('other', %s, %s, sha256(%s::BYTEA)) "
            "ON CONFLICT (business_id, our_jid, their_id) DO UPDATE SET session = excluded.session",
            (DEVICES[0], f"{n % 5000}:1", str(n).encode()))


def build_big_tenant(conn: psycopg.Connection) -> int:
    for jid in DEVICES:
        insert_device(conn, "big", jid)
        for table, column in (("whatsmeow_sessions", "session"), ("whatsmeow_identity_keys", "identity")):
            conn.execute(f"INSERT INTO {table} (business_id, our_jid, their_id, {column}) "
                         "SELECT 'big', %s, i || ':1', sha256(i::TEXT::BYTEA) FROM generate_series(1, %s) AS i",
                         (jid, PEERS))
        conn.execute("INSERT INTO whatsmeow_contacts (business_id, our_jid, their_jid, push_name) "
                     "SELECT 'big', %s, i || '@s.whatsapp.net', 'name ' || i FROM generate_series(1, %s) AS i",
                     (jid, PEERS))
        conn.execute("INSERT INTO whatsmeow_message_secrets (business_id, our_jid, chat_jid, sender_jid, message_id, "
                     "key) SELECT 'big', %s, 'c' || i %% 500 || '@s.whatsapp.net', 's@s.whatsapp.net', 'M' || i, "
                     "sha256(i::TEXT::BYTEA) FROM generate_series(1, %s) AS i", (jid, SECRETS))
        superseded_history(conn, "big", jid, INDEX_MACS)
    conn.execute("INSERT INTO whatsmeow_lid_map (business_id, lid, pn) "
                 "SELECT 'big', i || '@lid', i::TEXT FROM generate_series(1, %s) AS i", (PEERS,))
    conn.execute("VACUUM ANALYZE")
    return conn.execute("SELECT sum(n) FROM (" + " UNION ALL ".join(
        f"SELECT count(*) AS n FROM {t} WHERE business_id = 'big'" for t in (
            "whatsmeow_device", "whatsmeow_sessions", "whatsmeow_identity_keys", "whatsmeow_contacts",
            "whatsmeow_message_secrets", "whatsmeow_app_state_version", "whatsmeow_app_state_mutation_macs",
            "whatsmeow_lid_map")) + ") AS c").fetchone()[0]


TRIGGERS = re.findall(r"^CREATE TRIGGER .*?;$", STEP.read_text(), re.S | re.M)


def set_triggers(conn: psycopg.Connection, on: bool) -> None:
    for statement in TRIGGERS:
        name = statement.split()[2]
        conn.execute(f"DROP TRIGGER IF EXISTS {name} ON whatsmeow_device")
        if on:
            conn.execute(statement)


def trigger_costs(dsn: str) -> dict[str, list[float]]:
    """µs per statement: the upsert's conflict path from the client and in the server, and add + remove."""
    query = load_queries()["insertDeviceQuery"]
    costs: dict[str, list[float]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        insert_device(conn, "other", DEVICES[1])
        values = {**params("other"), "jid": DEVICES[1]}
        # In the server, the statement alone: one DO block upserting 2,000 devices in turn (the same row
        # upserted over and over in one transaction would measure its growing version chain instead).
        server_sql = (
            "DO $$ BEGIN FOR i IN %d..%d LOOP INSERT INTO whatsmeow_device (business_id, jid, registration_id, "
            "noise_key, identity_key, signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, "
            "adv_account_sig, adv_account_sig_key, adv_device_sig, push_name) VALUES ('srv', 'd' || i %% 2000 || "
            "':1@s.whatsapp.net', 1, decode(repeat('ab', 32), 'hex'), decode(repeat('cd', 32), 'hex'), "
            "decode(repeat('ef', 32), 'hex'), 1, decode(repeat('01', 64), 'hex'), decode(repeat('02', 32), 'hex'), "
            "'\\x03', decode(repeat('04', 64), 'hex'), decode(repeat('05', 32), 'hex'), "
            "decode(repeat('06', 64), 'hex'), 'name ' || i) ON CONFLICT (business_id, jid) DO UPDATE SET "
            "lid = excluded.lid, platform = excluded.platform, business_name = excluded.business_name, "
            "push_name = excluded.push_name, lid_migration_ts = excluded.lid_migration_ts, "
            "companion_meta_nonce = excluded.companion_meta_nonce; END LOOP; END $$")
        conn.execute(server_sql % (0, 1999))
        for round_ in range(ROUNDS):
            # ABBA order, so that neither variant always runs first after the other's trigger change.
            for on in ((True, False) if round_ % 2 == 0 else (False, True)):
                label = "with triggers" if on else "without"
                set_triggers(conn, on)
                t = time.perf_counter()
                for n in range(UPSERTS):
                    query.run(conn, {**values, "push_name": f"name {n}"})
                costs.setdefault(f"upsert, client, {label}", []).append((time.perf_counter() - t) / UPSERTS * 1e6)
                t = time.perf_counter()
                conn.execute(server_sql % (2000, 2000 + SERVER_UPSERTS - 1))
                costs.setdefault(f"upsert, server, {label}", []).append(
                    (time.perf_counter() - t) / SERVER_UPSERTS * 1e6)
                t = time.perf_counter()
                for n in range(500):
                    jid = f"1666{n:07d}:1@s.whatsapp.net"
                    query.run(conn, {**values, "jid": jid})
                    conn.execute("DELETE FROM whatsmeow_device WHERE business_id = 'other' AND jid = %s", (jid,))
                costs.setdefault(f"add + remove, client, {label}", []).append((time.perf_counter() - t) / 500 * 1e6)
        set_triggers(conn, True)
        events = conn.execute("SELECT count(*) FROM whatsmeow_tenant_events WHERE tenant = 'other'").fetchone()[0]
    costs["events"] = [events]
    return costs


def main() -> None:
    cluster, home = new_cluster("purge", {"shared_buffers": "512MB", "max_wal_size": "4GB"}, defaults=False)
    try:
        with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE tenancy")
        where = machine(cluster)
        dsn = cluster.dsn("tenancy")
        with psycopg.connect(dsn, autocommit=True) as conn:
            upgrade(conn, quiet=True)
            insert_device(conn, "other", DEVICES[0])
            say("writing the tenant")
            started = time.monotonic()
            rows = build_big_tenant(conn)
            say(f"{rows:,} rows in {time.monotonic() - started:.0f}s")

        quiet = alongside(dsn, other_tenants_upsert, seconds=10)
        say("purging with another tenant's writer alongside")
        result: dict = {}

        def run_purge() -> None:
            with psycopg.connect(dsn, autocommit=True) as purger:
                t = time.monotonic()
                result["removed"] = purge(purger, "big", None, BATCH, quiet=True)
                result["seconds"] = time.monotonic() - t

        busy = alongside(dsn, other_tenants_upsert, work=run_purge)
        removed = sum(result["removed"].values())
        say(f"purged {removed:,} rows in {result['seconds']:.1f}s; writer's longest wait {max(busy) * 1e3:.1f} ms "
            f"(alone: {max(quiet) * 1e3:.1f} ms)")
        say("the device triggers' cost")
        costs = trigger_costs(dsn)
    finally:
        remove_cluster(cluster, home)

    seconds = result["seconds"]
    lines = [
        *header("Tenant purge and event-log benchmark", where, "bench/tenant_purge.py"),
        f"Tenant `big`: {len(DEVICES)} devices, {rows:,} rows (sessions, identity keys, contacts, message secrets, "
        "app-state history, LID map). `tenant purge` in batches of "
        f"{BATCH:,} rows, each its own transaction, children before parents.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| purge of `big` | {seconds:.1f} s |",
        f"| rows removed | {removed:,} |",
        f"| rows removed per second | {removed / seconds:,.0f} |",
        "",
        "A writer of another tenant upserting a session every 2 ms, in ms:",
        "",
        "| writer | statements | p50 | p99 | longest |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, values in (("alone, 10 s", quiet), ("while the purge ran", busy)):
        lines.append(f"| {label} | {len(values):,} | {quantile(values, 0.5) * 1e3:.2f} | "
                     f"{quantile(values, 0.99) * 1e3:.2f} | {max(values) * 1e3:.1f} |")
    lines += [
        "",
        f"The device triggers: µs per statement, medians of {ROUNDS} rounds in ABBA order ({UPSERTS:,} client "
        f"upserts, {SERVER_UPSERTS:,} server-side upserts in one DO block, 500 devices added and removed):",
        "",
        "| statement | with triggers | without | difference |",
        "|---|---:|---:|---:|",
    ]
    for what in ("upsert, client", "upsert, server", "add + remove, client"):
        on, off = statistics.median(costs[f"{what}, with triggers"]), statistics.median(costs[f"{what}, without"])
        lines.append(f"| {what} | {on:.1f} | {off:.1f} | {on - off:+.1f} ({on / off - 1:+.1%}) |")
    lines += [
        "",
        "The upsert is `insertDeviceQuery`'s conflict path, which whatsmeow runs on every device save; its DO "
        "UPDATE names no key column, so no trigger fires and nothing is logged "
        f"(events logged for tenant `other` over the whole run: {costs['events'][0]:,}, all from the adds and "
        "removes).",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tenant-purge.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
