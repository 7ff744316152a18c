-- v0 -> v1000 (compatible with v1000+): Latest multi-tenant schema
-- Upstream whatsmeow v15 with every table keyed by business_id. Compat 1000
-- makes unmodified upstream code, which knows far fewer versions, refuse this
-- database instead of writing rows without a tenant (see
-- 18-multi-tenant-version-line.sql).

-- The one definition of a valid tenant key, used by every table's CHECK and by
-- the tenant context. A CHECK on plain TEXT rather than a domain, because Citus
-- cannot route queries whose distribution column is a domain with a CHECK.
-- Every INSERT and UPDATE runs it, so it is written for speed: PL/pgSQL, because
-- an inlined SQL function's body is parsed again for every statement, and `+`
-- with a length test, because the regex engine expands `{1,64}` into 64 states
-- on every call. Same rule: 1 to 64 characters of A-Z a-z 0-9 _ -.
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

CREATE TABLE whatsmeow_device (
    business_id          TEXT    NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    jid                  TEXT,
    lid                  TEXT,

    facebook_uuid        UUID,

    registration_id      BIGINT  NOT NULL CHECK (registration_id >= 0 AND registration_id < 4294967296),

    noise_key            BYTEA   NOT NULL CHECK (length(noise_key) = 32),
    identity_key         BYTEA   NOT NULL CHECK (length(identity_key) = 32),

    signed_pre_key       BYTEA   NOT NULL CHECK (length(signed_pre_key) = 32),
    signed_pre_key_id    INTEGER NOT NULL CHECK (signed_pre_key_id >= 0 AND signed_pre_key_id < 16777216),
    signed_pre_key_sig   BYTEA   NOT NULL CHECK (length(signed_pre_key_sig) = 64),

    adv_key              BYTEA   NOT NULL,
    adv_details          BYTEA   NOT NULL,
    adv_account_sig      BYTEA   NOT NULL CHECK (length(adv_account_sig) = 64),
    adv_account_sig_key  BYTEA   NOT NULL CHECK (length(adv_account_sig_key) = 32),
    adv_device_sig       BYTEA   NOT NULL CHECK (length(adv_device_sig) = 64),

    platform             TEXT    NOT NULL DEFAULT '',
    business_name        TEXT    NOT NULL DEFAULT '',
    push_name            TEXT    NOT NULL DEFAULT '',

    lid_migration_ts     BIGINT  NOT NULL DEFAULT 0,

    companion_meta_nonce TEXT    NOT NULL DEFAULT '',

    PRIMARY KEY (business_id, jid)
);

