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
    tenant_table REGCLASS;
BEGIN
    FOR tenant_table IN
        SELECT c.oid::REGCLASS
        FROM pg_class AS c
        WHERE
            c.relnamespace = quote_ident(current_schema())::REGNAMESPACE
            AND c.relkind IN ('r', 'p')
            AND c.relname LIKE 'whatsmeow\_%'
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
END
$$;

COMMIT;
