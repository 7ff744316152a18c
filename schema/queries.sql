-- The whatsmeow store's queries in tenant form: the contract a Go fork follows.
-- Every query of upstream store/sqlstore (container.go, lidmap.go, store.go)
-- appears once, named after upstream's constant, with business_id as $1 and
-- upstream's parameters shifted by one. `-- params:` names the parameters in
-- order; the test suite runs every query for two tenants that share keys.
-- Batch forms (mutation MACs, contact names, redacted phones) repeat the VALUES
-- tuple of the single-row form shown here, keeping $1 and $2 shared.

-- ==========================================================================
-- Devices (container.go)
-- ==========================================================================

-- name: getAllDevicesQuery
-- params: business_id
SELECT
    jid,
    lid,
    registration_id,
    noise_key,
    identity_key,
    signed_pre_key,
    signed_pre_key_id,
    signed_pre_key_sig,
    adv_key,
    adv_details,
    adv_account_sig,
    adv_account_sig_key,
    adv_device_sig,
    platform,
    business_name,
    push_name,
    facebook_uuid,
    lid_migration_ts,
    companion_meta_nonce
FROM whatsmeow_device
WHERE business_id = $1;

-- name: getDeviceQuery
-- params: business_id, jid
SELECT
    jid,
    lid,
    registration_id,
    noise_key,
    identity_key,
    signed_pre_key,
    signed_pre_key_id,
    signed_pre_key_sig,
    adv_key,
    adv_details,
    adv_account_sig,
    adv_account_sig_key,
    adv_device_sig,
    platform,
    business_name,
    push_name,
    facebook_uuid,
    lid_migration_ts,
    companion_meta_nonce
FROM whatsmeow_device
WHERE business_id = $1 AND jid = $2;

-- name: insertDeviceQuery
-- params: business_id, jid, lid, registration_id, noise_key, identity_key, signed_pre_key, signed_pre_key_id,
--         signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key, adv_device_sig,
--         platform, business_name, push_name, facebook_uuid, lid_migration_ts, companion_meta_nonce
INSERT INTO whatsmeow_device (
    business_id, jid, lid, registration_id, noise_key, identity_key,
    signed_pre_key, signed_pre_key_id, signed_pre_key_sig,
    adv_key, adv_details, adv_account_sig, adv_account_sig_key, adv_device_sig,
    platform, business_name, push_name, facebook_uuid, lid_migration_ts, companion_meta_nonce
)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
ON CONFLICT (business_id, jid) DO UPDATE
    SET
        lid = excluded.lid,
        platform = excluded.platform,
        business_name = excluded.business_name,
        push_name = excluded.push_name,
        lid_migration_ts = excluded.lid_migration_ts,
        companion_meta_nonce = excluded.companion_meta_nonce;

-- name: deleteDeviceQuery
-- params: business_id, jid
DELETE FROM whatsmeow_device
WHERE business_id = $1 AND jid = $2;

-- ==========================================================================
-- LID <-> phone number map (lidmap.go)
-- ==========================================================================

-- name: deleteExistingLIDMappingQuery
-- params: business_id, other_lid, pn
DELETE FROM whatsmeow_lid_map
WHERE business_id = $1 AND (lid <> $2 AND pn = $3);

-- name: putLIDMappingQuery
-- params: business_id, lid, pn
INSERT INTO whatsmeow_lid_map (business_id, lid, pn)
VALUES ($1, $2, $3)
ON CONFLICT (business_id, lid) DO UPDATE SET pn = excluded.pn WHERE whatsmeow_lid_map.pn <> excluded.pn;

-- name: getLIDForPNQuery
-- params: business_id, pn
SELECT lid FROM whatsmeow_lid_map
WHERE business_id = $1 AND pn = $2;

-- name: getPNForLIDQuery
-- params: business_id, lid
SELECT pn FROM whatsmeow_lid_map
WHERE business_id = $1 AND lid = $2;

-- name: getAllLIDMappingsQuery
-- params: business_id
SELECT
    lid,
    pn
FROM whatsmeow_lid_map
WHERE business_id = $1;

-- name: getManyLIDsForPNsQuery
-- params: business_id, pns
SELECT
    lid,
    pn
FROM whatsmeow_lid_map
WHERE business_id = $1 AND pn = any($2);

-- ==========================================================================
-- Identity keys and sessions (store.go)
-- ==========================================================================

