-- Distributes an installed multi-tenant store (v1000 or later) on a Citus
-- coordinator, every tenant table sharded by business_id in one colocation
-- group, for psql:
--   psql -v ON_ERROR_STOP=1 -f schema/citus-distribute.sql
-- Run it once, with the application stopped: it copies every row into the
-- shards. Citus opens its connections to the workers as the current role, so run
-- it as a superuser or as a login that is a member of the owner role, never
-- after SET ROLE to a NOLOGIN owner. The tables are distributed in one
-- transaction, so an error leaves the store local and unchanged.
BEGIN;

-- Re-creating the foreign keys waits for exclusive locks on every table.
SET LOCAL lock_timeout = '10s';

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_proc WHERE proname = 'create_distributed_table') THEN
        RAISE EXCEPTION 'schema/citus-distribute.sql needs Citus: create_distributed_table() does not exist'
        USING ERRCODE = 'undefined_function',
        HINT = 'Run it on the Citus coordinator, in the database that holds the store, after CREATE EXTENSION citus.';
    END IF;
    -- The multi-tenant line: every key and foreign key leads with business_id. A
    -- table this file does not know is caught at the end, before COMMIT.
    IF NOT EXISTS (SELECT FROM whatsmeow_version WHERE version >= 1000) THEN
        RAISE EXCEPTION 'schema/citus-distribute.sql distributes a multi-tenant store (v1000 or later) only'
        USING ERRCODE = 'object_not_in_prerequisite_state',
        HINT = 'Bring the store to the package''s version first: whatsmeow-tenancy upgrade';
    END IF;
END
$$;

-- ==========================================================================
-- Foreign keys: ON DELETE CASCADE only
-- ==========================================================================
-- Citus rejects ON UPDATE CASCADE on a foreign key that contains the
-- distribution column, and refuses any update of business_id anyway; deleting a
-- device still cascades, shard-locally. Dropping and adding in one ALTER TABLE
-- keeps each constraint's name and locks each table once.

