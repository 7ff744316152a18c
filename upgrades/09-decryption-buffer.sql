-- v9 (compatible with v8+): Add the decrypted event buffer
-- Upstream whatsmeow's single-tenant step, replayed so older stores reach v15
-- before they are converted; it never runs on a multi-tenant store.
CREATE TABLE whatsmeow_event_buffer (
    our_jid          TEXT   NOT NULL,
    ciphertext_hash  BYTEA  NOT NULL CHECK (length(ciphertext_hash) = 32),
    plaintext        BYTEA,
    server_timestamp BIGINT NOT NULL,
    insert_timestamp BIGINT NOT NULL,

    PRIMARY KEY (our_jid, ciphertext_hash),
    FOREIGN KEY (our_jid) REFERENCES whatsmeow_device (jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);
