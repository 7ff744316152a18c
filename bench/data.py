"""Realistic store contents, identical in the upstream and the multi-tenant databases.

Every natural key is unique across tenants (device JIDs, peers, LIDs, groups), so
the upstream single-tenant store can hold all tenants' rows at once and the two
databases differ only by the business_id column. The key formulas are SQL
snippets shared with the pgbench scripts, which draw random keys the same way.

Per device, with P peers: 1.5 P sessions and identity keys (odd peers have two
devices), P sender keys and message secrets (spread over GROUPS groups per tenant),
P contacts and buffered events, P/2 pre-keys and privacy tokens, P/4 retry-buffer rows, P/10 chat settings, and
P/10 app state index MACs, nine in ten set in each of 50 versions (98 % of the
rows superseded); P LID mappings per tenant. EXPIRED rows per device are past each periodic prune's cutoff, a fixed
number whatever P is, so a prune that reads only what it deletes reads the same
at every size.
"""

from __future__ import annotations

from dataclasses import dataclass

EXPIRED = 10
MAC_VERSIONS = 50
PRE_KEYS_UNUPLOADED = 20
GROUPS = 50

# Key formulas over integer SQL expressions {t} (tenant), {g} (global device), {p} (peer), {k} (group).
BID = "'biz' || lpad(({t})::TEXT, 5, '0')"
JID = "'1555' || lpad(({g})::TEXT, 7, '0') || ':1@s.whatsapp.net'"
PN = "(4900000000000 + ({t})::BIGINT * 10000000 + ({p}))::TEXT"
LID = "(100000000000000 + ({t})::BIGINT * 10000000 + ({p}))::TEXT"
GROUP = "'1203630' || (({t})::BIGINT * 1000000 + ({k}))::TEXT || '@g.us'"
MSG_ID = "'3EB0' || upper(left(md5(({g})::TEXT || '/' || ({p})::TEXT), 16))"
INDEX_MAC = "decode(md5(({g})::TEXT || '/mac/' || ({k})::TEXT) || md5(({k})::TEXT), 'hex')"
NOW_MS = "(extract(EPOCH FROM now()) * 1000)::BIGINT"
NOW_S = "extract(EPOCH FROM now())::BIGINT"
DAY_MS = 86_400_000


def key(formula: str, **parts: str) -> str:
    return formula.format(**parts)


def blob(size: int, seed: str) -> str:
    """`size` pseudo-random bytes derived from the SQL expression `seed`."""
    return f"substring(decode(repeat(md5(({seed})::TEXT), {(size + 15) // 16}), 'hex') FROM 1 FOR {size})"