-- name: putIdentityQuery
-- params: business_id, our_jid, their_id, identity
INSERT INTO whatsmeow_identity_keys (business_id, our_jid, their_id, identity) VALUES ($1, $2, $3, $4)
ON CONFLICT (business_id, our_jid, their_id) DO UPDATE SET identity = excluded.identity;

-- Prefix deletes and migrations: under the C collation of their_id and sender_id
-- PostgreSQL reads a LIKE 'prefix%' as one index range. starts_with() repeats the
-- pattern's fixed prefix, so it never changes the rows matched. It is there for
-- row-level security: LIKE is not leakproof, so under a policy the planner may
-- not use it for the index, while starts_with() is, and gives the same range
-- (PostgreSQL 15 and later).
-- name: deleteAllIdentitiesQuery
-- params: business_id, our_jid, their_id_pattern
DELETE FROM whatsmeow_identity_keys
WHERE
    business_id = $1 AND our_jid = $2 AND their_id LIKE $3
    AND starts_with(their_id, substring($3 FROM '^[^%_\\]*'));

-- name: deleteIdentityQuery
-- params: business_id, our_jid, their_id
DELETE FROM whatsmeow_identity_keys
WHERE business_id = $1 AND our_jid = $2 AND their_id = $3;

-- name: getIdentityQuery
-- params: business_id, our_jid, their_id
SELECT identity FROM whatsmeow_identity_keys
WHERE business_id = $1 AND our_jid = $2 AND their_id = $3;

-- name: getSessionQuery
-- params: business_id, our_jid, their_id
SELECT session FROM whatsmeow_sessions
WHERE business_id = $1 AND our_jid = $2 AND their_id = $3;

-- name: hasSessionQuery
-- params: business_id, our_jid, their_id
SELECT TRUE FROM whatsmeow_sessions
WHERE business_id = $1 AND our_jid = $2 AND their_id = $3;

-- The array goes through a sub-select so that the planner never sees its length:
-- otherwise every custom plan (a short array) looks cheaper than the generic one,
-- and a prepared statement is planned again on every call.
-- name: getManySessionQueryPostgres
-- params: business_id, our_jid, their_ids
SELECT
    their_id,
    session
FROM whatsmeow_sessions
WHERE business_id = $1 AND our_jid = $2 AND their_id = any(array(SELECT unnest($3::TEXT[])));

-- name: putSessionQuery
-- params: business_id, our_jid, their_id, session
INSERT INTO whatsmeow_sessions (business_id, our_jid, their_id, session) VALUES ($1, $2, $3, $4)
ON CONFLICT (business_id, our_jid, their_id) DO UPDATE SET session = excluded.session;

-- name: deleteAllSessionsQuery
-- params: business_id, our_jid, their_id_pattern
DELETE FROM whatsmeow_sessions
WHERE
    business_id = $1 AND our_jid = $2 AND their_id LIKE $3
    AND starts_with(their_id, substring($3 FROM '^[^%_\\]*'));

-- name: deleteSessionQuery
-- params: business_id, our_jid, their_id
DELETE FROM whatsmeow_sessions
WHERE business_id = $1 AND our_jid = $2 AND their_id = $3;

-- name: migratePNToLIDSessionsQuery
-- params: business_id, our_jid, pn_signal, lid_signal
INSERT INTO whatsmeow_sessions (business_id, our_jid, their_id, session)
SELECT
    business_id,
    our_jid,
    replace(their_id, $3, $4) AS their_id,
    session
FROM whatsmeow_sessions
WHERE
    business_id = $1 AND our_jid = $2 AND their_id LIKE $3 || ':%'
    AND starts_with(their_id, substring($3 || ':%' FROM '^[^%_\\]*'))
ON CONFLICT (business_id, our_jid, their_id) DO UPDATE SET session = excluded.session;

-- name: deleteAllIdentityKeysQuery
-- params: business_id, our_jid, their_id_pattern
DELETE FROM whatsmeow_identity_keys
WHERE
    business_id = $1 AND our_jid = $2 AND their_id LIKE $3
    AND starts_with(their_id, substring($3 FROM '^[^%_\\]*'));

-- name: migratePNToLIDIdentityKeysQuery
-- params: business_id, our_jid, pn_signal, lid_signal
INSERT INTO whatsmeow_identity_keys (business_id, our_jid, their_id, identity)
SELECT
    business_id,
    our_jid,
    replace(their_id, $3, $4) AS their_id,
    identity
