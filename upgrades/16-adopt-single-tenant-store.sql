-- v15 -> v16 (compatible with v16+): Key an existing single-tenant store by business_id
-- Converts an upstream whatsmeow v15 store in place into the v16 schema, every
-- existing row becoming the tenant named by the setting
-- whatsmeow.adopt_business_id (psql: schema/adopt.sql; Go: the connection option
-- `-c whatsmeow.adopt_business_id=<id>`; the applier: --adopt-business-id).
-- Without a valid setting it fails before changing anything. It holds ACCESS
-- EXCLUSIVE locks on every table until it commits: run it with the service
-- stopped, or use the applier's --online conversion.

SET LOCAL lock_timeout = '30s';

-- The same definition as in the fresh install; the tests compare the catalogs.
CREATE FUNCTION whatsmeow_business_id_is_valid(business_id TEXT)
RETURNS BOOLEAN
LANGUAGE plpgsql
IMMUTABLE
STRICT
PARALLEL SAFE
AS $$
BEGIN
    RETURN business_id ~ '^[A-Za-z0-9_-]+$' AND length(business_id) <= 64;
END
$$;

DO $$
DECLARE
    tenant TEXT := current_setting('whatsmeow.adopt_business_id', TRUE);
BEGIN
    IF coalesce(tenant, '') = '' THEN
        RAISE EXCEPTION 'converting a single-tenant store needs the business_id that will own its rows'
        USING ERRCODE = '22023',
        HINT = 'Set whatsmeow.adopt_business_id for this session, e.g. SET whatsmeow.adopt_business_id = ''acme''.';
    ELSIF NOT whatsmeow_business_id_is_valid(tenant) THEN
        RAISE EXCEPTION 'invalid business_id %: must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -',
        quote_literal(tenant)
        USING ERRCODE = '22023';
    END IF;
END
$$;

-- Upstream never removed privacy tokens with their device; the new foreign key
-- cannot hold those orphans, so they go, and the count is reported.
DO $$
DECLARE
    orphans BIGINT;
BEGIN
    DELETE FROM whatsmeow_privacy_tokens AS t
    WHERE NOT EXISTS (SELECT FROM whatsmeow_device AS d WHERE d.jid = t.our_jid);
    GET DIAGNOSTICS orphans = ROW_COUNT;
    IF orphans > 0 THEN
        RAISE NOTICE 'removed % privacy tokens of devices that no longer exist', orphans;
    END IF;
END
$$;

-- ==========================================================================
-- Take the single-tenant keys down: foreign keys before the keys they use
-- ==========================================================================

ALTER TABLE whatsmeow_identity_keys DROP CONSTRAINT whatsmeow_identity_keys_our_jid_fkey;
ALTER TABLE whatsmeow_pre_keys DROP CONSTRAINT whatsmeow_pre_keys_jid_fkey;
ALTER TABLE whatsmeow_sessions DROP CONSTRAINT whatsmeow_sessions_our_jid_fkey;
ALTER TABLE whatsmeow_sender_keys DROP CONSTRAINT whatsmeow_sender_keys_our_jid_fkey;
ALTER TABLE whatsmeow_app_state_sync_keys DROP CONSTRAINT whatsmeow_app_state_sync_keys_jid_fkey;
ALTER TABLE whatsmeow_app_state_mutation_macs DROP CONSTRAINT whatsmeow_app_state_mutation_macs_jid_name_fkey;
ALTER TABLE whatsmeow_app_state_version DROP CONSTRAINT whatsmeow_app_state_version_jid_fkey;
ALTER TABLE whatsmeow_contacts DROP CONSTRAINT whatsmeow_contacts_our_jid_fkey;
ALTER TABLE whatsmeow_chat_settings DROP CONSTRAINT whatsmeow_chat_settings_our_jid_fkey;
ALTER TABLE whatsmeow_message_secrets DROP CONSTRAINT whatsmeow_message_secrets_our_jid_fkey;
ALTER TABLE whatsmeow_nct_salt DROP CONSTRAINT whatsmeow_nct_salt_our_jid_fkey;
ALTER TABLE whatsmeow_event_buffer DROP CONSTRAINT whatsmeow_event_buffer_our_jid_fkey;
ALTER TABLE whatsmeow_retry_buffer DROP CONSTRAINT whatsmeow_retry_buffer_our_jid_fkey;

ALTER TABLE whatsmeow_device DROP CONSTRAINT whatsmeow_device_pkey;
ALTER TABLE whatsmeow_identity_keys DROP CONSTRAINT whatsmeow_identity_keys_pkey;
ALTER TABLE whatsmeow_pre_keys DROP CONSTRAINT whatsmeow_pre_keys_pkey;
ALTER TABLE whatsmeow_sessions DROP CONSTRAINT whatsmeow_sessions_pkey;
ALTER TABLE whatsmeow_sender_keys DROP CONSTRAINT whatsmeow_sender_keys_pkey;
ALTER TABLE whatsmeow_app_state_sync_keys DROP CONSTRAINT whatsmeow_app_state_sync_keys_pkey;
ALTER TABLE whatsmeow_app_state_version DROP CONSTRAINT whatsmeow_app_state_version_pkey;
ALTER TABLE whatsmeow_app_state_mutation_macs DROP CONSTRAINT whatsmeow_app_state_mutation_macs_pkey;
ALTER TABLE whatsmeow_contacts DROP CONSTRAINT whatsmeow_contacts_pkey;
ALTER TABLE whatsmeow_chat_settings DROP CONSTRAINT whatsmeow_chat_settings_pkey;
ALTER TABLE whatsmeow_message_secrets DROP CONSTRAINT whatsmeow_message_secrets_pkey;
ALTER TABLE whatsmeow_privacy_tokens DROP CONSTRAINT whatsmeow_privacy_tokens_pkey;
ALTER TABLE whatsmeow_nct_salt DROP CONSTRAINT whatsmeow_nct_salt_pkey;
ALTER TABLE whatsmeow_lid_map DROP CONSTRAINT whatsmeow_lid_map_pkey;
ALTER TABLE whatsmeow_lid_map DROP CONSTRAINT whatsmeow_lid_map_pn_key;
ALTER TABLE whatsmeow_event_buffer DROP CONSTRAINT whatsmeow_event_buffer_pkey;
ALTER TABLE whatsmeow_retry_buffer DROP CONSTRAINT whatsmeow_retry_buffer_pkey;

