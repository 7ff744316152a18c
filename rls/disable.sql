-- Turns tenant row-level security off again: every whatsmeow table with a
-- business_id column loses the whatsmeow_tenant_isolation policy and is neither
-- enabled nor forced, as before enable.sql.
--   psql -v ON_ERROR_STOP=1 -f rls/disable.sql
-- Re-runnable. whatsmeow_set_tenant stays, so an application that calls it keeps
-- working; without the policies every query must filter on business_id itself.
BEGIN;

SET LOCAL lock_timeout = '10s';

DO $$
DECLARE
    store NAME := pg_catalog.current_schema();
    caller_path TEXT := pg_catalog.current_setting('search_path');
    tenant_table REGCLASS;
BEGIN
    -- Built-ins from pg_catalog alone, as in enable.sql.
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', TRUE);
    FOR tenant_table IN
        SELECT c.oid::REGCLASS
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
            )
        ORDER BY c.relname
    LOOP
        IF EXISTS (SELECT FROM pg_policy AS p WHERE p.polrelid = tenant_table
                   AND p.polname = 'whatsmeow_tenant_isolation') THEN
            EXECUTE format('DROP POLICY whatsmeow_tenant_isolation ON %s', tenant_table);
        END IF;
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', tenant_table);
    END LOOP;
    PERFORM set_config('search_path', caller_path, TRUE);
END
$$;

COMMIT;
