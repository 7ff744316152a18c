-- Constraints of the whatsmeow tables left NOT VALID.
--   psql -v ON_ERROR_STOP=1 -f audits/40-constraints.sql
-- ADD CONSTRAINT ... NOT VALID followed by VALIDATE CONSTRAINT is how a
-- constraint reaches a populated table without a long lock; a constraint still
-- NOT VALID means the second half never ran, and rows written before it was
-- added were never checked.
BEGIN;

-- Every name below resolves in pg_catalog or is qualified: nothing another role
-- created in the caller's schemas can stand in for a built-in. The views read
-- the caller's current_schema() when queried, not this setting.
SET LOCAL search_path = pg_catalog, pg_temp;

CREATE OR REPLACE VIEW whatsmeow_audit.not_valid_constraints AS
SELECT
    format('%I on %s', con.conname, t.table_name) AS object,
    format(
        '%s is NOT VALID: existing rows were never checked (ALTER TABLE %s VALIDATE CONSTRAINT %I)',
        CASE con.contype WHEN 'f' THEN 'foreign key' WHEN 'c' THEN 'check constraint' ELSE 'constraint' END,
        t.table_name,
        con.conname
    ) AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
INNER JOIN pg_constraint AS con ON t.relid = con.conrelid
WHERE NOT con.convalidated;

CALL whatsmeow_audit.restrict_access();

COMMIT;
