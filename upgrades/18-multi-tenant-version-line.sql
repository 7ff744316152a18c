-- v999 -> v1000 (compatible with v1000+): The multi-tenant version line
-- dbutil refuses a database only while its compat is above the number of
-- versions the running code knows. At compat 16, upstream whatsmeow's next
-- release (its v16) would take this store for its own and run single-tenant
-- queries on it. From here the multi-tenant line numbers from v1000 with compat
-- 1000: upstream refuses it until it has published a thousand versions, and
-- code that embeds these files knows v1000, since dbutil sizes its table by the
-- highest version a step starts from (999 here).
--
-- A v17 store reaches this step directly: dbutil and the applier step over the
-- versions 18 to 998, which no file starts from. Nothing in the schema changes;
-- the step only records the new version. Every later step must keep compat at
-- 1000 or above.
-- The comment takes a brief lock on the version table, which only dbutil and the
-- applier touch.
SET LOCAL lock_timeout = '10s';
SET LOCAL statement_timeout = '10s';

COMMENT ON TABLE whatsmeow_version IS
'whatsmeow multi-tenant store: versions from 1000 on belong to the multi-tenant line, never to upstream whatsmeow';
