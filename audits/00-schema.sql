-- The whatsmeow_audit schema, the helpers the audit views share, and who may read them.
--   psql -v ON_ERROR_STOP=1 -f audits/00-schema.sql
-- Run the files of audits/ in name order; each is re-runnable, and
-- `whatsmeow-tenancy audit` re-applies all of them before it reads the findings.
-- The views look at the whatsmeow tables of the reader's current schema
-- (current_schema(), read when a view is queried), like every applier command.
-- Access: the schema's owner, and the maintenance role whatsmeow_owner (or the
-- role named by the setting whatsmeow.owner_role) when it exists. Nobody else:
-- a view runs with its owner's rights, so an audit view open to PUBLIC or to the
-- application role would show every tenant to anyone.
BEGIN;

-- Every name below resolves in pg_catalog or is qualified: nothing another role
-- created in the caller's schemas can stand in for a built-in. The views read
-- the caller's current_schema() when queried, not this setting.
SET LOCAL search_path = pg_catalog, pg_temp;

CREATE SCHEMA IF NOT EXISTS whatsmeow_audit;

-- The package's tables in the current schema, with what the checks ask of it;
-- a whatsmeow_ table the package did not create is a finding of foreign_objects.
-- quote_ident: a bare current_schema()::REGNAMESPACE folds a mixed-case name.
CREATE OR REPLACE VIEW whatsmeow_audit.whatsmeow_tables AS
SELECT
    c.oid AS relid,
    c.relname,
    c.relowner,
    c.relrowsecurity,
    c.relforcerowsecurity,
    c.relacl,
    a.attnum AS business_id_attnum,
    a.attnotnull AS business_id_not_null,
    c.oid::REGCLASS::TEXT AS table_name,
    c.relname = 'whatsmeow_version' AS is_version_table,
    format_type(a.atttypid, a.atttypmod) AS business_id_type,
    -- The tenant event log names its tenant in a column called tenant: it is
    -- the owner's, not a tenant table (upgrades/20-tenant-event-log.sql).
    c.relname = 'whatsmeow_tenant_events' AS is_event_log,
    c.relname NOT IN (
        'whatsmeow_version', 'whatsmeow_tenant_events', 'whatsmeow_allowed_table_objects'
    ) AS is_tenant_table
FROM pg_class AS c
LEFT JOIN pg_attribute AS a
    ON c.oid = a.attrelid AND a.attname = 'business_id' AND NOT a.attisdropped
WHERE
    c.relnamespace = quote_ident(current_schema())::REGNAMESPACE
    AND c.relkind IN ('r', 'p')
    AND NOT c.relispartition
    AND (
        -- The package's tenant tables by name: a table someone else put here is
        -- never covered or granted. tests/test_tenant_tables.py keeps every copy equal.
        c.relname IN (
            'whatsmeow_device', 'whatsmeow_identity_keys', 'whatsmeow_pre_keys', 'whatsmeow_sessions',
            'whatsmeow_sender_keys', 'whatsmeow_app_state_sync_keys', 'whatsmeow_app_state_version',
            'whatsmeow_app_state_mutation_macs', 'whatsmeow_contacts', 'whatsmeow_chat_settings',
            'whatsmeow_message_secrets', 'whatsmeow_privacy_tokens', 'whatsmeow_nct_salt', 'whatsmeow_lid_map',
            'whatsmeow_event_buffer', 'whatsmeow_retry_buffer'
        )
        OR c.relname IN ('whatsmeow_version', 'whatsmeow_tenant_events', 'whatsmeow_allowed_table_objects')
    );

-- Column numbers as a readable list; 0 stands for an index expression.
CREATE OR REPLACE FUNCTION whatsmeow_audit.column_names(of_table OID, attnums INT2[])
RETURNS TEXT
LANGUAGE sql
STABLE
SET search_path = pg_catalog
AS $$
    SELECT string_agg(CASE WHEN k.attnum = 0 THEN '(expression)' ELSE quote_ident(a.attname) END, ', '
                      ORDER BY k.ord)
    FROM unnest(attnums) WITH ORDINALITY AS k (attnum, ord)
    LEFT JOIN pg_attribute AS a ON a.attrelid = of_table AND a.attnum = k.attnum
$$;

-- Resets the privileges of everything in whatsmeow_audit: no PUBLIC, no grant
-- left over from an earlier hand-made GRANT or from ALTER DEFAULT PRIVILEGES,
-- SELECT and EXECUTE for the maintenance role. Every file calls it last. It also
-- hands every object to the maintenance role when the caller may, so that any
-- login of that role, not only the one that ran the audit first, can replace
-- them on the next run.
CREATE OR REPLACE PROCEDURE whatsmeow_audit.restrict_access()
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    reader TEXT := coalesce(nullif(current_setting('whatsmeow.owner_role', TRUE), ''), 'whatsmeow_owner');
    reader_exists BOOLEAN := EXISTS (SELECT FROM pg_roles AS r WHERE r.rolname = reader);
    item RECORD;
    grantee TEXT;
BEGIN
    FOR item IN
        SELECT
            'SCHEMA' AS kind,
            quote_ident(n.nspname) AS name,
            'USAGE' AS privilege,
            n.nspacl AS acl,
            n.nspowner AS owner
        FROM pg_namespace AS n
        WHERE n.nspname = 'whatsmeow_audit'
        UNION ALL
        SELECT
            'TABLE',
            c.oid::REGCLASS::TEXT,
            'SELECT',
            c.relacl,
            c.relowner
        FROM pg_class AS c
        WHERE c.relnamespace = 'whatsmeow_audit'::REGNAMESPACE AND c.relkind IN ('r', 'v', 'm')
        UNION ALL
        SELECT
            CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
            p.oid::REGPROCEDURE::TEXT,
            CASE p.prokind WHEN 'p' THEN NULL ELSE 'EXECUTE' END,
            p.proacl,
            p.proowner
        FROM pg_proc AS p
        WHERE p.pronamespace = 'whatsmeow_audit'::REGNAMESPACE
    LOOP
        IF reader_exists AND item.owner <> reader::REGROLE AND pg_has_role(reader, 'MEMBER') THEN
            EXECUTE format('ALTER %s %s OWNER TO %I', item.kind, item.name, reader);
        END IF;
        EXECUTE format('REVOKE ALL ON %s %s FROM PUBLIC', item.kind, item.name);
        FOR grantee IN
            SELECT DISTINCT pg_get_userbyid(g.grantee)
            FROM aclexplode(item.acl) AS g
            WHERE g.grantee <> 0 AND g.grantee <> g.grantor AND pg_get_userbyid(g.grantee) <> reader
        LOOP
            EXECUTE format('REVOKE ALL ON %s %s FROM %I', item.kind, item.name, grantee);
        END LOOP;
        IF reader_exists AND item.privilege IS NOT NULL THEN
            EXECUTE format('GRANT %s ON %s %s TO %I', item.privilege, item.kind, item.name, reader);
        END IF;
    END LOOP;
END
$$;

CALL whatsmeow_audit.restrict_access();

COMMIT;
