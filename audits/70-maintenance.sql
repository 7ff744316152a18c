-- Informational: dead tuples and the last vacuum and analyze of each whatsmeow table.
--   psql -v ON_ERROR_STOP=1 -f audits/70-maintenance.sql
-- The session and pre-key tables churn: many dead tuples or a long time since
-- the last vacuum there means autovacuum cannot keep up, and stale statistics
-- can turn the business_id lookups into scans.
BEGIN;

CREATE OR REPLACE VIEW whatsmeow_audit.table_maintenance AS
SELECT
    t.table_name,
    s.n_live_tup AS live_tuples,
    s.n_dead_tup AS dead_tuples,
    round(100.0 * s.n_dead_tup / nullif(s.n_live_tup + s.n_dead_tup, 0), 1) AS dead_percent,
    greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
    now() - greatest(s.last_vacuum, s.last_autovacuum) AS since_vacuum,
    greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
    now() - greatest(s.last_analyze, s.last_autoanalyze) AS since_analyze
FROM whatsmeow_audit.whatsmeow_tables AS t
INNER JOIN pg_stat_user_tables AS s ON t.relid = s.relid
ORDER BY s.n_dead_tup DESC, t.table_name ASC;

CALL whatsmeow_audit.restrict_access();

COMMIT;
