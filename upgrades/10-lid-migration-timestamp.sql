-- v10 (compatible with v8+): Add the LID migration timestamp to devices
-- Upstream whatsmeow's single-tenant step, replayed so older stores reach v15
-- before they are converted; it never runs on a multi-tenant store.
ALTER TABLE whatsmeow_device ADD COLUMN lid_migration_ts BIGINT NOT NULL DEFAULT 0;
