-- v0 -> v1003 (compatible with v1000+): Latest multi-tenant schema
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
    business_id TEXT        NOT NULL CHECK (whatsmeow_business_id_is_valid(business_id)),
    our_jid     TEXT,
    chat_jid    TEXT,
    sender_jid  TEXT,
    message_id  TEXT,
    key         BYTEA       NOT NULL,
    stored_at   TIMESTAMPTZ NOT NULL DEFAULT now(),

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

COMMENT ON COLUMN whatsmeow_message_secrets.stored_at IS
'when the store first received this secret (rows older than v1001 carry the time of that upgrade); read only by '
'whatsmeow_prune, never by whatsmeow';

-- The ages past which rows are gone for the store: upstream's own horizons for
-- the buffers (it deletes event-buffer rows after 14 days across all devices,
-- and a device's retry-buffer rows after 7 days, but only when that device
-- sends again), and for message secrets the caller's, if any.
CREATE FUNCTION whatsmeow_retention_horizons(
    message_secrets_older_than INTERVAL,
    OUT event_buffer_before BIGINT,
    OUT retry_buffer_before BIGINT,
    OUT message_secrets_before TIMESTAMPTZ
)
LANGUAGE sql
STABLE
AS $$
    SELECT
        (pg_catalog.date_part('epoch', pg_catalog.now() - INTERVAL '14 days') * 1000)::BIGINT,
        (pg_catalog.date_part('epoch', pg_catalog.now() - INTERVAL '7 days') * 1000)::BIGINT,
        pg_catalog.now() - message_secrets_older_than
$$;

-- What whatsmeow_prune would remove now, per tenant and table, next to each
-- table's rows. It reads every row of the tables it counts: off-peak on a large
-- store. Under forced row-level security name the tenant first.
CREATE FUNCTION whatsmeow_prune_candidates(
    business_id TEXT DEFAULT NULL,
    message_secrets_older_than INTERVAL DEFAULT NULL
)
RETURNS TABLE (tenant TEXT, table_name TEXT, prunable BIGINT, total BIGINT)
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    -- PL/pgSQL hands the parameters to each query as values, which Citus can
    -- route; a SQL function's parameters it cannot plan on distributed tables.
    RETURN QUERY
        WITH horizon AS (
            SELECT h.*
            FROM whatsmeow_retention_horizons(whatsmeow_prune_candidates.message_secrets_older_than) AS h
        )

        SELECT
            m.business_id,
            'whatsmeow_app_state_mutation_macs',
            pg_catalog.count(*) - pg_catalog.count(DISTINCT (m.jid, m.name, m.index_mac)),
            pg_catalog.count(*)
        FROM whatsmeow_app_state_mutation_macs AS m
        WHERE whatsmeow_prune_candidates.business_id IS NULL OR m.business_id = whatsmeow_prune_candidates.business_id
        GROUP BY m.business_id

        UNION ALL

        SELECT
            s.business_id,
            'whatsmeow_message_secrets',
            pg_catalog.count(*) FILTER (WHERE s.stored_at < horizon.message_secrets_before),
            pg_catalog.count(*)
        FROM whatsmeow_message_secrets AS s
        CROSS JOIN horizon
        WHERE whatsmeow_prune_candidates.business_id IS NULL OR s.business_id = whatsmeow_prune_candidates.business_id
        GROUP BY s.business_id

        UNION ALL

        SELECT
            e.business_id,
            'whatsmeow_event_buffer',
            pg_catalog.count(*) FILTER (WHERE e.insert_timestamp < horizon.event_buffer_before),
            pg_catalog.count(*)
        FROM whatsmeow_event_buffer AS e
        CROSS JOIN horizon
        WHERE whatsmeow_prune_candidates.business_id IS NULL OR e.business_id = whatsmeow_prune_candidates.business_id
        GROUP BY e.business_id

        UNION ALL

        SELECT
            r.business_id,
            'whatsmeow_retry_buffer',
            pg_catalog.count(*) FILTER (WHERE r.timestamp < horizon.retry_buffer_before),
            pg_catalog.count(*)
        FROM whatsmeow_retry_buffer AS r
        CROSS JOIN horizon
        WHERE whatsmeow_prune_candidates.business_id IS NULL OR r.business_id = whatsmeow_prune_candidates.business_id
        GROUP BY r.business_id
        ORDER BY 1, 2;