FROM whatsmeow_identity_keys
WHERE
    business_id = $1 AND our_jid = $2 AND their_id LIKE $3 || ':%'
    AND starts_with(their_id, substring($3 || ':%' FROM '^[^%_\\]*'))
ON CONFLICT (business_id, our_jid, their_id) DO UPDATE SET identity = excluded.identity;

-- name: deleteAllSenderKeysQuery
-- params: business_id, our_jid, their_id_pattern
DELETE FROM whatsmeow_sender_keys
WHERE
    business_id = $1 AND our_jid = $2 AND sender_id LIKE $3
    AND starts_with(sender_id, substring($3 FROM '^[^%_\\]*'));

-- name: migratePNToLIDSenderKeysQuery
-- params: business_id, our_jid, pn_signal, lid_signal
INSERT INTO whatsmeow_sender_keys (business_id, our_jid, chat_id, sender_id, sender_key)
SELECT
    business_id,
    our_jid,
    chat_id,
    replace(sender_id, $3, $4) AS sender_id,
    sender_key
FROM whatsmeow_sender_keys
WHERE
    business_id = $1 AND our_jid = $2 AND sender_id LIKE $3 || ':%'
    AND starts_with(sender_id, substring($3 || ':%' FROM '^[^%_\\]*'))
ON CONFLICT (business_id, our_jid, chat_id, sender_id) DO UPDATE SET sender_key = excluded.sender_key;

-- ==========================================================================
-- Pre-keys and sender keys (store.go)
-- ==========================================================================

-- name: getLastPreKeyIDQuery
-- params: business_id, jid
SELECT max(key_id) FROM whatsmeow_pre_keys
WHERE business_id = $1 AND jid = $2;

-- name: insertPreKeyQuery
-- params: business_id, jid, key_id, key, uploaded
INSERT INTO whatsmeow_pre_keys (business_id, jid, key_id, key, uploaded) VALUES ($1, $2, $3, $4, $5);

-- name: getUnuploadedPreKeysQuery
-- params: business_id, jid, count
SELECT
    key_id,
    key
FROM whatsmeow_pre_keys
WHERE business_id = $1 AND jid = $2 AND uploaded = FALSE
ORDER BY key_id
LIMIT $3;

-- name: getPreKeyQuery
-- params: business_id, jid, key_id
SELECT
    key_id,
    key
FROM whatsmeow_pre_keys
WHERE business_id = $1 AND jid = $2 AND key_id = $3;

-- name: deletePreKeyQuery
-- params: business_id, jid, key_id
DELETE FROM whatsmeow_pre_keys
WHERE business_id = $1 AND jid = $2 AND key_id = $3;

-- name: markPreKeysAsUploadedQuery
-- params: business_id, jid, key_id
UPDATE whatsmeow_pre_keys SET uploaded = TRUE
WHERE business_id = $1 AND jid = $2 AND key_id <= $3;

-- name: getUploadedPreKeyCountQuery
-- params: business_id, jid
SELECT count(*) FROM whatsmeow_pre_keys
WHERE business_id = $1 AND jid = $2 AND uploaded = TRUE;

-- name: getSenderKeyQuery
-- params: business_id, our_jid, chat_id, sender_id
SELECT sender_key FROM whatsmeow_sender_keys
WHERE business_id = $1 AND our_jid = $2 AND chat_id = $3 AND sender_id = $4;

-- name: putSenderKeyQuery
-- params: business_id, our_jid, chat_id, sender_id, sender_key
INSERT INTO whatsmeow_sender_keys (business_id, our_jid, chat_id, sender_id, sender_key) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (business_id, our_jid, chat_id, sender_id) DO UPDATE SET sender_key = excluded.sender_key;

-- ==========================================================================
-- App state (store.go)
-- ==========================================================================

-- name: putAppStateSyncKeyQuery
-- params: business_id, jid, sync_key_id, key_data, timestamp, fingerprint
INSERT INTO whatsmeow_app_state_sync_keys (business_id, jid, key_id, key_data, timestamp, fingerprint)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (business_id, jid, key_id) DO UPDATE
    SET key_data = excluded.key_data, timestamp = excluded.timestamp, fingerprint = excluded.fingerprint
    WHERE excluded.timestamp > whatsmeow_app_state_sync_keys.timestamp;

-- name: getAllAppStateSyncKeysQuery
-- params: business_id, jid
SELECT
    key_data,
    timestamp,
    fingerprint
