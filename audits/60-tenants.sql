-- Informational: the tenants, their devices, their rows and bytes in every tenant
-- table, and how much of their mutation-MAC history is superseded.
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
RETURNS TABLE (tenant TEXT, table_name TEXT, row_count BIGINT, row_bytes BIGINT)
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
            -- The rows' own bytes, before indexes, page overhead and free space.
            'SELECT t.business_id::TEXT, %L::TEXT, count(*), sum(pg_column_size(t.*))::BIGINT FROM %s AS t '
            'GROUP BY t.business_id',
            tenant_table.relname, tenant_table.relid::REGCLASS
        );
    END LOOP;
END
$$;

CREATE OR REPLACE VIEW whatsmeow_audit.tenant_rows AS
SELECT
    r.tenant AS business_id,
    r.table_name,
    r.row_count,
    r.row_bytes
FROM whatsmeow_audit.count_tenant_rows() AS r
ORDER BY r.tenant, r.table_name;

-- Largest tenants first. A tenant with rows but no device (devices = 0) can only
-- have them in tables without a device foreign key, such as whatsmeow_lid_map.
CREATE OR REPLACE VIEW whatsmeow_audit.tenants AS
SELECT
    r.tenant AS business_id,
    coalesce(sum(r.row_count) FILTER (WHERE r.table_name = 'whatsmeow_device'), 0)::BIGINT AS devices,
    sum(r.row_count)::BIGINT AS total_rows,
    jsonb_object_agg(r.table_name, r.row_count) AS rows_per_table,
    sum(r.row_bytes)::BIGINT AS total_bytes,
    jsonb_object_agg(r.table_name, r.row_bytes) AS bytes_per_table
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

-- Growth before it hurts: every version of an index MAC but the newest is never
-- read again (whatsmeow_prune removes them). Upstream reports accounts where
-- they are 97 % of the table.
CREATE OR REPLACE FUNCTION whatsmeow_audit.count_mutation_mac_history()
RETURNS TABLE (tenant TEXT, mac_rows BIGINT, superseded_rows BIGINT)
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    macs REGCLASS;
BEGIN
    SELECT t.relid INTO macs
    FROM whatsmeow_audit.whatsmeow_tables AS t
    WHERE t.relname = 'whatsmeow_app_state_mutation_macs' AND t.business_id_attnum IS NOT NULL;
    IF macs IS NOT NULL THEN
        RETURN QUERY EXECUTE format(
            'SELECT m.business_id::TEXT, count(*), count(*) - count(DISTINCT (m.jid, m.name, m.index_mac)) '
            'FROM %s AS m GROUP BY m.business_id',
            macs
        );
    END IF;
END
$$;

CREATE OR REPLACE VIEW whatsmeow_audit.mutation_mac_history AS
SELECT
    h.tenant AS business_id,
    h.mac_rows,
    h.superseded_rows,
    round(100.0 * h.superseded_rows / h.mac_rows, 1) AS superseded_percent
FROM whatsmeow_audit.count_mutation_mac_history() AS h
ORDER BY h.superseded_rows DESC, h.tenant ASC;

CALL whatsmeow_audit.restrict_access();

COMMIT;