END
$$;

-- Removes what whatsmeow_prune_candidates counts, in transactions of at most
-- batch_size rows, each committed before the next: a writer waits at most for
-- one batch, and an interrupted run keeps what it committed (run it again to
-- finish). CALL it outside a transaction block, as the tables' owner:
--   CALL whatsmeow_prune();                                   -- every tenant
--   CALL whatsmeow_prune(business_id => 'acme', message_secrets_older_than => '90 days');
-- Progress and per-tenant counts arrive as NOTICEs. No SET clause: a procedure
-- with one cannot commit; every built-in is qualified instead.
CREATE PROCEDURE whatsmeow_prune(
    business_id TEXT DEFAULT NULL,
    message_secrets_older_than INTERVAL DEFAULT NULL,
    batch_size INTEGER DEFAULT 1000
)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    tenant TEXT := whatsmeow_prune.business_id;
    horizon RECORD;
    unit RECORD;
    device RECORD;
    after_mac BYTEA;
    after_version BIGINT;
    after_chat TEXT;
    after_sender TEXT;
    after_message TEXT;
    scanned INTEGER;
    removed INTEGER;
    tenant_removed BIGINT;
    table_removed BIGINT;
    reported TIMESTAMPTZ := pg_catalog.clock_timestamp();
    name_tenant BOOLEAN;
