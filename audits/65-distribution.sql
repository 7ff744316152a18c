-- Informational: how the whatsmeow tables are distributed on a Citus coordinator.
--   psql -v ON_ERROR_STOP=1 -f audits/65-distribution.sql
-- One row per whatsmeow table: distributed, reference or local, its distribution
-- column, colocation group, shards and the nodes that hold them. Without Citus
-- in this database the view has no rows. On Citus the coordinator's own
-- statistics (table_maintenance, unused_indexes) describe tables that hold no
-- rows: the shards on the workers do. Re-run this file after CREATE EXTENSION
-- citus; the view then reads Citus's catalog, so DROP EXTENSION citus needs
-- `DROP VIEW whatsmeow_audit.distribution` first.
BEGIN;

-- Every name below resolves in pg_catalog or is qualified: nothing another role
-- created in the caller's schemas can stand in for a built-in. The views read
-- the caller's current_schema() when queried, not this setting.
SET LOCAL search_path = pg_catalog, pg_temp;

DO $$
DECLARE
    extension_schema NAME;
BEGIN
    SELECT n.nspname INTO extension_schema
    FROM pg_extension AS e
    INNER JOIN pg_namespace AS n ON e.extnamespace = n.oid
    WHERE e.extname = 'citus';

    DROP VIEW IF EXISTS whatsmeow_audit.distribution;

    IF extension_schema IS NULL THEN
        CREATE VIEW whatsmeow_audit.distribution AS
        SELECT
            NULL::TEXT AS table_name,
            NULL::TEXT AS table_type,
            NULL::TEXT AS distribution_column,
            NULL::INTEGER AS colocation_id,
            NULL::BIGINT AS shards,
            NULL::BIGINT AS nodes
        WHERE FALSE;
        RETURN;
    END IF;

    -- Citus's catalog tables, not citus_tables: that view asks every worker for
    -- the tables' sizes.
    EXECUTE format(
        $view$
        CREATE VIEW whatsmeow_audit.distribution AS
        SELECT
            t.table_name,
            CASE
                WHEN p.partmethod IS NULL THEN 'local'
                WHEN p.partmethod = 'h' THEN 'distributed'
                WHEN p.partmethod = 'n' AND p.repmodel = 't' THEN 'reference'
                WHEN p.partmethod = 'n' THEN 'citus local'
                ELSE 'distributed (' || p.partmethod::TEXT || ')'
            END AS table_type,
            CASE WHEN p.partmethod = 'h' THEN %1$I.column_to_column_name(p.logicalrelid, p.partkey) END
                AS distribution_column,
            p.colocationid AS colocation_id,
            (SELECT count(*) FROM %1$I.pg_dist_shard AS s WHERE s.logicalrelid = t.relid) AS shards,
            (
                SELECT count(DISTINCT pl.groupid)
                FROM %1$I.pg_dist_shard AS s
                INNER JOIN %1$I.pg_dist_placement AS pl ON s.shardid = pl.shardid
                WHERE s.logicalrelid = t.relid
            ) AS nodes
        FROM whatsmeow_audit.whatsmeow_tables AS t
        LEFT JOIN %1$I.pg_dist_partition AS p ON t.relid = p.logicalrelid
        ORDER BY p.partmethod IS NULL DESC, t.table_name ASC
        $view$,
        extension_schema
    );
END
$$;

CALL whatsmeow_audit.restrict_access();

COMMIT;
