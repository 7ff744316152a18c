-- v3: Add message secrets table
-- Upstream whatsmeow's single-tenant step, replayed so older stores reach v15
-- before they are converted; it never runs on a multi-tenant store.
CREATE TABLE whatsmeow_message_secrets (
    our_jid    TEXT,
    chat_jid   TEXT,
    sender_jid TEXT,
    message_id TEXT,
    key        BYTEA NOT NULL,

    PRIMARY KEY (our_jid, chat_jid, sender_jid, message_id),
    FOREIGN KEY (our_jid) REFERENCES whatsmeow_device (jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);