BEGIN
    IF tenant IS NOT NULL AND whatsmeow_business_id_is_valid(tenant) IS NOT TRUE THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = pg_catalog.format(
                'invalid business_id %s: must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -',
                pg_catalog.to_json(pg_catalog.left(tenant, 80))::TEXT
            );
    END IF;
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = pg_catalog.format('invalid batch_size %s: must be a positive number of rows', batch_size);
    END IF;
    IF message_secrets_older_than IS NOT NULL AND message_secrets_older_than <= INTERVAL '0' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = pg_catalog.format(
                'invalid message_secrets_older_than %s: must be a positive interval', message_secrets_older_than
            );
    END IF;
    -- Forced row-level security applies to the owner too: it then sees only the
    -- tenant named in each transaction, so there is no "every tenant" to prune.
    name_tenant := tenant IS NOT NULL
        AND pg_catalog.to_regprocedure('whatsmeow_set_tenant(text)') IS NOT NULL;
    IF tenant IS NULL AND EXISTS (
        SELECT FROM pg_catalog.pg_class AS c
        WHERE
            c.relnamespace = pg_catalog.to_regnamespace(pg_catalog.quote_ident(pg_catalog.current_schema()))
            AND c.relname LIKE 'whatsmeow\_%' AND c.relforcerowsecurity
    ) AND NOT (SELECT r.rolbypassrls OR r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'insufficient_privilege',
            MESSAGE = 'row-level security is forced on the store''s tables, so every tenant is out of sight',
            HINT = 'Prune one tenant at a time (business_id => ...), or run as a role with BYPASSRLS.';
    END IF;
    IF name_tenant THEN
        EXECUTE 'SELECT whatsmeow_set_tenant($1)' USING tenant;
    END IF;

    -- Superseded mutation MACs: every version of an index MAC but the newest,
    -- walked in key order one collection at a time.
    table_removed := 0;
    FOR unit IN
        SELECT v.business_id, v.jid, v.name
        FROM whatsmeow_app_state_version AS v
        WHERE tenant IS NULL OR v.business_id = tenant
        ORDER BY v.business_id, v.jid, v.name
    LOOP
        after_mac := '\x'::BYTEA;
        after_version := -9223372036854775808;
        tenant_removed := 0;
        LOOP
            IF name_tenant THEN
                EXECUTE 'SELECT whatsmeow_set_tenant($1)' USING tenant;
            END IF;
            -- One row past the batch shows whether the batch's last row is superseded.
            -- Rows are deleted by their physical address, so that no plan, whatever
            -- the statistics say, reads more than the batch.
            WITH chunk AS (
                SELECT m.ctid AS row_id, m.index_mac, m.version
                FROM whatsmeow_app_state_mutation_macs AS m
                WHERE
                    m.business_id = unit.business_id AND m.jid = unit.jid AND m.name = unit.name
                    AND (m.index_mac, m.version) > (after_mac, after_version)
                ORDER BY m.index_mac, m.version
                LIMIT batch_size + 1
            ),

            marked AS (
                SELECT
                    chunk.row_id,
                    chunk.index_mac,
                    chunk.version,
                    pg_catalog.row_number() OVER key_order AS position,
                    chunk.index_mac = pg_catalog.lead(chunk.index_mac) OVER key_order AS superseded
                FROM chunk
                WINDOW key_order AS (ORDER BY chunk.index_mac, chunk.version)
            ),

            gone AS (
                DELETE FROM whatsmeow_app_state_mutation_macs AS d
                WHERE
                    d.business_id = unit.business_id
                    AND d.ctid = ANY(ARRAY(
                        SELECT marked.row_id FROM marked
                        WHERE marked.superseded AND marked.position <= batch_size
                    ))
                RETURNING 1
            )

            SELECT
                (SELECT pg_catalog.count(*) FROM chunk),
                (SELECT pg_catalog.count(*) FROM gone),
                marked.index_mac,
                marked.version
            INTO scanned, removed, after_mac, after_version
            FROM (SELECT) AS one
            LEFT JOIN marked ON marked.position = batch_size;
            COMMIT;
            tenant_removed := tenant_removed + removed;
            IF pg_catalog.clock_timestamp() - reported > INTERVAL '5 seconds' THEN
                RAISE NOTICE 'prune: whatsmeow_app_state_mutation_macs: tenant %, %/%: % removed so far',
                    unit.business_id, unit.jid, unit.name, tenant_removed;
                reported := pg_catalog.clock_timestamp();
            END IF;
            EXIT WHEN scanned <= batch_size;
        END LOOP;
        IF tenant_removed > 0 THEN
            RAISE NOTICE 'prune: whatsmeow_app_state_mutation_macs: tenant %, %/%: % removed',
                unit.business_id, unit.jid, unit.name, tenant_removed;
        END IF;
        table_removed := table_removed + tenant_removed;
    END LOOP;
    RAISE NOTICE 'prune: whatsmeow_app_state_mutation_macs: % removed', table_removed;

    SELECT h.* INTO horizon FROM whatsmeow_retention_horizons(message_secrets_older_than) AS h;

    -- Message secrets older than the horizon, only when one is given; walked in
    -- key order one device at a time, since there is no index on stored_at.
    table_removed := 0;
    IF name_tenant THEN
        EXECUTE 'SELECT whatsmeow_set_tenant($1)' USING tenant;
    END IF;
    FOR unit IN
        SELECT d.business_id, d.jid
        FROM whatsmeow_device AS d
        WHERE message_secrets_older_than IS NOT NULL AND (tenant IS NULL OR d.business_id = tenant)
        ORDER BY d.business_id, d.jid
    LOOP
        after_chat := '';
        after_sender := '';
        after_message := '';
        tenant_removed := 0;
        LOOP
            IF name_tenant THEN
                EXECUTE 'SELECT whatsmeow_set_tenant($1)' USING tenant;
            END IF;
            WITH chunk AS (
                SELECT s.ctid AS row_id, s.chat_jid, s.sender_jid, s.message_id, s.stored_at
                FROM whatsmeow_message_secrets AS s
                WHERE
                    s.business_id = unit.business_id AND s.our_jid = unit.jid
                    AND (s.chat_jid, s.sender_jid, s.message_id) > (after_chat, after_sender, after_message)
                ORDER BY s.chat_jid, s.sender_jid, s.message_id
                LIMIT batch_size
            ),

            gone AS (
                DELETE FROM whatsmeow_message_secrets AS d
                WHERE
                    d.business_id = unit.business_id
                    AND d.ctid = ANY(ARRAY(
                        SELECT chunk.row_id FROM chunk
                        WHERE chunk.stored_at < horizon.message_secrets_before
                    ))
                RETURNING 1
            ),

            last AS (
                SELECT chunk.chat_jid, chunk.sender_jid, chunk.message_id
                FROM chunk
                ORDER BY chunk.chat_jid DESC, chunk.sender_jid DESC, chunk.message_id DESC
                LIMIT 1
            )

            SELECT
                (SELECT pg_catalog.count(*) FROM chunk),
                (SELECT pg_catalog.count(*) FROM gone),
                last.chat_jid,
                last.sender_jid,
                last.message_id
            INTO scanned, removed, after_chat, after_sender, after_message
            FROM (SELECT) AS one
            LEFT JOIN last ON TRUE;
            COMMIT;
            tenant_removed := tenant_removed + removed;
            IF pg_catalog.clock_timestamp() - reported > INTERVAL '5 seconds' THEN
                RAISE NOTICE 'prune: whatsmeow_message_secrets: tenant %, %: % removed so far',
                    unit.business_id, unit.jid, tenant_removed;
                reported := pg_catalog.clock_timestamp();
            END IF;
            EXIT WHEN scanned < batch_size;
        END LOOP;
        IF tenant_removed > 0 THEN
            RAISE NOTICE 'prune: whatsmeow_message_secrets: tenant %, %: % removed',
                unit.business_id, unit.jid, tenant_removed;
        END IF;
        table_removed := table_removed + tenant_removed;
    END LOOP;
    IF message_secrets_older_than IS NOT NULL THEN
        RAISE NOTICE 'prune: whatsmeow_message_secrets: % removed', table_removed;
    END IF;

    -- The buffers' expired rows, through their time indexes, one device at a time.
    FOR unit IN
        SELECT t.table_name, t.time_column, t.before
        FROM (
            VALUES
            ('whatsmeow_event_buffer', 'insert_timestamp', horizon.event_buffer_before),
            ('whatsmeow_retry_buffer', 'timestamp', horizon.retry_buffer_before)
        ) AS t (table_name, time_column, before)
    LOOP
        table_removed := 0;
        IF name_tenant THEN
            EXECUTE 'SELECT whatsmeow_set_tenant($1)' USING tenant;
        END IF;
        FOR device IN
            SELECT d.business_id, d.jid
            FROM whatsmeow_device AS d
            WHERE tenant IS NULL OR d.business_id = tenant
            ORDER BY d.business_id, d.jid
        LOOP
            tenant_removed := 0;
            LOOP
                IF name_tenant THEN
                    EXECUTE 'SELECT whatsmeow_set_tenant($1)' USING tenant;
                END IF;
                EXECUTE pg_catalog.format(
                    'DELETE FROM %1$I WHERE business_id = $1 AND ctid = ANY(ARRAY('
                    'SELECT ctid FROM %1$I WHERE business_id = $1 AND our_jid = $2 AND %2$I < $3 LIMIT $4))',
                    unit.table_name, unit.time_column
                ) USING device.business_id, device.jid, unit.before, batch_size;
                GET DIAGNOSTICS removed = ROW_COUNT;
                COMMIT;
                tenant_removed := tenant_removed + removed;
                EXIT WHEN removed < batch_size;
            END LOOP;
            IF tenant_removed > 0 THEN
                RAISE NOTICE 'prune: %: tenant %, %: % removed',
                    unit.table_name, device.business_id, device.jid, tenant_removed;
            END IF;
            table_removed := table_removed + tenant_removed;
        END LOOP;
        RAISE NOTICE 'prune: %: % removed', unit.table_name, table_removed;
    END LOOP;
END
$$;

-- Pruning is the owner's job: it would delete other tenants' rows for anyone
-- who could see them.
REVOKE ALL ON FUNCTION whatsmeow_retention_horizons(INTERVAL) FROM public;
REVOKE ALL ON FUNCTION whatsmeow_prune_candidates(TEXT, INTERVAL) FROM public;
REVOKE ALL ON PROCEDURE whatsmeow_prune(TEXT, INTERVAL, INTEGER) FROM public;

-- The tenant event log (20-tenant-event-log.sql): devices added, removed and
-- re-keyed, by a trigger with the owner's rights, and the applier's tenant
-- operations with their counts. The tenant is in a column named tenant, so the
-- log is not a tenant table: the application role gets no privilege on it.
CREATE TABLE whatsmeow_tenant_events (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY,
    logged_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    tenant       TEXT        NOT NULL CHECK (whatsmeow_business_id_is_valid(tenant)),
    action       TEXT        NOT NULL CHECK (
        action IN (
            'device_added', 'device_removed', 'device_rekeyed', 'device_moved', 'import', 'export', 'purge',
            'rename', 'isolate', 'move'
        )
    ),
    details      JSONB       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    acting_role  TEXT        NOT NULL,
    session_role TEXT        NOT NULL,

    PRIMARY KEY (id)
);

COMMENT ON TABLE whatsmeow_tenant_events IS
'append-only log of device and tenant operations per tenant; the owner reads and prunes it, the application role '
'has no privilege on it; never holds key material';

-- Called by the applier's tenant commands (and anything else run as the owner)
-- to log an operation with its counts. No SECURITY DEFINER: only the owner may
-- write the log, so the application cannot forge an event.
CREATE FUNCTION whatsmeow_record_tenant_event(business_id TEXT, action TEXT, details JSONB)
RETURNS BIGINT
LANGUAGE plpgsql
AS $$
DECLARE
    event_id BIGINT;
BEGIN
    IF whatsmeow_business_id_is_valid(business_id) IS NOT TRUE THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = pg_catalog.format(
                'invalid business_id %s: must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -',
                coalesce(pg_catalog.to_json(pg_catalog.left(business_id, 80))::TEXT, 'NULL')
            );
    END IF;
    INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
    VALUES (business_id, action, coalesce(details, '{}'), CURRENT_USER, SESSION_USER)
    RETURNING id INTO event_id;
    RETURN event_id;
END
$$;

-- The device triggers' function. Every text it copies from a device row is cut
-- at 128 characters (JIDs are far shorter), and says so. SECURITY DEFINER, because the application role
-- that adds and removes devices may not write the log; its search_path is pinned
-- below. Inside it CURRENT_USER is the owner, so the role the session acts as
-- comes from SET ROLE, else the login.
CREATE FUNCTION whatsmeow_log_device_event()
RETURNS TRIGGER
LANGUAGE plpgsql
SECURITY DEFINER
AS $$
DECLARE
    acting TEXT := coalesce(nullif(pg_catalog.current_setting('role'), 'none'), SESSION_USER);
    row_values JSONB;
    changed TEXT[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_values := pg_catalog.jsonb_build_object('jid', OLD.jid, 'lid', OLD.lid);
    ELSE
        row_values := pg_catalog.jsonb_build_object('jid', NEW.jid, 'lid', NEW.lid);
    END IF;
    IF TG_OP = 'UPDATE' AND TG_NAME = 'whatsmeow_device_moved_event' THEN
        row_values := row_values || pg_catalog.jsonb_build_object(
            'from_jid', OLD.jid, 'from_business_id', OLD.business_id
        );
    END IF;
    SELECT pg_catalog.jsonb_object_agg(
        v.key,
        CASE
            WHEN pg_catalog.length(v.value) > 128
                THEN pg_catalog.left(v.value, 128) || pg_catalog.format('… (cut from %s characters)',
                                                                       pg_catalog.length(v.value))
            ELSE v.value
        END
    ) INTO row_values
    FROM pg_catalog.jsonb_each_text(row_values) AS v;

    IF TG_OP = 'INSERT' THEN
        INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
        VALUES (NEW.business_id, 'device_added', row_values, acting, SESSION_USER);
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
        VALUES (OLD.business_id, 'device_removed', row_values, acting, SESSION_USER);
        RETURN NULL;
    ELSIF TG_NAME = 'whatsmeow_device_moved_event' THEN
        INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
        VALUES (NEW.business_id, 'device_moved', row_values, acting, SESSION_USER);
        RETURN NULL;
    END IF;
    -- The names of the key columns that changed, never their values.
    SELECT pg_catalog.array_agg(n.key ORDER BY n.key) INTO changed
    FROM pg_catalog.jsonb_each(pg_catalog.to_jsonb(NEW)) AS n
    INNER JOIN pg_catalog.jsonb_each(pg_catalog.to_jsonb(OLD)) AS o ON n.key = o.key
    WHERE
        n.value IS DISTINCT FROM o.value
        AND n.key IN (
            'registration_id', 'noise_key', 'identity_key', 'signed_pre_key', 'signed_pre_key_id',
            'signed_pre_key_sig', 'adv_key', 'adv_details', 'adv_account_sig', 'adv_account_sig_key',
            'adv_device_sig'
        );
    INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
    VALUES (
        NEW.business_id, 'device_rekeyed',
        row_values || pg_catalog.jsonb_build_object('changed', pg_catalog.to_jsonb(changed)),
        acting, SESSION_USER
    );
    RETURN NULL;
END
$$;

-- The store's own schema joins pg_catalog on the function's path, as for
-- whatsmeow_set_tenant: nobody but the owner may create objects there once
-- `rls roles` has run.
DO $$
BEGIN
    EXECUTE pg_catalog.format(
        'ALTER FUNCTION %I.whatsmeow_log_device_event() SET search_path = pg_catalog, %I, pg_temp',
        pg_catalog.current_schema(),
        pg_catalog.current_schema()
    );
END
$$;

CREATE TRIGGER whatsmeow_device_added_event
AFTER INSERT ON whatsmeow_device
FOR EACH ROW EXECUTE FUNCTION whatsmeow_log_device_event();

CREATE TRIGGER whatsmeow_device_removed_event
AFTER DELETE ON whatsmeow_device
FOR EACH ROW EXECUTE FUNCTION whatsmeow_log_device_event();

-- UPDATE OF: an UPDATE (or ON CONFLICT DO UPDATE) whose SET list names no key
-- column does not even evaluate the WHEN clause.
CREATE TRIGGER whatsmeow_device_rekeyed_event
AFTER UPDATE OF
registration_id, noise_key, identity_key, signed_pre_key, signed_pre_key_id, signed_pre_key_sig,
adv_key, adv_details, adv_account_sig, adv_account_sig_key, adv_device_sig
ON whatsmeow_device
FOR EACH ROW
WHEN (
    (
        old.registration_id, old.noise_key, old.identity_key, old.signed_pre_key, old.signed_pre_key_id,
        old.signed_pre_key_sig, old.adv_key, old.adv_details, old.adv_account_sig, old.adv_account_sig_key,
        old.adv_device_sig
    ) IS DISTINCT FROM (
        new.registration_id, new.noise_key, new.identity_key, new.signed_pre_key, new.signed_pre_key_id,
        new.signed_pre_key_sig, new.adv_key, new.adv_details, new.adv_account_sig, new.adv_account_sig_key,
        new.adv_device_sig
    )
)
EXECUTE FUNCTION whatsmeow_log_device_event();

-- A device whose jid or business_id is updated in place takes its rows along
-- (ON UPDATE CASCADE): the event names the old and the new value.
CREATE TRIGGER whatsmeow_device_moved_event
AFTER UPDATE OF jid, business_id ON whatsmeow_device
FOR EACH ROW
WHEN ((old.jid, old.business_id) IS DISTINCT FROM (new.jid, new.business_id))
EXECUTE FUNCTION whatsmeow_log_device_event();

-- Writing the log is the owner's; a trigger function needs no EXECUTE to fire.
REVOKE ALL ON FUNCTION whatsmeow_record_tenant_event(TEXT, TEXT, JSONB) FROM public;
REVOKE ALL ON FUNCTION whatsmeow_log_device_event() FROM public;

-- Triggers, rules, policies and foreign keys on the store's tables that the
-- package did not create (21-foreign-table-objects-and-event-bounds.sql): the
-- owner's allow-list, the function that lists them and the one that refuses.
CREATE TABLE whatsmeow_allowed_table_objects (
    table_name  TEXT        NOT NULL,
    kind        TEXT        NOT NULL CHECK (kind IN ('trigger', 'rule', 'policy', 'foreign key')),
    object_name TEXT        NOT NULL,
    reason      TEXT        NOT NULL CHECK (reason <> ''),
    allowed_by  TEXT        NOT NULL DEFAULT current_user,
    allowed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),

    PRIMARY KEY (table_name, kind, object_name)
);

COMMENT ON TABLE whatsmeow_allowed_table_objects IS
'triggers, rules, policies and foreign keys on the store''s tables that the owner allows although the package did '
'not create them; the application role has no privilege on it';

-- Every store table, trigger function and allow-list entry is found through the
-- functions' pinned search_path (pg_catalog, then the store's schema, set below).
-- SECURITY DEFINER, so that whoever audits the store may see which objects the
-- owner allowed; it returns catalog facts only, and every comparison is of
-- identical built-in types, so no operator but pg_catalog's can match.
CREATE FUNCTION whatsmeow_foreign_table_objects()
RETURNS TABLE (
    table_name TEXT, kind TEXT, object_name TEXT, object_owner TEXT, detail TEXT, allowed BOOLEAN
)
LANGUAGE sql
STABLE
SECURITY DEFINER
AS $$
    WITH package_tables AS (
        SELECT c.oid, c.relname::TEXT AS relname, c.relowner
        FROM pg_catalog.pg_class AS c
        WHERE
            c.relnamespace = (
                SELECT a.relnamespace FROM pg_catalog.pg_class AS a
                WHERE a.oid = 'whatsmeow_allowed_table_objects'::REGCLASS::OID
            )
            AND c.relname IN (
                'whatsmeow_device', 'whatsmeow_identity_keys', 'whatsmeow_pre_keys', 'whatsmeow_sessions',
                'whatsmeow_sender_keys', 'whatsmeow_app_state_sync_keys', 'whatsmeow_app_state_version',
                'whatsmeow_app_state_mutation_macs', 'whatsmeow_contacts', 'whatsmeow_chat_settings',
                'whatsmeow_message_secrets', 'whatsmeow_privacy_tokens', 'whatsmeow_nct_salt', 'whatsmeow_lid_map',
                'whatsmeow_event_buffer', 'whatsmeow_retry_buffer',
                'whatsmeow_version', 'whatsmeow_tenant_events', 'whatsmeow_allowed_table_objects'
            )
    ),

    found AS (
        SELECT
            t.relname AS table_name,
            'trigger' AS kind,
            g.tgname::TEXT AS object_name,
            pg_catalog.pg_get_userbyid(p.proowner)::TEXT AS object_owner,
            'runs ' || p.oid::REGPROCEDURE::TEXT AS detail
        FROM pg_catalog.pg_trigger AS g
        INNER JOIN package_tables AS t ON g.tgrelid = t.oid
        INNER JOIN pg_catalog.pg_proc AS p ON g.tgfoid = p.oid
        WHERE
            NOT g.tgisinternal
            -- The package's own device triggers (v1002, v1003).
            AND NOT (
                t.relname = 'whatsmeow_device'
                AND g.tgname IN (
                    'whatsmeow_device_added_event', 'whatsmeow_device_removed_event',
                    'whatsmeow_device_rekeyed_event', 'whatsmeow_device_moved_event'
                )
                AND p.oid = 'whatsmeow_log_device_event()'::REGPROCEDURE::OID
            )
            -- Whoever installed an extension chose its triggers (Citus adds one).
            AND NOT EXISTS (
                SELECT FROM pg_catalog.pg_depend AS d
                WHERE d.classid = 'pg_catalog.pg_proc'::REGCLASS::OID AND d.objid = p.oid AND d.deptype = 'e'
            )
        UNION ALL
        SELECT
            t.relname,
            'rule',
            r.rulename::TEXT,
            pg_catalog.pg_get_userbyid(t.relowner)::TEXT,
            'rewrites statements on the table'
        FROM pg_catalog.pg_rewrite AS r
        INNER JOIN package_tables AS t ON r.ev_class = t.oid
        UNION ALL
        SELECT
            t.relname,
            'policy',
            p.polname::TEXT,
            pg_catalog.pg_get_userbyid(t.relowner)::TEXT,
            CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END
        FROM pg_catalog.pg_policy AS p
        INNER JOIN package_tables AS t ON p.polrelid = t.oid
        WHERE p.polname <> 'whatsmeow_tenant_isolation'
        UNION ALL
        SELECT
            t.relname,
            'foreign key',
            con.conname::TEXT,
            pg_catalog.pg_get_userbyid(c.relowner)::TEXT,
            'from ' || con.conrelid::REGCLASS::TEXT || ', which a delete cascades into'
        FROM pg_catalog.pg_constraint AS con
        INNER JOIN package_tables AS t ON con.confrelid = t.oid
        INNER JOIN pg_catalog.pg_class AS c ON con.conrelid = c.oid
        WHERE con.contype = 'f' AND con.conrelid NOT IN (SELECT pt.oid FROM package_tables AS pt)
    )

    SELECT
        f.table_name,
        f.kind,
        f.object_name,
        f.object_owner,
        f.detail,
        EXISTS (
            SELECT FROM whatsmeow_allowed_table_objects AS a
            WHERE a.table_name = f.table_name AND a.kind = f.kind AND a.object_name = f.object_name
        ) AS allowed
    FROM found AS f
    ORDER BY f.table_name, f.kind, f.object_name
