-- v1000 -> v1001 (compatible with v1000+): Retention: message secrets record when they were stored, whatsmeow_prune
-- Three tables grow without bound: superseded app-state mutation MACs (the
-- store reads only the newest version of an index MAC and deletes all of them
-- together), message secrets (no time column at all), and the event and retry
-- buffers of devices upstream no longer prunes. whatsmeow_prune removes what
-- the store can no longer read, in short transactions; message secrets only
-- when asked, older than a horizon the caller names.
--
-- Compatible with v1000 code: whatsmeow's INSERT names its columns, so the new
-- column fills from its default, and no query selects it. Adding it rewrites
-- nothing: PostgreSQL stores the default once (now() is evaluated at this
-- step), so every secret that exists already counts as stored at the upgrade.
SET LOCAL lock_timeout = '10s';
SET LOCAL statement_timeout = '60s';
-- On a store distributed with Citus, the routines below may only follow the
-- ALTER TABLE in this transaction if it reached the shards one connection at a
-- time. Elsewhere the setting is an inert placeholder.
SELECT set_config('citus.multi_shard_modify_mode', 'sequential', TRUE);

ALTER TABLE whatsmeow_message_secrets ADD COLUMN stored_at TIMESTAMPTZ NOT NULL DEFAULT now();

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
