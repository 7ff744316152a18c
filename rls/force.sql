-- Row-level security that binds the tables' owner too, for deployments whose
-- application connects as the owner.
--   psql -v ON_ERROR_STOP=1 -f rls/enable.sql -f rls/force.sql
-- Re-runnable. Superusers and BYPASSRLS roles still see every row, and the owner
-- can still TRUNCATE, ALTER or disable: a separate application role (roles.sql) is
-- the stronger setup. Once any table is forced, enable.sql forces the others too,
-- so re-running enable.sql after an upgrade keeps this in place.
BEGIN;

SET LOCAL lock_timeout = '10s';

DO $$
DECLARE
    store NAME := pg_catalog.current_schema();
    caller_path TEXT := pg_catalog.current_setting('search_path');
    tenant_tables REGCLASS[];
    tenant_table REGCLASS;
    unprotected TEXT;
BEGIN
    -- Built-ins from pg_catalog alone, as in enable.sql.
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', TRUE);
    SELECT
        array_agg(c.oid::REGCLASS ORDER BY c.relname),
        -- FORCE without ENABLE and the policy changes nothing; refuse to look done.
        string_agg(c.oid::REGCLASS::TEXT, ', ' ORDER BY c.relname) FILTER (
            WHERE NOT c.relrowsecurity OR NOT EXISTS (
                SELECT FROM pg_policy AS p
                WHERE p.polrelid = c.oid AND p.polname = 'whatsmeow_tenant_isolation'
            )
        )
    INTO tenant_tables, unprotected
    FROM pg_class AS c
    WHERE
        c.relnamespace = (SELECT n.oid FROM pg_namespace AS n WHERE n.nspname = store)
        AND c.relkind IN ('r', 'p')
        AND NOT c.relispartition
        -- The package's tenant tables by name: a table someone else put here is
        -- never covered or granted. tests/test_tenant_tables.py keeps every copy equal.
        AND c.relname IN (
            'whatsmeow_device', 'whatsmeow_identity_keys', 'whatsmeow_pre_keys', 'whatsmeow_sessions',
            'whatsmeow_sender_keys', 'whatsmeow_app_state_sync_keys', 'whatsmeow_app_state_version',
            'whatsmeow_app_state_mutation_macs', 'whatsmeow_contacts', 'whatsmeow_chat_settings',
            'whatsmeow_message_secrets', 'whatsmeow_privacy_tokens', 'whatsmeow_nct_salt', 'whatsmeow_lid_map',
            'whatsmeow_event_buffer', 'whatsmeow_retry_buffer'
        );
    IF tenant_tables IS NULL OR unprotected IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('row-level security is not enabled on %s',
                             coalesce(unprotected, 'any whatsmeow table in this schema')),
            HINT = 'Run rls/enable.sql first.';
    END IF;

    FOREACH tenant_table IN ARRAY tenant_tables LOOP
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tenant_table);
    END LOOP;
    PERFORM set_config('search_path', caller_path, TRUE);
END
$$;

COMMIT;