$$;

CREATE FUNCTION whatsmeow_refuse_foreign_table_objects()
RETURNS VOID
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    found TEXT[];
BEGIN
    SELECT pg_catalog.array_agg(
        pg_catalog.format('%s %I on %s (owned by %I): %s', f.kind, f.object_name, f.table_name, f.object_owner,
                          f.detail)
        ORDER BY f.table_name, f.kind, f.object_name
    ) INTO found
    FROM whatsmeow_foreign_table_objects() AS f
    WHERE NOT f.allowed;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = pg_catalog.format(
                'refusing to run: %s object(s) on the store''s tables were not created by the package '
                'and would run with the rights of whoever changes those tables',
                pg_catalog.cardinality(found)
            ),
            DETAIL = pg_catalog.array_to_string(found, E'\n'),
            HINT = 'Drop each one (DROP TRIGGER name ON table, DROP RULE, DROP POLICY, or ALTER TABLE ... DROP '
            'CONSTRAINT), or, as the store''s owner, allow it by name: INSERT INTO whatsmeow_allowed_table_objects '
            '(table_name, kind, object_name, reason) VALUES (...).';
    END IF;
END
$$;

-- As for whatsmeow_set_tenant: pg_catalog, then the store's own schema, where
-- nobody but the owner may create objects once `rls roles` has run.
DO $$
BEGIN
    EXECUTE pg_catalog.format(
        'ALTER FUNCTION %I.whatsmeow_foreign_table_objects() SET search_path = pg_catalog, %I, pg_temp',
        pg_catalog.current_schema(),
        pg_catalog.current_schema()
    );
    EXECUTE pg_catalog.format(
        'ALTER FUNCTION %I.whatsmeow_refuse_foreign_table_objects() SET search_path = pg_catalog, %I, pg_temp',
        pg_catalog.current_schema(),
        pg_catalog.current_schema()
    );