FROM whatsmeow_app_state_sync_keys
WHERE business_id = $1 AND jid = $2
ORDER BY timestamp DESC;

-- name: getAppStateSyncKeyQuery
-- params: business_id, jid, sync_key_id
SELECT
    key_data,
    timestamp,
    fingerprint
FROM whatsmeow_app_state_sync_keys
WHERE business_id = $1 AND jid = $2 AND key_id = $3;

-- name: getLatestAppStateSyncKeyIDQuery
-- params: business_id, jid
SELECT key_id FROM whatsmeow_app_state_sync_keys
WHERE business_id = $1 AND jid = $2
ORDER BY timestamp DESC LIMIT 1;

-- name: putAppStateVersionQuery
-- params: business_id, jid, name, version, hash
INSERT INTO whatsmeow_app_state_version (business_id, jid, name, version, hash) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (business_id, jid, name) DO UPDATE SET version = excluded.version, hash = excluded.hash;

-- name: getAppStateVersionQuery
-- params: business_id, jid, name
SELECT
    version,
    hash
FROM whatsmeow_app_state_version
WHERE business_id = $1 AND jid = $2 AND name = $3;

-- name: deleteAppStateVersionQuery
-- params: business_id, jid, name
DELETE FROM whatsmeow_app_state_version
WHERE business_id = $1 AND jid = $2 AND name = $3;

-- name: putAppStateMutationMACsQuery
-- params: business_id, jid, name, version, index_mac, value_mac
INSERT INTO whatsmeow_app_state_mutation_macs (business_id, jid, name, version, index_mac, value_mac)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: deleteAppStateMutationMACsQueryPostgres
-- params: business_id, jid, name, index_macs
DELETE FROM whatsmeow_app_state_mutation_macs
WHERE business_id = $1 AND jid = $2 AND name = $3 AND index_mac = any($4::BYTEA[]);

-- name: getAppStateMutationMACQuery
-- params: business_id, jid, name, index_mac
SELECT value_mac FROM whatsmeow_app_state_mutation_macs
WHERE business_id = $1 AND jid = $2 AND name = $3 AND index_mac = $4
ORDER BY version DESC LIMIT 1;

-- ==========================================================================
-- Contacts and chat settings (store.go)
-- ==========================================================================

-- name: putContactNameQuery
-- params: business_id, our_jid, their_jid, first_name, full_name
INSERT INTO whatsmeow_contacts (business_id, our_jid, their_jid, first_name, full_name) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (business_id, our_jid, their_jid) DO UPDATE
    SET first_name = excluded.first_name, full_name = excluded.full_name;

-- name: putRedactedPhoneQuery
-- params: business_id, our_jid, their_jid, redacted_phone
INSERT INTO whatsmeow_contacts (business_id, our_jid, their_jid, redacted_phone)
VALUES ($1, $2, $3, $4)
ON CONFLICT (business_id, our_jid, their_jid) DO UPDATE SET redacted_phone = excluded.redacted_phone;

-- name: putPushNameQuery
-- params: business_id, our_jid, their_jid, push_name
INSERT INTO whatsmeow_contacts (business_id, our_jid, their_jid, push_name) VALUES ($1, $2, $3, $4)
ON CONFLICT (business_id, our_jid, their_jid) DO UPDATE SET push_name = excluded.push_name;

-- name: putBusinessNameQuery
-- params: business_id, our_jid, their_jid, business_name
INSERT INTO whatsmeow_contacts (business_id, our_jid, their_jid, business_name) VALUES ($1, $2, $3, $4)
ON CONFLICT (business_id, our_jid, their_jid) DO UPDATE SET business_name = excluded.business_name;

-- name: getContactQuery
-- params: business_id, our_jid, their_jid
SELECT
    first_name,
    full_name,
    push_name,
    business_name,
    redacted_phone
FROM whatsmeow_contacts
WHERE business_id = $1 AND our_jid = $2 AND their_jid = $3;

-- name: getAllContactsQuery
-- params: business_id, our_jid
SELECT
    their_jid,
    first_name,
    full_name,
    push_name,
    business_name,
    redacted_phone
FROM whatsmeow_contacts
WHERE business_id = $1 AND our_jid = $2;

-- name: putChatSettingQuery/muted_until
-- params: business_id, our_jid, chat_jid, muted_until
INSERT INTO whatsmeow_chat_settings (business_id, our_jid, chat_jid, muted_until) VALUES ($1, $2, $3, $4)
ON CONFLICT (business_id, our_jid, chat_jid) DO UPDATE SET muted_until = excluded.muted_until;

