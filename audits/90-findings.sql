-- Every invariant of the audit in one place: whatsmeow_audit.findings has one
-- row per violation, named by its check; no rows means the store is sound.
--   psql -v ON_ERROR_STOP=1 -f audits/90-findings.sql
--   psql -c 'TABLE whatsmeow_audit.findings'
-- `whatsmeow-tenancy audit` reads these two views and exits 1 when findings has rows.
BEGIN;

-- Every name below resolves in pg_catalog or is qualified: nothing another role
-- created in the caller's schemas can stand in for a built-in. The views read
-- the caller's current_schema() when queried, not this setting.
SET LOCAL search_path = pg_catalog, pg_temp;

-- The invariants, in report order, with what each one promises.
CREATE OR REPLACE VIEW whatsmeow_audit.checks AS
SELECT
    c.position,
    c.name AS "check",
    c.description
FROM (
    VALUES
    (1, 'tenant_keys', 'business_id TEXT NOT NULL in every table; every key and foreign key leads with it'),
    (2, 'device_cascade', 'every tenant table but the LID map hangs from whatsmeow_device by cascading keys'),
    (3, 'row_security', 'row-level security off everywhere, or on, forced alike and tenant-keyed everywhere'),
    (4, 'redundant_indexes', 'no index repeats another or a leading prefix of another'),
    (5, 'invalid_indexes', 'no index is left invalid by a failed concurrent build'),
    (6, 'unindexed_foreign_keys', 'every foreign key has an index leading with its columns'),
    (7, 'not_valid_constraints', 'every constraint has been validated'),
    (8, 'rls_bypass', 'neither the app role nor its logins bypass RLS; no login owns or inherits unforced tables'),
    (9, 'truncate_grants', 'only the owner may TRUNCATE a tenant table'),
    (10, 'definer_functions', 'every SECURITY DEFINER function pins its search_path'),
    (11, 'public_views', 'no view that PUBLIC may read reads a tenant table'),
    (12, 'audit_access', 'neither PUBLIC nor the application role can read the audit views'),
    (13, 'create_privileges', 'with RLS on, only the owners may CREATE in the store''s schema or TEMPORARY'),
    (14, 'foreign_objects', 'no foreign whatsmeow_ function or look-alike of a built-in in the store''s schema'),
    (15, 'event_log_grants', 'the application role cannot read the tenant event log, and only the owner change it'),
    (16, 'foreign_tables', 'every whatsmeow_ table in the store''s schema is one of the package''s'),
    (17, 'table_objects', 'no foreign trigger, rule, policy or foreign key on a store table, unless allowed by name')
) AS c (position, name, description);

CREATE OR REPLACE VIEW whatsmeow_audit.findings AS
SELECT
    'tenant_keys'::TEXT AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.tenant_keys AS f
UNION ALL
SELECT
    'device_cascade' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.device_cascade AS f
UNION ALL
SELECT
    'row_security' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.row_security AS f
UNION ALL
SELECT
    'redundant_indexes' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.redundant_indexes AS f
UNION ALL
SELECT
    'invalid_indexes' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.invalid_indexes AS f
UNION ALL
SELECT
    'unindexed_foreign_keys' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.unindexed_foreign_keys AS f
UNION ALL
SELECT
    'not_valid_constraints' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.not_valid_constraints AS f
UNION ALL
SELECT
    'rls_bypass' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.rls_bypass AS f
UNION ALL
SELECT
    'truncate_grants' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.truncate_grants AS f
UNION ALL
SELECT
    'definer_functions' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.definer_functions AS f
UNION ALL
SELECT
    'public_views' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.public_views AS f
UNION ALL
SELECT
    'audit_access' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.audit_access AS f
UNION ALL
SELECT
    'create_privileges' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.create_privileges AS f
UNION ALL
SELECT
    'foreign_objects' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.foreign_objects AS f
UNION ALL
SELECT
    'event_log_grants' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.event_log_grants AS f
UNION ALL
SELECT
    'foreign_tables' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.foreign_tables AS f
UNION ALL
SELECT
    'table_objects' AS "check",
    f.object,
    f.problem
FROM whatsmeow_audit.table_objects AS f
WHERE NOT f.allowed;

CALL whatsmeow_audit.restrict_access();

COMMIT;
