-- Tenant keys: every whatsmeow table is keyed by business_id, and no key or
-- foreign key reaches across tenants.
--   psql -v ON_ERROR_STOP=1 -f audits/10-tenant-keys.sql
-- One row per violation (object, problem); no rows means the invariant holds.
BEGIN;

-- Every name below resolves in pg_catalog or is qualified: nothing another role
-- created in the caller's schemas can stand in for a built-in. The views read
-- the caller's current_schema() when queried, not this setting.
SET LOCAL search_path = pg_catalog, pg_temp;

CREATE OR REPLACE VIEW whatsmeow_audit.tenant_keys AS
SELECT
    t.table_name AS object,
    'has no business_id column: its rows belong to no tenant'::TEXT AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
WHERE t.is_tenant_table AND t.business_id_attnum IS NULL

UNION ALL

SELECT
    t.table_name AS object,
    'business_id allows NULL: a row without a tenant escapes every tenant filter' AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
WHERE NOT t.business_id_not_null

UNION ALL

-- Citus co-locates tables only when their distribution columns have the same type.
SELECT
    t.table_name AS object,
    format('business_id is %s, not text like every other tenant table', t.business_id_type) AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
WHERE t.business_id_type <> 'text'

UNION ALL

SELECT
    t.table_name AS object,
    'has no primary key' AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
WHERE
    t.business_id_attnum IS NOT NULL
    AND NOT EXISTS (
        SELECT FROM pg_constraint AS con
        WHERE con.conrelid = t.relid AND con.contype = 'p'
    )

UNION ALL

-- A key without business_id in front is unique across tenants: one tenant's row
-- blocks another's, and the conflict tells it the other tenant's value exists.
SELECT
    format('%I on %s', con.conname, t.table_name) AS object,
    format(
        '%s (%s) does not lead with business_id',
        CASE con.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint' ELSE 'exclusion constraint' END,
        whatsmeow_audit.column_names(t.relid, con.conkey)
    ) AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
INNER JOIN pg_constraint AS con ON t.relid = con.conrelid
WHERE
    t.business_id_attnum IS NOT NULL
    AND con.contype IN ('p', 'u', 'x')
    AND con.conkey[1] <> t.business_id_attnum

UNION ALL

SELECT
    format('%s on %s', i.indexrelid::REGCLASS, t.table_name) AS object,
    format(
        'unique index (%s) does not lead with business_id',
        whatsmeow_audit.column_names(t.relid, string_to_array(i.indkey::TEXT, ' ')::INT2[])
    ) AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
INNER JOIN pg_index AS i ON t.relid = i.indrelid
WHERE
    t.business_id_attnum IS NOT NULL
    AND i.indisunique
    AND i.indkey[0] <> t.business_id_attnum
    AND NOT EXISTS (
        SELECT FROM pg_constraint AS con
        WHERE con.conindid = i.indexrelid
    )

UNION ALL

-- A foreign key whose first pair is not business_id -> business_id can point
-- a row at another tenant's row. Checked from both ends, so a foreign key of
-- any other table into a tenant table counts too.
SELECT
    format('%I on %s', con.conname, con.conrelid::REGCLASS) AS object,
    format(
        'foreign key (%s) -> %s (%s): its first column pair is not business_id -> business_id, '
        'so it can reach another tenant''s rows',
        whatsmeow_audit.column_names(con.conrelid, con.conkey),
        con.confrelid::REGCLASS,
        whatsmeow_audit.column_names(con.confrelid, con.confkey)
    ) AS problem
FROM pg_constraint AS con
INNER JOIN pg_attribute AS own ON con.conrelid = own.attrelid AND con.conkey[1] = own.attnum
INNER JOIN pg_attribute AS referenced ON con.confrelid = referenced.attrelid AND con.confkey[1] = referenced.attnum
WHERE
    con.contype = 'f'
    AND (own.attname <> 'business_id' OR referenced.attname <> 'business_id')
    AND EXISTS (
        SELECT FROM whatsmeow_audit.whatsmeow_tables AS t
        WHERE t.business_id_attnum IS NOT NULL AND t.relid IN (con.conrelid, con.confrelid)
    );

-- Deleting a device must remove every row of that device and nothing else:
-- every tenant table hangs from whatsmeow_device through foreign keys that
-- cascade on delete. whatsmeow_lid_map is the exception by design (a tenant-wide
-- map). ON UPDATE is not required: Citus refuses ON UPDATE CASCADE on keys that
-- contain the distribution column, and `verify` reports any other change.
CREATE OR REPLACE VIEW whatsmeow_audit.device_cascade AS
WITH RECURSIVE reached (relid) AS (
    SELECT t.relid
    FROM whatsmeow_audit.whatsmeow_tables AS t
    WHERE t.relname = 'whatsmeow_device'
    UNION
    SELECT con.conrelid
    FROM pg_constraint AS con
    INNER JOIN reached AS r ON con.confrelid = r.relid
    WHERE con.contype = 'f' AND con.confdeltype = 'c'
)

SELECT
    t.table_name AS object,
    'no chain of ON DELETE CASCADE foreign keys leads to whatsmeow_device: '
    'its rows can name a device that does not exist, and outlive the device they belong to'::TEXT AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
WHERE
    t.business_id_attnum IS NOT NULL
    AND t.relname NOT IN ('whatsmeow_device', 'whatsmeow_lid_map')
    AND t.relid NOT IN (SELECT r.relid FROM reached AS r);

CALL whatsmeow_audit.restrict_access();

COMMIT;
