-- Informational: the slowest statements that touch whatsmeow tables, from
-- pg_stat_statements.
--   psql -v ON_ERROR_STOP=1 -f audits/80-performance.sql
-- The view reads pg_stat_statements only when the extension is installed in
-- this database; otherwise it is one row whose note says so. Re-run this file
-- after installing or removing the extension. The view depends on the
-- extension's own view, so DROP EXTENSION pg_stat_statements and ALTER
-- EXTENSION pg_stat_statements UPDATE need `DROP VIEW
-- whatsmeow_audit.slow_statements` first; the next audit creates it again.
BEGIN;

-- Every name below resolves in pg_catalog or is qualified: nothing another role
-- created in the caller's schemas can stand in for a built-in. The views read
-- the caller's current_schema() when queried, not this setting.
SET LOCAL search_path = pg_catalog, pg_temp;

DO $$
DECLARE
    extension_schema NAME;
    -- pg_stat_statements 1.8 (PostgreSQL 13) renamed total_time to total_exec_time.
    time_column NAME;
BEGIN
    SELECT n.nspname INTO extension_schema
    FROM pg_extension AS e
    INNER JOIN pg_namespace AS n ON e.extnamespace = n.oid
    WHERE e.extname = 'pg_stat_statements';

    DROP VIEW IF EXISTS whatsmeow_audit.slow_statements;

    IF extension_schema IS NULL THEN
        CREATE VIEW whatsmeow_audit.slow_statements AS
        SELECT
            NULL::TEXT AS query,
            NULL::BIGINT AS calls,
            NULL::DOUBLE PRECISION AS total_ms,
            NULL::DOUBLE PRECISION AS mean_ms,
            NULL::BIGINT AS rows,
            'pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements, '
            'with pg_stat_statements in shared_preload_libraries), so no statement timings are available'::TEXT
                AS note;
        RETURN;
    END IF;

    SELECT a.attname INTO time_column
    FROM pg_attribute AS a
    WHERE
        a.attrelid = format('%I.pg_stat_statements', extension_schema)::REGCLASS
        AND a.attname IN ('total_exec_time', 'total_time')
        AND NOT a.attisdropped
    ORDER BY a.attname = 'total_exec_time' DESC
    LIMIT 1;

    -- The audit's own queries name whatsmeow_audit and are left out.
    EXECUTE format(
        $view$
        CREATE VIEW whatsmeow_audit.slow_statements AS
        SELECT
            s.query,
            s.calls,
            s.%1$I AS total_ms,
            s.%1$I / nullif(s.calls, 0) AS mean_ms,
            s.rows,
            NULL::TEXT AS note
        FROM %2$I.pg_stat_statements AS s
        WHERE
            s.dbid = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
            AND s.query ~ 'whatsmeow_'
            AND s.query !~ 'whatsmeow_audit\.'
        ORDER BY s.%1$I DESC
        LIMIT 20
        $view$,
        time_column, extension_schema
    );
END
$$;

CALL whatsmeow_audit.restrict_access();

COMMIT;
