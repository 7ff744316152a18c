-- v5: Drop the agent suffix from account JIDs
-- Upstream whatsmeow's single-tenant step, replayed so older stores reach v15
-- before they are converted; it never runs on a multi-tenant store.
UPDATE whatsmeow_device SET jid = replace(jid, '.0', '');