DROP INDEX idx_whatsmeow_privacy_tokens_our_jid_timestamp;
DROP INDEX whatsmeow_retry_buffer_timestamp_idx;

-- ==========================================================================
-- Add business_id: a constant default fills existing rows without a rewrite
-- ==========================================================================

ALTER TABLE whatsmeow_device
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_identity_keys
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_pre_keys
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_sessions
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_sender_keys
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_app_state_sync_keys
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_app_state_version
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_app_state_mutation_macs
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_contacts
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_chat_settings
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_message_secrets
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_privacy_tokens
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_nct_salt
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_lid_map
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_event_buffer
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));
ALTER TABLE whatsmeow_retry_buffer
ADD COLUMN business_id TEXT NOT NULL DEFAULT current_setting('whatsmeow.adopt_business_id')
CHECK (whatsmeow_business_id_is_valid(business_id));

-- New rows must always name their tenant.
ALTER TABLE whatsmeow_device ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_identity_keys ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_pre_keys ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_sessions ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_sender_keys ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_app_state_sync_keys ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_app_state_version ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_app_state_mutation_macs ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_contacts ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_chat_settings ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_message_secrets ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_privacy_tokens ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_nct_salt ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_lid_map ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_event_buffer ALTER COLUMN business_id DROP DEFAULT;
ALTER TABLE whatsmeow_retry_buffer ALTER COLUMN business_id DROP DEFAULT;

-- ==========================================================================
-- Put the tenant keys up: keys before the foreign keys that use them
-- ==========================================================================

ALTER TABLE whatsmeow_device ADD PRIMARY KEY (business_id, jid);
ALTER TABLE whatsmeow_identity_keys ADD PRIMARY KEY (business_id, our_jid, their_id);
ALTER TABLE whatsmeow_pre_keys ADD PRIMARY KEY (business_id, jid, key_id);
ALTER TABLE whatsmeow_sessions ADD PRIMARY KEY (business_id, our_jid, their_id);
ALTER TABLE whatsmeow_sender_keys ADD PRIMARY KEY (business_id, our_jid, chat_id, sender_id);
ALTER TABLE whatsmeow_app_state_sync_keys ADD PRIMARY KEY (business_id, jid, key_id);
ALTER TABLE whatsmeow_app_state_version ADD PRIMARY KEY (business_id, jid, name);
ALTER TABLE whatsmeow_app_state_mutation_macs ADD PRIMARY KEY (business_id, jid, name, index_mac, version);
ALTER TABLE whatsmeow_contacts ADD PRIMARY KEY (business_id, our_jid, their_jid);
ALTER TABLE whatsmeow_chat_settings ADD PRIMARY KEY (business_id, our_jid, chat_jid);
ALTER TABLE whatsmeow_message_secrets ADD PRIMARY KEY (business_id, our_jid, chat_jid, sender_jid, message_id);
ALTER TABLE whatsmeow_privacy_tokens ADD PRIMARY KEY (business_id, our_jid, their_jid);
ALTER TABLE whatsmeow_nct_salt ADD PRIMARY KEY (business_id, our_jid);
ALTER TABLE whatsmeow_lid_map ADD PRIMARY KEY (business_id, lid), ADD UNIQUE (business_id, pn);
ALTER TABLE whatsmeow_event_buffer ADD PRIMARY KEY (business_id, our_jid, ciphertext_hash);
ALTER TABLE whatsmeow_retry_buffer ADD PRIMARY KEY (business_id, our_jid, chat_jid, message_id);

ALTER TABLE whatsmeow_identity_keys
ADD FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_pre_keys
ADD FOREIGN KEY (business_id, jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_sessions
ADD FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_sender_keys
ADD FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_app_state_sync_keys
ADD FOREIGN KEY (business_id, jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_app_state_version
ADD FOREIGN KEY (business_id, jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_app_state_mutation_macs
ADD FOREIGN KEY (business_id, jid, name) REFERENCES whatsmeow_app_state_version (business_id, jid, name)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_contacts
ADD FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_chat_settings
ADD FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_message_secrets
ADD FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_privacy_tokens
ADD FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_nct_salt
ADD FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_event_buffer
ADD FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE whatsmeow_retry_buffer
ADD FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
ON DELETE CASCADE ON UPDATE CASCADE;

CREATE INDEX idx_whatsmeow_privacy_tokens_our_jid_timestamp
ON whatsmeow_privacy_tokens (business_id, our_jid, timestamp);

CREATE INDEX whatsmeow_event_buffer_business_id_insert_timestamp_idx
ON whatsmeow_event_buffer (business_id, insert_timestamp);

CREATE INDEX whatsmeow_retry_buffer_timestamp_idx
ON whatsmeow_retry_buffer (business_id, our_jid, timestamp);

CREATE INDEX whatsmeow_pre_keys_business_id_jid_uploaded_key_id_idx
ON whatsmeow_pre_keys (business_id, jid, uploaded, key_id);

CREATE INDEX whatsmeow_app_state_sync_keys_business_id_jid_timestamp_idx
ON whatsmeow_app_state_sync_keys (business_id, jid, timestamp);