@dataclass(frozen=True)
class Shape:
    tenants: int
    devices: int  # per tenant
    peers: int  # per device

    @property
    def groups(self) -> int:
        """Groups per tenant: a fixed number, so a chat's rows grow with the peers."""
        return min(GROUPS, self.peers)

    @property
    def pre_keys(self) -> int:
        return max(PRE_KEYS_UNUPLOADED * 2, self.peers // 2)

    @property
    def macs(self) -> int:
        """Distinct index MACs per device."""
        return max(1, self.peers // 10)

    @property
    def cold_macs(self) -> int:
        """Index MACs set once, in the first version, and never again."""
        return max(1, self.macs // 10)


def statements(shape: Shape, tenant: bool) -> list[tuple[str, str]]:
    """(table, INSERT … SELECT) pairs that fill one store; tenant=False leaves business_id out."""
    T, D, P = shape.tenants, shape.devices, shape.peers
    devices = f"generate_series(1, {T * D}) AS g, LATERAL (SELECT (g - 1) / {D} + 1 AS t) AS tt"
    peers = f"{devices} CROSS JOIN generate_series(1, {P}) AS p"
    # Odd peers have a second device: their_id pn:0 and pn:1.
    peer_devices = f"{peers} CROSS JOIN LATERAL generate_series(0, p % 2) AS pd"
    tenant_peers = f"generate_series(1, {T}) AS t CROSS JOIN generate_series(1, {P}) AS p"
    bid = key(BID, t="t")
    jid = key(JID, g="g")
    pn = key(PN, t="t", p="p")
    lid = key(LID, t="t", p="p")

    def insert(table: str, columns: str, values: str, source: str, where: str = "") -> tuple[str, str]:
        if tenant:
            columns, values = f"business_id, {columns}", f"{bid}, {values}"
        return table, f"INSERT INTO {table} ({columns})\nSELECT {values}\nFROM {source}{where}"

    return [
        insert(
            "whatsmeow_device",
            "jid, lid, registration_id, noise_key, identity_key, signed_pre_key, signed_pre_key_id, "
            "signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key, adv_device_sig, "
            "platform, push_name",
            f"{jid}, {key(LID, t='t', p='9000000 + g')} || ':1@lid', g, {blob(32, 'g')}, {blob(32, 'g + 1')}, "
            f"{blob(32, 'g + 2')}, 1, {blob(64, 'g + 3')}, {blob(32, 'g + 4')}, {blob(80, 'g + 5')}, "
            f"{blob(64, 'g + 6')}, {blob(32, 'g + 7')}, {blob(64, 'g + 8')}, 'android', 'Device ' || g",
            devices,
        ),
        insert("whatsmeow_lid_map", "lid, pn", f"{lid}, {pn}", tenant_peers),
        insert(
            "whatsmeow_sessions",
            "our_jid, their_id, session",
            f"{jid}, {pn} || ':' || pd, {blob(800, 'g * 7 + p * 3 + pd')}",
            peer_devices,
        ),
        insert(
            "whatsmeow_identity_keys",
            "our_jid, their_id, identity",
            f"{jid}, {pn} || ':' || pd, {blob(32, 'p * 2 + pd')}",
            peer_devices,
        ),
        insert(
            "whatsmeow_sender_keys",
            "our_jid, chat_id, sender_id, sender_key",
            f"{jid}, {key(GROUP, t='t', k=f'p % {shape.groups}')}, {pn} || ':0', {blob(300, 'g * 5 + p')}",
            peers,
        ),
        insert(
            "whatsmeow_message_secrets",
            "our_jid, chat_jid, sender_jid, message_id, key",
            f"{jid}, {key(GROUP, t='t', k=f'p % {shape.groups}')}, {pn} || '@s.whatsapp.net', "
            f"{key(MSG_ID, g='g', p='p')}, {blob(32, 'g * 11 + p')}",
            peers,
        ),
        insert(
            "whatsmeow_contacts",
            "our_jid, their_jid, first_name, full_name, push_name",
            f"{jid}, {pn} || '@s.whatsapp.net', 'First' || p, 'Full Name ' || p, 'Push ' || p",
            peers,
        ),
        insert(
            "whatsmeow_chat_settings",
            "our_jid, chat_jid, muted_until, pinned",
            f"{jid}, {pn} || '@s.whatsapp.net', 0, p % 3 = 0",
            peers,
            "\nWHERE p % 10 = 0",
        ),
        # Tokens for even peers; the first EXPIRED of each device long expired.
        insert(
            "whatsmeow_privacy_tokens",
            "our_jid, their_jid, token, timestamp, sender_timestamp",
            f"{jid}, {pn} || '@s.whatsapp.net', {blob(24, 'g + p')}, "
            f"{NOW_S} - CASE WHEN p <= {2 * EXPIRED} THEN 90 ELSE p % 20 END * 86400, NULL",
            peers,
            "\nWHERE p % 2 = 0",
        ),
        insert(
            "whatsmeow_pre_keys",
            "jid, key_id, key, uploaded",
            f"{jid}, p, {blob(32, 'g * 13 + p')}, p <= {shape.pre_keys - PRE_KEYS_UNUPLOADED}",
            f"{devices} CROSS JOIN generate_series(1, {shape.pre_keys}) AS p",
        ),
        insert(
            "whatsmeow_app_state_sync_keys",
            "jid, key_id, key_data, timestamp, fingerprint",
            f"{jid}, {blob(6, 'g * 17 + p')} || int4send(p), {blob(64, 'p')}, 1700000000 + p, {blob(20, 'p + 1')}",
            f"{devices} CROSS JOIN generate_series(1, {max(5, P // 50)}) AS p",
        ),
        insert(
            "whatsmeow_app_state_version",
            "jid, name, version, hash",
            f"{jid}, n, {shape.macs * MAC_VERSIONS}, {blob(128, 'g')}",
            f"{devices} CROSS JOIN unnest(ARRAY['regular_high', 'regular_low', 'regular', 'critical_block', "
            "'critical_unblock_low']) AS n",
        ),
        # Most index MACs are set again in each of MAC_VERSIONS versions, the cold tenth only
        # in the first: 98 % of the rows are superseded versions.
        insert(
            "whatsmeow_app_state_mutation_macs",
            "jid, name, version, index_mac, value_mac",
            f"{jid}, 'regular_high', v * {shape.macs} + k, {key(INDEX_MAC, g='g', k='k')}, {blob(32, 'g + k * 7 + v')}",
            f"{devices} CROSS JOIN generate_series(0, {MAC_VERSIONS - 1}) AS v "
            f"CROSS JOIN generate_series(1, {shape.macs}) AS k",
            f"\nWHERE k > {shape.cold_macs} OR v = 0",
        ),
        insert("whatsmeow_nct_salt", "our_jid, salt", f"{jid}, {blob(32, 'g')}", devices),
        insert(
            "whatsmeow_event_buffer",
            "our_jid, ciphertext_hash, plaintext, server_timestamp, insert_timestamp",
            f"{jid}, sha256(({jid} || '/' || p)::BYTEA), {blob(200, 'g * 3 + p')}, {NOW_S} - p, "
            f"{NOW_MS} - CASE WHEN p <= {EXPIRED} THEN 20 * {DAY_MS} ELSE (p % 10) * {DAY_MS} END",
            peers,
        ),
        insert(
            "whatsmeow_retry_buffer",
            "our_jid, chat_jid, message_id, format, plaintext, timestamp",
            f"{jid}, {pn} || '@s.whatsapp.net', {key(MSG_ID, g='g', p='p')}, 'proto', {blob(300, 'g + p')}, "
            f"{NOW_MS} - CASE WHEN p <= {4 * EXPIRED} THEN 10 * {DAY_MS} ELSE (p % 5) * {DAY_MS} END",
            peers,
            "\nWHERE p % 4 = 0",
        ),
    ]
