"""Upstream single-tenant stores at any version, filled with awkward data."""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql
from store import TENANT_TABLES, columns

from applier.database import read_state
from applier.steps import load_steps
from applier.upgrade import execute, transactions
from applier.upstream_store import UPSTREAM_V2_SQL, upstream_v15_script

DEVICES = ["15550001111:7@s.whatsapp.net", "15550003333@s.whatsapp.net"]
# Identifiers with LIKE wildcards, quotes, unicode and backslashes: a conversion must keep them byte for byte.
PEERS = ["15550002222:1", "1555_000%22:2", "o'brien\\x:3", "\u043c\u0438\u0440:4", "emoji \U0001F600:5"]


def _rows() -> dict[str, list[dict]]:
    big = bytes(range(256)) * 400  # 100 KiB
    rows: dict[str, list[dict]] = {t: [] for t in TENANT_TABLES}
    for d, jid in enumerate(DEVICES):
        rows["whatsmeow_device"].append({
            "jid": jid, "lid": None if d else "98765:7@lid", "facebook_uuid": None if d else uuid.UUID(int=d + 1),
            "registration_id": 4294967295 - d, "noise_key": bytes([d]) * 32, "identity_key": bytes([d + 1]) * 32,
            "signed_pre_key": bytes([d + 2]) * 32, "signed_pre_key_id": 16777215, "signed_pre_key_sig": b"\x00" * 64,
            "adv_key": b"", "adv_details": big, "adv_account_sig": b"\xff" * 64, "adv_account_sig_key": b"k" * 32,
            "adv_device_sig": b"s" * 64, "platform": "", "business_name": "Caf\u00e9 \"Quote\" 'Inc'",
            "push_name": "\U0001F600 name", "lid_migration_ts": 1_700_000_000_000, "companion_meta_nonce": "n\nonce",
        })
        rows["whatsmeow_app_state_version"].append(
            {"jid": jid, "name": "regular_high", "version": 9, "hash": bytes([d]) * 128})
        rows["whatsmeow_nct_salt"].append({"jid_col": "our_jid", "our_jid": jid, "salt": bytes([d]) * 16})
        for p, peer in enumerate(PEERS):
            rows["whatsmeow_identity_keys"].append({"our_jid": jid, "their_id": peer, "identity": bytes([p]) * 32})
            rows["whatsmeow_sessions"].append(
                {"our_jid": jid, "their_id": peer, "session": None if p == 0 else big[: p * 1000]})
            rows["whatsmeow_pre_keys"].append(
                {"jid": jid, "key_id": p, "key": bytes([p]) * 32, "uploaded": p % 2 == 0})
            rows["whatsmeow_sender_keys"].append(
                {"our_jid": jid, "chat_id": "1203@g.us", "sender_id": peer, "sender_key": big[: 100 + p]})
            rows["whatsmeow_app_state_sync_keys"].append({
                "jid": jid, "key_id": peer.encode(), "key_data": b"d" * 32, "timestamp": p, "fingerprint": b"",
            })
            rows["whatsmeow_app_state_mutation_macs"].append({
                "jid": jid, "name": "regular_high", "version": p, "index_mac": bytes([p]) * 32,
                "value_mac": bytes([d]) * 32,
            })
            rows["whatsmeow_contacts"].append({
                "our_jid": jid, "their_jid": f"{peer}@s.whatsapp.net", "first_name": None if p else "First",
                "full_name": "Full 'Name'", "push_name": "%_\\", "business_name": None,
                "redacted_phone": None if p % 2 else "+1 555***22",
            })
            rows["whatsmeow_chat_settings"].append(
                {"our_jid": jid, "chat_jid": f"{peer}@s.whatsapp.net", "muted_until": -1, "pinned": True,
                 "archived": p % 2 == 0})
            rows["whatsmeow_message_secrets"].append({
                "our_jid": jid, "chat_jid": "1203@g.us", "sender_jid": f"{peer}@lid", "message_id": f"ID'{p}%",
                "key": bytes([p]) * 32,
            })
            rows["whatsmeow_privacy_tokens"].append({
                "our_jid": jid, "their_jid": f"{peer}@s.whatsapp.net", "token": big[:p], "timestamp": p,
                "sender_timestamp": None if p % 2 else p + 1,
            })
            rows["whatsmeow_event_buffer"].append({
                "our_jid": jid, "ciphertext_hash": bytes([p, d]) * 16, "plaintext": None if p % 2 else big[:p],
                "server_timestamp": p, "insert_timestamp": p * 1000,
            })
            rows["whatsmeow_retry_buffer"].append({
                "our_jid": jid, "chat_jid": f"{peer}@s.whatsapp.net", "message_id": f"M{p}", "format": "proto",
                "plaintext": big[: p + 1], "timestamp": p,
            })
    for p, peer in enumerate(PEERS):
        rows["whatsmeow_lid_map"].append({"lid": f"lid-{p}-{peer}", "pn": peer})
    for row in rows["whatsmeow_nct_salt"]:
        row.pop("jid_col")
    return rows


ROWS = _rows()


def fill(conn: psycopg.Connection) -> None:
    """Insert every row whose table exists, into the columns that exist at this version."""
    for table, rows in ROWS.items():
        present = set(columns(conn, table))
        for row in rows if present else []:
            cols = [c for c in row if c in present]
            conn.execute(
                sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, cols)),
                    sql.SQL(", ").join(sql.Placeholder() * len(cols))),
                [row[c] for c in cols],
            )


def digests(conn: psycopg.Connection, upstream_columns: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """Row count and md5 of every row's upstream columns, per table."""
    out = {}
    for table, cols in upstream_columns.items():
        query = sql.SQL("SELECT count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) "
                        "FROM (SELECT {} FROM {}) AS r").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)), sql.Identifier(table))
        out[table] = tuple(conn.execute(query).fetchone())
    return out


def upstream_columns(conn: psycopg.Connection) -> dict[str, list[str]]:
    tables = [r[0] for r in conn.execute(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'whatsmeow\\_%' "
        "AND relname <> 'whatsmeow_version'")]
    return {t: columns(conn, t) for t in tables}


def replay_upstream(conn: psycopg.Connection, to_version: int) -> None:
    """Run upstream's own steps (as upstream would) from the store's version up to `to_version`."""
    steps = load_steps()
    while (state := read_state(conn)).version < to_version:
        execute(conn, transactions(state, [steps[state.version]], None), quiet=True)


def make_store(dsn: str, version: int, *, pre_dbutil: bool = False, replayed: bool = False) -> None:
    """An upstream store at `version`, filled: v15 from its own description unless `replayed`, older
    ones by replaying upstream's steps from v2."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        if version == 15 and not (pre_dbutil or replayed):
            conn.execute(upstream_v15_script())
        else:
            conn.execute(UPSTREAM_V2_SQL.read_text())
            replay_upstream(conn, version)
            if pre_dbutil:
                # Replaying added dbutil's compat column; a store written before dbutil has none.
                conn.execute("ALTER TABLE whatsmeow_version DROP COLUMN IF EXISTS compat")
        fill(conn)
