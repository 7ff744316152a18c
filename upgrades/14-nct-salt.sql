-- v14 (compatible with v8+): Add the NCT salt table
-- Upstream whatsmeow's single-tenant step, replayed so older stores reach v15
-- before they are converted; it never runs on a multi-tenant store.
CREATE TABLE whatsmeow_nct_salt (
    our_jid TEXT  PRIMARY KEY,
    salt    BYTEA NOT NULL,

    FOREIGN KEY (our_jid) REFERENCES whatsmeow_device (jid)
    ON DELETE CASCADE ON UPDATE CASCADE
);
