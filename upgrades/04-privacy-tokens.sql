-- v4: Add privacy tokens table
-- Upstream whatsmeow's single-tenant step, replayed so older stores reach v15
-- before they are converted; it never runs on a multi-tenant store.
CREATE TABLE whatsmeow_privacy_tokens (
    our_jid   TEXT,
    their_jid TEXT,
    token     BYTEA  NOT NULL,
    timestamp BIGINT NOT NULL,

    PRIMARY KEY (our_jid, their_jid)
);
