-- v11 (compatible with v8+): Add the redacted phone number to contacts
-- Upstream whatsmeow's single-tenant step, replayed so older stores reach v15
-- before they are converted; it never runs on a multi-tenant store.
ALTER TABLE whatsmeow_contacts ADD COLUMN redacted_phone TEXT;
