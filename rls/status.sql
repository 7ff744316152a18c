-- Row-level security of every whatsmeow table that has a business_id column:
-- enabled, forced, and whether the tenant policy of enable.sql is in place.
--   psql -f rls/status.sql
-- Read-only; `whatsmeow-tenancy rls status` runs the same query. Catalogs and
-- built-ins are qualified, so nothing another role created in the caller's
-- schemas can stand in for them.
SELECT
    c.oid::REGCLASS::TEXT AS table_name,
    c.relrowsecurity AS enabled,
    c.relforcerowsecurity AS forced,
    p.oid IS NOT NULL AS policy
FROM pg_catalog.pg_class AS c
-- Policy names are unique per table: at most one row joins.
LEFT JOIN pg_catalog.pg_policy AS p ON c.oid = p.polrelid AND p.polname = 'whatsmeow_tenant_isolation'
WHERE
    c.relnamespace = (
        SELECT n.oid FROM pg_catalog.pg_namespace AS n
        WHERE n.nspname = pg_catalog.current_schema()
    )
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
ORDER BY c.relname;
