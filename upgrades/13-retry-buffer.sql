-- v13 (compatible with v8+): Add the outgoing message buffer for retry receipts
-- Upstream whatsmeow's single-tenant step, replayed so older stores reach v15
-- before they are converted; it never runs on a multi-tenant store.
CREATE TABLE whatsmeow_retry_buffer (
    our_jid    TEXT   NOT NULL,
    chat_jid   TEXT   NOT NULL,
    message_id TEXT   NOT NULL,
    format     TEXT   NOT NULL,
    plaintext  BYTEA  NOT NULL,
    timestamp  BIGINT NOT NULL,

    PRIMARY KEY (our_jid, chat_jid, message_id),
    FOREIGN KEY (our_jid) REFERENCES whatsmeow_device (jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX whatsmeow_retry_buffer_timestamp_idx ON whatsmeow_retry_buffer (our_jid, timestamp);
