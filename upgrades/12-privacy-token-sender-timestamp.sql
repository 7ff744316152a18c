-- v12 (compatible with v8+): Add the sender timestamp and prune index to privacy tokens
-- Upstream whatsmeow's single-tenant step, replayed so older stores reach v15
-- before they are converted; it never runs on a multi-tenant store.
ALTER TABLE whatsmeow_privacy_tokens ADD COLUMN sender_timestamp BIGINT;

CREATE INDEX idx_whatsmeow_privacy_tokens_our_jid_timestamp
ON whatsmeow_privacy_tokens (our_jid, timestamp);
