-- Informational: dead tuples and the last vacuum and analyze of each whatsmeow table.
--   psql -v ON_ERROR_STOP=1 -f audits/70-maintenance.sql
-- The session and pre-key tables churn: many dead tuples or a long time since
-- the last vacuum there means autovacuum cannot keep up, and stale statistics
-- can turn the business_id lookups into scans.
BEGIN;

-- Every name below resolves in pg_catalog or is qualified: nothing another role
-- created in the caller's schemas can stand in for a built-in. The views read
-- the caller's current_schema() when queried, not this setting.
SET LOCAL search_path = pg_catalog, pg_temp;

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

-- Informational: connections to this database per role and application, the
-- first thing to look at when a pool exhausts max_connections.
CREATE OR REPLACE VIEW whatsmeow_audit.connections AS
SELECT
    a.usename AS role_name,
    a.application_name,
    r.rolconnlimit AS connection_limit,
    count(*) AS connections,
    count(*) FILTER (WHERE a.state = 'active') AS active,
    count(*) FILTER (WHERE a.state IN ('idle in transaction', 'idle in transaction (aborted)')) AS idle_in_transaction
FROM pg_stat_activity AS a
LEFT JOIN pg_roles AS r ON a.usesysid = r.oid
WHERE a.datname = current_database() AND a.backend_type = 'client backend'
GROUP BY a.usename, a.application_name, r.rolconnlimit
ORDER BY connections DESC, role_name ASC, a.application_name ASC;

CALL whatsmeow_audit.restrict_access();

COMMIT;