END
$$;

-- Events older than the given age, at most batch_size of them, oldest first;
-- returns how many went. The caller commits between batches.
CREATE FUNCTION whatsmeow_prune_tenant_events(older_than INTERVAL, batch_size INTEGER)
RETURNS BIGINT
LANGUAGE plpgsql
AS $$
DECLARE
    removed BIGINT;
BEGIN
    IF older_than IS NULL OR older_than <= INTERVAL '0' OR batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'whatsmeow_prune_tenant_events needs a positive age and a batch size of at least 1';
    END IF;
    DELETE FROM whatsmeow_tenant_events
    WHERE id IN (
        SELECT e.id FROM whatsmeow_tenant_events AS e
        WHERE e.logged_at < pg_catalog.now() - older_than
        ORDER BY e.id
        LIMIT batch_size
    );
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;

DO $$
BEGIN
    EXECUTE pg_catalog.format(
        'ALTER FUNCTION %I.whatsmeow_prune_tenant_events(INTERVAL, INTEGER) SET search_path = pg_catalog, %I, pg_temp',
        pg_catalog.current_schema(),
        pg_catalog.current_schema()
    );
END
$$;

REVOKE ALL ON FUNCTION whatsmeow_prune_tenant_events(INTERVAL, INTEGER) FROM public;
