-- Fresh install of the latest multi-tenant schema, for psql:
--   psql -v ON_ERROR_STOP=1 -f schema/latest.sql
-- It runs the same files as `whatsmeow-tenancy upgrade`, in one transaction, so
-- an error leaves the database untouched.
BEGIN;

\ir builtin-shadows.sql

\ir version-table.sql

DO $$
BEGIN
    IF EXISTS (SELECT FROM whatsmeow_version) THEN
        RAISE EXCEPTION 'whatsmeow_version already records a version; schema/latest.sql installs into an empty database only'
        USING HINT = 'Bring an existing store forward with: whatsmeow-tenancy upgrade';
    END IF;
END
$$;
\ir ../upgrades/00-latest-schema.sql

DELETE FROM whatsmeow_version;
INSERT INTO whatsmeow_version (version, compat) VALUES (1003, 1000);

COMMIT;
