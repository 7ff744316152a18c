-- Row-level security of every whatsmeow table that has a business_id column:
-- enabled, forced, and whether the tenant policy of enable.sql is in place.
--   psql -f rls/status.sql
-- Read-only; `python -m applier rls status` runs the same query.
SELECT
    c.oid::REGCLASS::TEXT AS table_name,
    c.relrowsecurity AS enabled,
    c.relforcerowsecurity AS forced,
    p.oid IS NOT NULL AS policy
FROM pg_class AS c
-- Policy names are unique per table: at most one row joins.
LEFT JOIN pg_policy AS p ON c.oid = p.polrelid AND p.polname = 'whatsmeow_tenant_isolation'
WHERE
    c.relnamespace = quote_ident(current_schema())::REGNAMESPACE
    AND c.relkind IN ('r', 'p')
    AND c.relname LIKE 'whatsmeow\_%'
    AND EXISTS (
        SELECT FROM pg_attribute AS a
        WHERE a.attrelid = c.oid AND a.attname = 'business_id' AND NOT a.attisdropped
    )
ORDER BY c.relname;
