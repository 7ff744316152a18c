-- v6: Add facebook_uuid to devices
-- Upstream whatsmeow's single-tenant step, replayed so older stores reach v15
-- before they are converted; it never runs on a multi-tenant store.
ALTER TABLE whatsmeow_device ADD COLUMN facebook_uuid UUID;
