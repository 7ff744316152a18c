-- Fresh install of the latest multi-tenant schema, for psql:
--   psql -v ON_ERROR_STOP=1 -f schema/latest.sql
-- It runs the same files as `python -m applier upgrade`, in one transaction, so
-- an error leaves the database untouched.
BEGIN;

\ir version-table.sql
\ir ../upgrades/00-latest-schema.sql

DELETE FROM whatsmeow_version;
INSERT INTO whatsmeow_version (version, compat) VALUES (16, 16);

COMMIT;