-- name: putChatSettingQuery/pinned
-- params: business_id, our_jid, chat_jid, pinned
INSERT INTO whatsmeow_chat_settings (business_id, our_jid, chat_jid, pinned) VALUES ($1, $2, $3, $4)
ON CONFLICT (business_id, our_jid, chat_jid) DO UPDATE SET pinned = excluded.pinned;

-- name: putChatSettingQuery/archived
-- params: business_id, our_jid, chat_jid, archived
INSERT INTO whatsmeow_chat_settings (business_id, our_jid, chat_jid, archived) VALUES ($1, $2, $3, $4)
ON CONFLICT (business_id, our_jid, chat_jid) DO UPDATE SET archived = excluded.archived;

-- name: getChatSettingsQuery
-- params: business_id, our_jid, chat_jid
SELECT
    muted_until,
    pinned,
    archived
FROM whatsmeow_chat_settings
WHERE business_id = $1 AND our_jid = $2 AND chat_jid = $3;

-- ==========================================================================
-- Message secrets and privacy tokens (store.go)
-- ==========================================================================

-- name: putMsgSecret
-- params: business_id, our_jid, chat_jid, sender_jid, message_id, key
INSERT INTO whatsmeow_message_secrets (business_id, our_jid, chat_jid, sender_jid, message_id, key)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (business_id, our_jid, chat_jid, sender_jid, message_id) DO NOTHING;

