"""What each addition upstream does not have costs the writes to its table.

For each secondary index, and for the C collation of the peer ids: inserts and
updates on its table with pgbench, in alternating rounds with the addition in
place and taken out (then put back), in the multi-tenant database of the run.
The updates change the indexed column where the store ever does, so they cannot
be HOT updates when the index exists.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import psycopg

import hotpath
from catalogue import forms
from data import BID, JID, NOW_MS, PN, Shape

_keys = (
    "\\set t random(1, {tenants})\n"
    "\\set g (:t - 1) * {devices} + random(1, {devices})\n"
    "\\set p random(1, {peers})\n"
    "\\set n :n + 1\n"
    "SELECT\n"
    f"    {BID.format(t='(:t)::INT')} AS business_id,\n"
    f"    {JID.format(g='(:g)::INT')} AS our_jid,\n"
    f"    {JID.format(g='(:g)::INT')} AS jid,\n"
    "    {extra}\n"
    "\\gset\n"
)

# index -> (table, insert: (catalogue query, extra variables), update: (statement, extra variables))
INDEXES = {
    "whatsmeow_event_buffer_business_id_insert_timestamp_idx": (
        "whatsmeow_event_buffer",
        ("putBufferedEventQuery",
         "sha256(random()::TEXT::BYTEA) AS ciphertext_hash, '\\x00'::BYTEA AS plaintext, "
         f"1 AS server_timestamp, {NOW_MS} AS insert_timestamp"),
        # The store only ever clears the plaintext; insert_timestamp never changes.
        ("clearBufferedEventPlaintextQuery",
         f"sha256(({JID.format(g='(:g)::INT')} || '/' || (:p)::INT)::BYTEA) AS ciphertext_hash"),
    ),
    "whatsmeow_pre_keys_business_id_jid_key_id_not_uploaded_idx": (
        "whatsmeow_pre_keys",
        ("insertPreKeyQuery",
         # Fresh in every run and for every client.
         "100000 + ((:base)::INT + (:n)::INT) * {clients} + (:client_id)::INT AS key_id, "
         "decode(md5(random()::TEXT) || md5(random()::TEXT), 'hex') AS key, FALSE AS uploaded"),
        # Marking a key uploaded takes it out of the partial index, and back for the next run.
        ("UPDATE whatsmeow_pre_keys SET uploaded = NOT uploaded "
         "WHERE business_id = :business_id AND jid = :jid AND key_id = :key_id;",
         "1 + (:p)::INT % {pre_keys} AS key_id"),
    ),
    "whatsmeow_app_state_sync_keys_business_id_jid_timestamp_idx": (
        "whatsmeow_app_state_sync_keys",
        ("putAppStateSyncKeyQuery",
         "decode(md5(random()::TEXT), 'hex') AS sync_key_id, '\\x01'::BYTEA AS key_data, "
         f"{NOW_MS} + (:n)::INT AS timestamp, '\\x02'::BYTEA AS fingerprint"),
        # A newer version of an existing key: the timestamp changes.
        ("putAppStateSyncKeyQuery",
         "substring(decode(md5(((:g)::INT * 17 + 1)::TEXT), 'hex') FROM 1 FOR 6) || int4send(1) AS sync_key_id, "
         f"'\\x01'::BYTEA AS key_data, {NOW_MS} + (:n)::INT AS timestamp, '\\x02'::BYTEA AS fingerprint"),
    ),
}


# The peer-id columns in the C collation: (table, column) -> insert and update as above.
# Taken out, the column has the database's default collation (its primary key rebuilt).
COLLATIONS = {
    ("whatsmeow_sessions", "their_id"): (
        # A new peer device: a fresh their_id in every run and for every client.
        ("putSessionQuery",
         "'w' || (((:base)::INT + (:n)::INT) * {clients} + (:client_id)::INT) || ':0' AS their_id, "
         "decode(repeat(md5(random()::TEXT), 50), 'hex') AS session"),
        # A session written back: an existing peer device.
        ("putSessionQuery",
         f"{PN.format(t='(:t)::INT', p='(:p)::INT')} || ':0' AS their_id, "
         "decode(repeat(md5(random()::TEXT), 50), 'hex') AS session"),
    ),
}


def script(shape: Shape, clients: int, statement: str, extra: str, tenant_forms: dict) -> str:
    sql = tenant_forms[statement].pgbench() if statement in tenant_forms else statement
    extra = extra.replace("{pre_keys}", str(shape.pre_keys)).replace("{clients}", str(clients))
    return _keys.format(tenants=shape.tenants, devices=shape.devices, peers=shape.peers, extra=extra) + sql + "\n"


def measure(cluster, database: str, shape: Shape, clients: int, workdir: Path, say, duration: int = 5,
            rounds: int = 3) -> list[dict]:
    tenant_forms, _ = forms()
    folder = workdir / "writecost"
    folder.mkdir()
    config = hotpath.Config("writecost", "", database, "postgres", "tenant", "op")
    results = []
    counter = itertools.count()
    with psycopg.connect(cluster.dsn(database), autocommit=True) as conn:
        changes = []  # (label, table, insert, update, take out, put back)
        for index, (table, insert, update) in INDEXES.items():
            definition = conn.execute("SELECT pg_get_indexdef(to_regclass(%s))", (index,)).fetchone()[0]
            if definition is not None:
                changes.append((index, table, insert, update, f"DROP INDEX {index}", definition))
        for (table, column), (insert, update) in COLLATIONS.items():
            alter = f"ALTER TABLE {table} ALTER COLUMN {column} TYPE TEXT COLLATE "
            changes.append((f'{table}.{column} COLLATE "C"', table, insert, update, alter + '"default"',
                            alter + '"C"'))
        for label, table, insert, update, take_out, put_back in changes:
            paths = {}
            for kind, (statement, extra) in (("insert", insert), ("update", update)):
                paths[kind] = folder / f"{table}-{len(results)}-{kind}.pgbench"
                paths[kind].write_text(script(shape, clients, statement, extra, tenant_forms))
            runs = {(kind, present): [] for kind in paths for present in (True, False)}
            for r in range(rounds):
                for present in (True, False) if r % 2 == 0 else (False, True):
                    if not present:
                        conn.execute(take_out)
                    for kind, path in paths.items():
                        base = next(counter) * 100_000
                        run = hotpath.run_pgbench(cluster.bindir, cluster.socketdir, config,
                                                  ["-D", "n=0", "-D", f"base={base}", "-f", str(path)], clients,
                                                  duration, None)
                        runs[(kind, present)].append(run.tps)
                    if not present:
                        conn.execute(put_back)
            row = {"index": label, "table": table}
            for kind in paths:
                with_index = statistics.median(runs[(kind, True)])
                without = statistics.median(runs[(kind, False)])
                row[kind] = (with_index, without)
            results.append(row)
            say(f"write cost: {label}: inserts {row['insert'][0]:.0f} vs {row['insert'][1]:.0f} tps without it, "
                f"updates {row['update'][0]:.0f} vs {row['update'][1]:.0f}")
    return results