-- their_id and sender_id sort by byte (COLLATE "C") so that upstream's
-- `LIKE 'prefix%'` deletes and migrations read a key range instead of every row
-- of the device: PostgreSQL turns a LIKE prefix into an index range only under
-- the C collation. Equality, and so every other query, is unchanged.
CREATE TABLE whatsmeow_identity_keys (
    business_id TEXT  NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    our_jid     TEXT,
    their_id    TEXT COLLATE "C",
    identity    BYTEA NOT NULL CHECK (length(identity) = 32),

    PRIMARY KEY (business_id, our_jid, their_id),
    FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE TABLE whatsmeow_pre_keys (
    business_id TEXT    NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    jid         TEXT,
    key_id      INTEGER CHECK (key_id >= 0 AND key_id < 16777216),
    key         BYTEA   NOT NULL CHECK (length(key) = 32),
    uploaded    BOOLEAN NOT NULL,

    PRIMARY KEY (business_id, jid, key_id),
    FOREIGN KEY (business_id, jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

-- The keys not yet uploaded, in order, without walking the uploaded ones first.
-- Partial: a device keeps few keys waiting for upload, so the index stays small.
CREATE INDEX whatsmeow_pre_keys_business_id_jid_key_id_not_uploaded_idx
ON whatsmeow_pre_keys (business_id, jid, key_id) WHERE uploaded = FALSE;

CREATE TABLE whatsmeow_sessions (
    business_id TEXT NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    our_jid     TEXT,
    their_id    TEXT COLLATE "C",
    session     BYTEA,

    PRIMARY KEY (business_id, our_jid, their_id),
    FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE TABLE whatsmeow_sender_keys (
    business_id TEXT  NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    our_jid     TEXT,
    chat_id     TEXT,
    sender_id   TEXT COLLATE "C",
    sender_key  BYTEA NOT NULL,

    -- sender_id before chat_id: the deletes and migrations by sender_id prefix
    -- then read one key range; lookups give all four columns, so the order is free.
    PRIMARY KEY (business_id, our_jid, sender_id, chat_id),
    FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE TABLE whatsmeow_app_state_sync_keys (
    business_id TEXT   NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    jid         TEXT,
    key_id      BYTEA,
    key_data    BYTEA  NOT NULL,
    timestamp   BIGINT NOT NULL,
    fingerprint BYTEA  NOT NULL,

    PRIMARY KEY (business_id, jid, key_id),
    FOREIGN KEY (business_id, jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

-- The newest sync key without sorting all of the device's keys.
CREATE INDEX whatsmeow_app_state_sync_keys_business_id_jid_timestamp_idx
ON whatsmeow_app_state_sync_keys (business_id, jid, timestamp);

CREATE TABLE whatsmeow_app_state_version (
    business_id TEXT   NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    jid         TEXT,
    name        TEXT,
    version     BIGINT NOT NULL,
    hash        BYTEA  NOT NULL CHECK (length(hash) = 128),

    PRIMARY KEY (business_id, jid, name),
    FOREIGN KEY (business_id, jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

-- The key holds upstream's columns with index_mac before version: every query
-- looks a MAC up by index_mac and wants its newest version, which upstream's
-- order can only answer by walking all versions of the whole collection.
CREATE TABLE whatsmeow_app_state_mutation_macs (
    business_id TEXT  NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    jid         TEXT,
    name        TEXT,
    version     BIGINT,
    index_mac   BYTEA CHECK (length(index_mac) = 32),
    value_mac   BYTEA NOT NULL CHECK (length(value_mac) = 32),

    PRIMARY KEY (business_id, jid, name, index_mac, version),
    FOREIGN KEY (business_id, jid, name) REFERENCES whatsmeow_app_state_version (business_id, jid, name)
    ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE TABLE whatsmeow_contacts (
    business_id    TEXT NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    our_jid        TEXT,
    their_jid      TEXT,
    first_name     TEXT,
    full_name      TEXT,
    push_name      TEXT,
    business_name  TEXT,
    redacted_phone TEXT,

    PRIMARY KEY (business_id, our_jid, their_jid),
    FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE TABLE whatsmeow_chat_settings (
    business_id TEXT    NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    our_jid     TEXT,
    chat_jid    TEXT,
    muted_until BIGINT  NOT NULL DEFAULT 0,
    pinned      BOOLEAN NOT NULL DEFAULT FALSE,
    archived    BOOLEAN NOT NULL DEFAULT FALSE,

    PRIMARY KEY (business_id, our_jid, chat_jid),
    FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE TABLE whatsmeow_message_secrets (
    business_id TEXT  NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    our_jid     TEXT,
    chat_jid    TEXT,
    sender_jid  TEXT,
    message_id  TEXT,
    key         BYTEA NOT NULL,

    PRIMARY KEY (business_id, our_jid, chat_jid, sender_jid, message_id),
    FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

-- Upstream has no foreign key here; with one, removing a device removes its
-- tokens too instead of leaving them behind for nobody.
CREATE TABLE whatsmeow_privacy_tokens (
    business_id      TEXT   NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    our_jid          TEXT,
    their_jid        TEXT,
    token            BYTEA  NOT NULL,
    timestamp        BIGINT NOT NULL,
    sender_timestamp BIGINT,

    PRIMARY KEY (business_id, our_jid, their_jid),
    FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX idx_whatsmeow_privacy_tokens_our_jid_timestamp
ON whatsmeow_privacy_tokens (business_id, our_jid, timestamp);

CREATE TABLE whatsmeow_nct_salt (
    business_id TEXT  NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    our_jid     TEXT,
    salt        BYTEA NOT NULL,

    PRIMARY KEY (business_id, our_jid),
    FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

-- Global to the database upstream; here each tenant has its own LID <-> phone map.
CREATE TABLE whatsmeow_lid_map (
    business_id TEXT NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    lid         TEXT,
    pn          TEXT NOT NULL,

    PRIMARY KEY (business_id, lid),
    UNIQUE (business_id, pn)
);

CREATE TABLE whatsmeow_event_buffer (
    business_id      TEXT   NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    our_jid          TEXT   NOT NULL,
    ciphertext_hash  BYTEA  NOT NULL CHECK (length(ciphertext_hash) = 32),
    plaintext        BYTEA,
    server_timestamp BIGINT NOT NULL,
    insert_timestamp BIGINT NOT NULL,

    PRIMARY KEY (business_id, our_jid, ciphertext_hash),
    FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

-- Serves the periodic prune of buffered events older than 14 days, which
-- upstream runs without any index.
CREATE INDEX whatsmeow_event_buffer_business_id_insert_timestamp_idx
ON whatsmeow_event_buffer (business_id, insert_timestamp);

CREATE TABLE whatsmeow_retry_buffer (
    business_id TEXT   NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    our_jid     TEXT   NOT NULL,
    chat_jid    TEXT   NOT NULL,
    message_id  TEXT   NOT NULL,
    format      TEXT   NOT NULL,
    plaintext   BYTEA  NOT NULL,
    timestamp   BIGINT NOT NULL,

    PRIMARY KEY (business_id, our_jid, chat_jid, message_id),
    FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX whatsmeow_retry_buffer_timestamp_idx
ON whatsmeow_retry_buffer (business_id, our_jid, timestamp);

COMMENT ON TABLE whatsmeow_version IS
'whatsmeow multi-tenant store: versions from 1000 on belong to the multi-tenant line, never to upstream whatsmeow';