-- Upstream's `col = $n OR col = CASE WHEN $n LIKE ... END`, written as an OR of
-- three equalities: the JID itself, and its LID/phone alternate from this
-- tenant's own map, each sub-select answering only for its form of JID (the
-- suffixes exclude each other, so the same rows match). Every arm is a plain
-- equality, which is leakproof, so under row-level security the OR is still
-- turned into index conditions on the primary key; the LIKE lives inside the
-- sub-selects, where no policy needs to see past it (PostgreSQL 15.20 stopped
-- pushing upstream's OR with a LIKE below the policy). `(SELECT $n)` keeps the
-- planner from folding a sub-select for one call's values: a custom plan would
-- then always look cheaper than the generic one, and the prepared statement
-- would be planned again on every call (as upstream's form is).
-- name: getMsgSecret
-- params: business_id, our_jid, chat_jid, sender_jid, message_id
SELECT
    key,
    sender_jid
FROM whatsmeow_message_secrets
WHERE
    business_id = $1
    AND our_jid = $2
    AND (
        chat_jid = $3
        OR chat_jid = (
            SELECT
                CASE
                    WHEN (SELECT $3) LIKE '%@lid'
                        THEN (
                            SELECT lm.pn || '@s.whatsapp.net' FROM whatsmeow_lid_map AS lm
                            WHERE lm.business_id = $1 AND lm.lid = replace($3, '@lid', '')
                        )
                    WHEN (SELECT $3) LIKE '%@s.whatsapp.net'
                        THEN (
                            SELECT lm.lid || '@lid' FROM whatsmeow_lid_map AS lm
                            WHERE lm.business_id = $1 AND lm.pn = replace($3, '@s.whatsapp.net', '')
                        )
                END
        )
    )
    AND message_id = $5
    AND (
        sender_jid = $4
        OR sender_jid = (
            SELECT
                CASE
                    WHEN (SELECT $4) LIKE '%@lid'
                        THEN (
                            SELECT lm.pn || '@s.whatsapp.net' FROM whatsmeow_lid_map AS lm
                            WHERE lm.business_id = $1 AND lm.lid = replace($4, '@lid', '')
                        )
                    WHEN (SELECT $4) LIKE '%@s.whatsapp.net'
                        THEN (
                            SELECT lm.lid || '@lid' FROM whatsmeow_lid_map AS lm
                            WHERE lm.business_id = $1 AND lm.pn = replace($4, '@s.whatsapp.net', '')
                        )
                END
        )
    );

-- name: putPrivacyTokens
-- params: business_id, our_jid, their_jid, token, timestamp, sender_timestamp
INSERT INTO whatsmeow_privacy_tokens (business_id, our_jid, their_jid, token, timestamp, sender_timestamp)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (business_id, our_jid, their_jid) DO UPDATE SET
    token = excluded.token,
    timestamp = excluded.timestamp,
    sender_timestamp = coalesce(excluded.sender_timestamp, whatsmeow_privacy_tokens.sender_timestamp)
WHERE excluded.timestamp >= whatsmeow_privacy_tokens.timestamp;

-- The same candidate list as getMsgSecret, for the same reasons.
-- name: getPrivacyToken
-- params: business_id, our_jid, their_jid
SELECT
    token,
    timestamp,
    sender_timestamp
FROM whatsmeow_privacy_tokens
WHERE
    business_id = $1
    AND our_jid = $2
    AND (
        their_jid = $3
        OR their_jid = (
            SELECT
                CASE
                    WHEN (SELECT $3) LIKE '%@lid'
                        THEN (
                            SELECT lm.pn || '@s.whatsapp.net' FROM whatsmeow_lid_map AS lm
                            WHERE lm.business_id = $1 AND lm.lid = replace($3, '@lid', '')
                        )
                    WHEN (SELECT $3) LIKE '%@s.whatsapp.net'
                        THEN (
                            SELECT lm.lid || '@lid' FROM whatsmeow_lid_map AS lm
                            WHERE lm.business_id = $1 AND lm.pn = replace($3, '@s.whatsapp.net', '')
                        )
                END
        )
    )
ORDER BY timestamp DESC LIMIT 1;

-- name: deleteExpiredPrivacyTokens
-- params: business_id, our_jid, expiry_seconds
DELETE FROM whatsmeow_privacy_tokens
WHERE business_id = $1 AND our_jid = $2 AND timestamp < $3;

-- ==========================================================================
-- NCT salt, decrypted-event buffer and retry buffer (store.go)
-- ==========================================================================

-- name: putNCTSaltQuery
-- params: business_id, our_jid, salt
INSERT INTO whatsmeow_nct_salt (business_id, our_jid, salt) VALUES ($1, $2, $3)
ON CONFLICT (business_id, our_jid) DO UPDATE SET salt = excluded.salt;

-- name: getNCTSaltQuery
-- params: business_id, our_jid
SELECT salt FROM whatsmeow_nct_salt
WHERE business_id = $1 AND our_jid = $2;

-- name: deleteNCTSaltQuery
-- params: business_id, our_jid
DELETE FROM whatsmeow_nct_salt
WHERE business_id = $1 AND our_jid = $2;

-- name: getBufferedEventQuery
-- params: business_id, our_jid, ciphertext_hash
SELECT
    plaintext,
    server_timestamp,
    insert_timestamp
FROM whatsmeow_event_buffer
WHERE business_id = $1 AND our_jid = $2 AND ciphertext_hash = $3;

-- name: putBufferedEventQuery
-- params: business_id, our_jid, ciphertext_hash, plaintext, server_timestamp, insert_timestamp
INSERT INTO whatsmeow_event_buffer (
    business_id, our_jid, ciphertext_hash, plaintext, server_timestamp, insert_timestamp
)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: clearBufferedEventPlaintextQuery
-- params: business_id, our_jid, ciphertext_hash
UPDATE whatsmeow_event_buffer SET plaintext = NULL
WHERE business_id = $1 AND our_jid = $2 AND ciphertext_hash = $3;

-- Upstream prunes every device's buffer at once; here the prune stays within
-- one tenant and walks only the rows it deletes.
-- name: deleteOldBufferedHashesQuery
-- params: business_id, expiry_ms
DELETE FROM whatsmeow_event_buffer
WHERE business_id = $1 AND insert_timestamp < $2;

-- name: getOutgoingEventQuery
-- params: business_id, our_jid, chat_jid, alt_chat_jid, message_id
SELECT
    format,
    plaintext
FROM whatsmeow_retry_buffer
WHERE business_id = $1 AND our_jid = $2 AND (chat_jid = $3 OR chat_jid = $4) AND message_id = $5;

-- name: addOutgoingEventQuery
-- params: business_id, our_jid, chat_jid, message_id, format, plaintext, timestamp
INSERT INTO whatsmeow_retry_buffer (business_id, our_jid, chat_jid, message_id, format, plaintext, timestamp)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (business_id, our_jid, chat_jid, message_id) DO UPDATE
    SET format = excluded.format, plaintext = excluded.plaintext, timestamp = excluded.timestamp;

-- name: deleteOldOutgoingEventsQuery
-- params: business_id, our_jid, expiry_ms
DELETE FROM whatsmeow_retry_buffer
WHERE business_id = $1 AND our_jid = $2 AND timestamp < $3;
