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
            AND starts_with(c.relname::TEXT, 'whatsmeow_')
            AND EXISTS (
                SELECT FROM pg_attribute AS a
                WHERE a.attrelid = c.oid AND a.attname = 'business_id' AND NOT a.attisdropped
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
