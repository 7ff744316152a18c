-- v8 (compatible with v8+): Add the LID to phone number map
-- Upstream whatsmeow's single-tenant step, replayed so older stores reach v15
-- before they are converted; it never runs on a multi-tenant store.
CREATE TABLE whatsmeow_lid_map (
    lid TEXT PRIMARY KEY,
    pn  TEXT UNIQUE NOT NULL
);
