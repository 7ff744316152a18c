-- Fills an upstream v15 store with about bench.rows rows spread over its tables the way a
-- busy deployment's are: mostly sessions, identity keys, sender keys and app state MACs.
-- Run by bench/conversion.py, which sets bench.rows.
INSERT INTO whatsmeow_device (
    jid, registration_id, noise_key, identity_key, signed_pre_key, signed_pre_key_id,
    signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key, adv_device_sig
)
SELECT
    format('1555%s:1@s.whatsapp.net', d) AS jid,
    d AS registration_id,
    decode(repeat('01', 32), 'hex') AS noise_key,
    decode(repeat('02', 32), 'hex') AS identity_key,
    decode(repeat('03', 32), 'hex') AS signed_pre_key,
    1 AS signed_pre_key_id,
    decode(repeat('04', 64), 'hex') AS signed_pre_key_sig,
    decode(repeat('05', 32), 'hex') AS adv_key,
    decode(repeat('06', 64), 'hex') AS adv_details,
    decode(repeat('07', 64), 'hex') AS adv_account_sig,
    decode(repeat('08', 32), 'hex') AS adv_account_sig_key,
    decode(repeat('09', 64), 'hex') AS adv_device_sig
FROM generate_series(1, 20) AS d;

INSERT INTO whatsmeow_sessions (our_jid, their_id, session)
SELECT
    format('1555%s:1@s.whatsapp.net', 1 + n % 20) AS our_jid,
    format('%s:%s', 4915000000 + n, n % 4) AS their_id,
    decode(repeat(md5(n::TEXT), 16), 'hex') AS session
FROM generate_series(1, current_setting('bench.rows')::INT * 3 / 10) AS n;

INSERT INTO whatsmeow_identity_keys (our_jid, their_id, identity)
SELECT
    format('1555%s:1@s.whatsapp.net', 1 + n % 20) AS our_jid,
    format('%s:%s', 4915000000 + n, n % 4) AS their_id,
    decode(md5(n::TEXT) || md5(n::TEXT), 'hex') AS identity
FROM generate_series(1, current_setting('bench.rows')::INT * 3 / 10) AS n;

INSERT INTO whatsmeow_sender_keys (our_jid, chat_id, sender_id, sender_key)
SELECT
    format('1555%s:1@s.whatsapp.net', 1 + n % 20) AS our_jid,
    format('1203630%s@g.us', n % 500) AS chat_id,
    format('%s:%s', 4915000000 + n, n % 4) AS sender_id,
    decode(repeat(md5(n::TEXT), 4), 'hex') AS sender_key
FROM generate_series(1, current_setting('bench.rows')::INT * 2 / 10) AS n;

INSERT INTO whatsmeow_app_state_version (jid, name, version, hash)
SELECT
    format('1555%s:1@s.whatsapp.net', d) AS jid,
    'regular_high' AS name,
    1 AS version,
    decode(repeat('0a', 128), 'hex') AS hash
FROM generate_series(1, 20) AS d;

INSERT INTO whatsmeow_app_state_mutation_macs (jid, name, version, index_mac, value_mac)
SELECT
    format('1555%s:1@s.whatsapp.net', 1 + n % 20) AS jid,
    'regular_high' AS name,
    n / 20 AS version,
    decode(md5(n::TEXT) || md5((n + 1)::TEXT), 'hex') AS index_mac,
    decode(md5((n + 2)::TEXT) || md5((n + 3)::TEXT), 'hex') AS value_mac
FROM generate_series(1, current_setting('bench.rows')::INT / 10) AS n;

INSERT INTO whatsmeow_message_secrets (our_jid, chat_jid, sender_jid, message_id, key)
SELECT
    format('1555%s:1@s.whatsapp.net', 1 + n % 20) AS our_jid,
    format('1203630%s@g.us', n % 500) AS chat_jid,
    format('%s@s.whatsapp.net', 4915000000 + n % 5000) AS sender_jid,
    upper(md5(n::TEXT)) AS message_id,
    decode(md5(n::TEXT) || md5(n::TEXT), 'hex') AS key
FROM generate_series(1, current_setting('bench.rows')::INT / 10) AS n;

ANALYZE;