ALTER TABLE whatsmeow_identity_keys
DROP CONSTRAINT whatsmeow_identity_keys_business_id_our_jid_fkey,
ADD CONSTRAINT whatsmeow_identity_keys_business_id_our_jid_fkey
FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_pre_keys
DROP CONSTRAINT whatsmeow_pre_keys_business_id_jid_fkey,
ADD CONSTRAINT whatsmeow_pre_keys_business_id_jid_fkey
FOREIGN KEY (business_id, jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_sessions
DROP CONSTRAINT whatsmeow_sessions_business_id_our_jid_fkey,
ADD CONSTRAINT whatsmeow_sessions_business_id_our_jid_fkey
FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_sender_keys
DROP CONSTRAINT whatsmeow_sender_keys_business_id_our_jid_fkey,
ADD CONSTRAINT whatsmeow_sender_keys_business_id_our_jid_fkey
FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_app_state_sync_keys
DROP CONSTRAINT whatsmeow_app_state_sync_keys_business_id_jid_fkey,
ADD CONSTRAINT whatsmeow_app_state_sync_keys_business_id_jid_fkey
FOREIGN KEY (business_id, jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_app_state_version
DROP CONSTRAINT whatsmeow_app_state_version_business_id_jid_fkey,
ADD CONSTRAINT whatsmeow_app_state_version_business_id_jid_fkey
FOREIGN KEY (business_id, jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_app_state_mutation_macs
DROP CONSTRAINT whatsmeow_app_state_mutation_macs_business_id_jid_name_fkey,
ADD CONSTRAINT whatsmeow_app_state_mutation_macs_business_id_jid_name_fkey
FOREIGN KEY (business_id, jid, name) REFERENCES whatsmeow_app_state_version (business_id, jid, name)
ON DELETE CASCADE;

ALTER TABLE whatsmeow_contacts
DROP CONSTRAINT whatsmeow_contacts_business_id_our_jid_fkey,
ADD CONSTRAINT whatsmeow_contacts_business_id_our_jid_fkey
FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_chat_settings
DROP CONSTRAINT whatsmeow_chat_settings_business_id_our_jid_fkey,
ADD CONSTRAINT whatsmeow_chat_settings_business_id_our_jid_fkey
FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_message_secrets
DROP CONSTRAINT whatsmeow_message_secrets_business_id_our_jid_fkey,
ADD CONSTRAINT whatsmeow_message_secrets_business_id_our_jid_fkey
FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_privacy_tokens
DROP CONSTRAINT whatsmeow_privacy_tokens_business_id_our_jid_fkey,
ADD CONSTRAINT whatsmeow_privacy_tokens_business_id_our_jid_fkey
FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_nct_salt
DROP CONSTRAINT whatsmeow_nct_salt_business_id_our_jid_fkey,
ADD CONSTRAINT whatsmeow_nct_salt_business_id_our_jid_fkey
FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_event_buffer
DROP CONSTRAINT whatsmeow_event_buffer_business_id_our_jid_fkey,
ADD CONSTRAINT whatsmeow_event_buffer_business_id_our_jid_fkey
FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

ALTER TABLE whatsmeow_retry_buffer
DROP CONSTRAINT whatsmeow_retry_buffer_business_id_our_jid_fkey,
ADD CONSTRAINT whatsmeow_retry_buffer_business_id_our_jid_fkey
FOREIGN KEY (business_id, our_jid) REFERENCES whatsmeow_device (business_id, jid) ON DELETE CASCADE;

-- ==========================================================================
-- Tenant event log: no device triggers
-- ==========================================================================
-- Citus runs no ordinary trigger on a distributed table (it would fire on the
-- workers, where the log is not). Once distributed, devices added, removed,
-- re-keyed or moved are not logged; the applier's tenant operations still are.
-- The log itself stays a local table on the coordinator.
DROP TRIGGER IF EXISTS whatsmeow_device_added_event ON whatsmeow_device;
DROP TRIGGER IF EXISTS whatsmeow_device_removed_event ON whatsmeow_device;
DROP TRIGGER IF EXISTS whatsmeow_device_rekeyed_event ON whatsmeow_device;
DROP TRIGGER IF EXISTS whatsmeow_device_moved_event ON whatsmeow_device;

-- ==========================================================================
-- Distribution
-- ==========================================================================

-- The version row has no tenant. As a reference table every node can read it,
-- and it goes first: Citus may refuse to create a reference table after a
-- parallel operation on distributed tables in the same transaction.
SELECT create_reference_table('whatsmeow_version');

-- The device table anchors the colocation group: every tenant's rows land on the
-- shard of its devices, so keys, foreign keys and cascades stay on one node.
SELECT create_distributed_table('whatsmeow_device', 'business_id');

-- Each table after the table its foreign key references: a foreign key between
-- distributed tables needs the referenced table distributed and colocated.
SELECT create_distributed_table('whatsmeow_identity_keys', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table('whatsmeow_pre_keys', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table('whatsmeow_sessions', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table('whatsmeow_sender_keys', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table('whatsmeow_app_state_sync_keys', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table('whatsmeow_app_state_version', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table(
    'whatsmeow_app_state_mutation_macs', 'business_id', colocate_with => 'whatsmeow_device'
);
SELECT create_distributed_table('whatsmeow_contacts', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table('whatsmeow_chat_settings', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table('whatsmeow_message_secrets', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table('whatsmeow_privacy_tokens', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table('whatsmeow_nct_salt', 'business_id', colocate_with => 'whatsmeow_device');
-- No foreign key (the map is not owned by a device), but colocated all the same,
-- so the queries that join it to a device's tables stay on one shard.
SELECT create_distributed_table('whatsmeow_lid_map', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table('whatsmeow_event_buffer', 'business_id', colocate_with => 'whatsmeow_device');
SELECT create_distributed_table('whatsmeow_retry_buffer', 'business_id', colocate_with => 'whatsmeow_device');

-- A tenant table added by a later step and not listed above would stay local on
-- the coordinator, where its foreign key to the distributed devices cannot be.
DO $$
DECLARE
    missed TEXT;
BEGIN
    SELECT string_agg(c.relname::TEXT, ', ' ORDER BY c.relname) INTO missed
    FROM pg_class AS c
    WHERE
        c.relnamespace = quote_ident(current_schema())::REGNAMESPACE
        AND c.relkind IN ('r', 'p')
        AND NOT c.relispartition
        AND starts_with(c.relname::TEXT, 'whatsmeow_')
        AND EXISTS (SELECT FROM pg_attribute AS a WHERE a.attrelid = c.oid AND a.attname = 'business_id')
        AND NOT EXISTS (SELECT FROM pg_dist_partition AS p WHERE p.logicalrelid = c.oid);
    IF missed IS NOT NULL THEN
        RAISE EXCEPTION 'schema/citus-distribute.sql does not distribute %: the store is left local and unchanged',
        missed
        USING ERRCODE = 'object_not_in_prerequisite_state',
        HINT = 'Use schema/citus-distribute.sql of the package release that installed this store.';
    END IF;
END
$$;

COMMIT;
