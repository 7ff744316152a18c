-- Informational: the tenants, their devices and their rows in every tenant table.
--   psql -v ON_ERROR_STOP=1 -f audits/60-tenants.sql
-- Counting reads every row of every tenant table: run it off-peak on a large
-- store. The counts are what the reader may see: under forced row-level security
-- the owner sees no rows without a tenant set, so read these views as a
-- superuser or a BYPASSRLS role there.
BEGIN;

-- Every name below resolves in pg_catalog or is qualified: nothing another role
-- created in the caller's schemas can stand in for a built-in. The views read
-- the caller's current_schema() when queried, not this setting.
SET LOCAL search_path = pg_catalog, pg_temp;

-- Dynamic SQL needs a function: a view cannot name tables it finds at run time.
-- Not SECURITY DEFINER: it counts with the reader's own rights.
CREATE OR REPLACE FUNCTION whatsmeow_audit.count_tenant_rows()
RETURNS TABLE (tenant TEXT, table_name TEXT, row_count BIGINT)
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    tenant_table RECORD;
BEGIN
    FOR tenant_table IN
        SELECT t.relid, t.relname
        FROM whatsmeow_audit.whatsmeow_tables AS t
        WHERE t.business_id_attnum IS NOT NULL
        ORDER BY t.relname
    LOOP
        RETURN QUERY EXECUTE format(
            'SELECT business_id::TEXT, %L::TEXT, count(*) FROM %s GROUP BY business_id',
            tenant_table.relname, tenant_table.relid::REGCLASS
        );
    END LOOP;
END
$$;

CREATE OR REPLACE VIEW whatsmeow_audit.tenant_rows AS
SELECT
    r.tenant AS business_id,
    r.table_name,
    r.row_count
FROM whatsmeow_audit.count_tenant_rows() AS r
ORDER BY r.tenant, r.table_name;

-- Largest tenants first. A tenant with rows but no device (devices = 0) can only
-- have them in tables without a device foreign key, such as whatsmeow_lid_map.
CREATE OR REPLACE VIEW whatsmeow_audit.tenants AS
SELECT
    r.tenant AS business_id,
    coalesce(sum(r.row_count) FILTER (WHERE r.table_name = 'whatsmeow_device'), 0)::BIGINT AS devices,
    sum(r.row_count)::BIGINT AS total_rows,
    jsonb_object_agg(r.table_name, r.row_count) AS rows_per_table
FROM whatsmeow_audit.count_tenant_rows() AS r
GROUP BY r.tenant
ORDER BY total_rows DESC, r.tenant ASC;

CREATE OR REPLACE VIEW whatsmeow_audit.tenants_without_device AS
SELECT
    t.business_id,
    t.total_rows,
    t.rows_per_table
FROM whatsmeow_audit.tenants AS t
WHERE t.devices = 0;

CALL whatsmeow_audit.restrict_access();

COMMIT;
