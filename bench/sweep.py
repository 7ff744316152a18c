"""EXPLAIN (ANALYZE, BUFFERS) of every catalogue query at two data sizes.

Each query runs once, in a transaction that is rolled back, with keys of tenant 1's
first device that exist in the data (or, for plain inserts, that do not). Between
the sizes every device has 4x the peers, and so 4x the rows in every table,
while the rows a query should touch stay the same: one key, one peer's devices,
the EXPIRED rows of a prune. A query whose work follows the rows it returns or
changes reads about the same number of buffers at both sizes; one that walks a
device's, a tenant's or the whole table's rows reads about 4x.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from catalogue import Form
from data import BID, DAY_MS, GROUP, INDEX_MAC, JID, LID, MAC_VERSIONS, MSG_ID, NOW_MS, NOW_S, PN, Shape


def key_values(conn: psycopg.Connection, shape: Shape) -> tuple[dict, dict[str, dict]]:
    """Parameter values for every catalogue query: (shared values, per-query overrides).

    The index MAC is a cold one, last set in the first version: its newest value
    lies behind every later version of the collection.
    """
    half = shape.peers // 2
    odd = half | 1  # odd peers have two devices, pn:0 and pn:1
    even = odd + 1  # even peers have a privacy token
    fourth = half // 4 * 4 + 4  # every fourth peer has a retry-buffer row
    t, g = "1", "1"

    def pn(p):
        return PN.format(t=t, p=p)

    def lid(p):
        return LID.format(t=t, p=p)

    row = conn.execute(
        f"""SELECT {BID.format(t=t)}, {JID.format(g=g)}, {pn(odd)}, {lid(odd)}, {pn(odd + 2)}, {lid(odd + 2)},
                   {pn(even)}, {lid(even)}, {pn(fourth)}, {lid(fourth)},
                   {GROUP.format(t=t, k=f'{odd} % {shape.groups}')}, {MSG_ID.format(g=g, p=odd)},
                   {MSG_ID.format(g=g, p=fourth)}, {INDEX_MAC.format(g=g, k=1)},
                   substring(decode(repeat(md5((1 * 17 + 1)::TEXT), 1), 'hex') FROM 1 FOR 6) || int4send(1),
                   sha256(({JID.format(g=g)} || '/' || {odd})::BYTEA), {NOW_S}, {NOW_MS}"""
    ).fetchone()
    (bid, jid, pn_odd, lid_odd, pn_other, lid_other, pn_even, lid_even, pn_fourth, lid_fourth, group, msg_id,
     retry_msg_id, index_mac, sync_key_id, ciphertext_hash, now_s, now_ms) = row
    blob = bytes(range(256)) * 4
    values = {
        "business_id": bid, "jid": jid, "our_jid": jid,
        "lid": lid_odd, "other_lid": lid_other, "pn": pn_odd, "pns": [pn_odd, pn_other, pn_even],
        "registration_id": 1, "noise_key": blob[:32], "identity_key": blob[1:33], "signed_pre_key": blob[2:34],
        "signed_pre_key_id": 1, "signed_pre_key_sig": blob[:64], "adv_key": blob[:32], "adv_details": blob[:80],
        "adv_account_sig": blob[:64], "adv_account_sig_key": blob[:32], "adv_device_sig": blob[:64],
        "platform": "android", "business_name": "", "push_name": "Device 1", "facebook_uuid": None,
        "lid_migration_ts": 0, "companion_meta_nonce": "",
        "their_id": f"{pn_odd}:0", "their_ids": [f"{pn_odd}:0", f"{pn_odd}:1", f"{pn_odd}:2"],
        "their_id_pattern": f"{pn_odd}:%", "identity": blob[:32], "session": blob[:800],
        "pn_signal": pn_odd, "lid_signal": lid_odd,
        "key_id": 5, "key": blob[:32], "uploaded": False, "count": 10,
        "chat_id": group, "sender_id": f"{pn_odd}:0", "sender_key": blob[:300],
        "sync_key_id": sync_key_id, "key_data": blob[:64], "timestamp": now_s, "fingerprint": blob[:20],
        "name": "regular_high", "version": shape.macs * MAC_VERSIONS, "hash": blob[:128],
        "index_mac": index_mac, "index_macs": [index_mac], "value_mac": blob[:32],
        "their_jid": f"{pn_odd}@s.whatsapp.net", "first_name": "F", "full_name": "F N",
        "redacted_phone": "+49 ***", "chat_jid": f"{pn_odd}@s.whatsapp.net", "alt_chat_jid": f"{lid_odd}@lid",
        "muted_until": 0, "pinned": True, "archived": True,
        "sender_jid": f"{pn_odd}@s.whatsapp.net", "message_id": msg_id,
        "token": blob[:24], "sender_timestamp": None, "expiry_seconds": now_s - 30 * 86400,
        "salt": blob[:32], "ciphertext_hash": ciphertext_hash, "plaintext": blob[:200],
        "server_timestamp": now_s, "insert_timestamp": now_ms, "expiry_ms": now_ms - 14 * DAY_MS,
        "format": "proto",
    }
    overrides = {
        # Plain inserts get keys that do not exist yet.
        "insertPreKeyQuery": {"key_id": 16_000_000},
        "putAppStateMutationMACsQuery": {"version": shape.macs * MAC_VERSIONS + 1},
        "putBufferedEventQuery": {"ciphertext_hash": b"\xff" * 32},
        "putMsgSecret": {"message_id": "3EB0NEW"},
        # The newest sender key of the group's chat, looked up by LID: found through the LID map.
        "getMsgSecret": {"chat_jid": group, "sender_jid": f"{lid_odd}@lid"},
        "getPrivacyToken": {"their_jid": f"{lid_even}@lid"},
        "getOutgoingEventQuery": {"chat_jid": f"{pn_fourth}@s.whatsapp.net", "alt_chat_jid": f"{lid_fourth}@lid",
                                  "message_id": retry_msg_id},
        "deleteOldOutgoingEventsQuery": {"expiry_ms": now_ms - 7 * DAY_MS},
        # The batch just uploaded: the keys up to the highest not yet marked.
        "markPreKeysAsUploadedQuery": {"key_id": shape.pre_keys - 15},
    }
    return values, overrides


@dataclass
class Measure:
    buffers: int
    rows: int
    removed: int
    node: str


def walk(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from walk(child)


def result_rows(plan: dict) -> int:
    """Rows the statement returns or changes; for a plain aggregate, the rows it aggregates."""
    node = plan
    if node["Node Type"] == "ModifyTable" or (node["Node Type"] == "Aggregate" and node.get("Strategy") == "Plain"):
        node = next(c for c in node["Plans"] if c.get("Parent Relationship") == "Outer")
    return int(node.get("Actual Rows", 0) * node.get("Actual Loops", 1))


def measure(plan_json) -> Measure:
    plan = plan_json[0]["Plan"]
    nodes = list(walk(plan))
    removed = sum((n.get("Rows Removed by Filter", 0) + n.get("Rows Removed by Index Recheck", 0))
                  * n.get("Actual Loops", 1) for n in nodes)
    scans = [n for n in nodes if "Relation Name" in n and n["Node Type"] != "ModifyTable"]
    node = ", ".join(sorted({f"{n['Node Type']}" + (f" {n['Index Name']}" if "Index Name" in n else "")
                             for n in scans})) or plan["Node Type"]
    return Measure(plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0), result_rows(plan),
                   int(removed), node)


def explain(conn: psycopg.Connection, form: Form, values: dict, *, tenant: str | None = None,
            prepared: bool = False) -> Measure:
    """Run one query under EXPLAIN ANALYZE in a transaction that is rolled back.

    prepared: as a pooled connection runs it, a prepared statement already executed ten
    times; after five PostgreSQL may switch to a generic plan, and this is the plan it keeps.
    """
    args = [values[name] for name in form.params]
    options = "ANALYZE, BUFFERS, FORMAT JSON"
    with conn.transaction(force_rollback=True):
        if tenant:
            conn.execute("SELECT whatsmeow_set_tenant(%s)", (tenant,))
        if prepared:
            conn.execute(f"PREPARE bench_q AS {form.sql.rstrip(';')}")
            try:
                execute = "EXECUTE bench_q" + (f"({', '.join(['%s'] * len(args))})" if args else "")
                for _ in range(10):
                    with conn.transaction(force_rollback=True):
                        psycopg.ClientCursor(conn).execute(execute, args)
                result = psycopg.ClientCursor(conn).execute(f"EXPLAIN ({options}) {execute}", args).fetchone()[0]
            finally:
                conn.execute("DEALLOCATE bench_q")
        else:
            cur = psycopg.RawCursor(conn)
            result = cur.execute(f"EXPLAIN ({options}) {form.sql}", args).fetchone()[0]
    return measure(result)


def proportional(small: Measure, large: Measure) -> bool:
    """Work at 4x the data within 1.5x of the work at 1x times the growth of the rows handled (+3 for a deeper index)."""
    growth = max(1.0, large.rows / max(1, small.rows))
    return large.buffers <= 1.5 * small.buffers * growth + 3
