-- Converts an upstream whatsmeow v15 store in place into the latest multi-tenant
-- schema (v1003), every existing row becoming tenant :business_id, for psql:
--   psql -v ON_ERROR_STOP=1 -v business_id=acme -f schema/adopt.sql
-- It runs upgrades/16-adopt-single-tenant-store.sql and the steps after it, as
-- the applier and Go callers do, in one transaction with the version row: an
-- error changes nothing.
-- Older upstream stores: `whatsmeow-tenancy upgrade --adopt-business-id ID`.
-- Without -v business_id it refuses before changing anything.
\if :{?business_id}
\else
\set business_id ''
\endif

BEGIN;

\ir builtin-shadows.sql

SELECT set_config('whatsmeow.adopt_business_id', :'business_id', TRUE);

DO $$
BEGIN
    IF current_setting('whatsmeow.adopt_business_id') = '' THEN
        RAISE EXCEPTION 'schema/adopt.sql needs the business_id that will own the store''s rows'
        USING ERRCODE = '22023',
        HINT = 'Name it with -v: psql -v ON_ERROR_STOP=1 -v business_id=ID -f schema/adopt.sql';
    END IF;
    IF NOT EXISTS (SELECT FROM whatsmeow_version WHERE version = 15) THEN
        RAISE EXCEPTION 'schema/adopt.sql converts upstream whatsmeow v15 stores only'
        USING HINT = 'Convert other versions with: whatsmeow-tenancy upgrade --adopt-business-id ID';
    END IF;
END
$$;

\ir ../upgrades/16-adopt-single-tenant-store.sql
\ir ../upgrades/17-prefix-ranges-and-partial-pre-key-index.sql
\ir ../upgrades/18-multi-tenant-version-line.sql
\ir ../upgrades/19-retention.sql
\ir ../upgrades/20-tenant-event-log.sql
\ir ../upgrades/21-foreign-table-objects-and-event-bounds.sql

DELETE FROM whatsmeow_version;
INSERT INTO whatsmeow_version (version, compat) VALUES (1003, 1000);

COMMIT;
