-- v1002 -> v1003 (compatible with v1000+): Foreign table objects refused, moved devices logged, event text bounded
-- A trigger, rule or policy on a store table runs with the rights of whoever
-- writes or reads that table, and a foreign key from another table cascades a
-- purge into it. When such an object is not the package's (an application that
-- owned the tables before `rls roles`, or an old deployment, left it), an
-- operator's purge, prune or role change would run someone else's code as the
-- operator. whatsmeow_foreign_table_objects lists every such object with its
-- owner; whatsmeow_refuse_foreign_table_objects stops the package's commands
-- while one is not allowed by name in whatsmeow_allowed_table_objects, the
-- operators' own list (change capture triggers, for instance). The audit shows
-- both.
--
-- The tenant event log now records a device whose jid (or business_id) is
-- updated in place, naming the old and the new value, and it bounds every text
-- it copies from a device row, so an application-chosen value cannot grow the
-- log. whatsmeow_prune_tenant_events removes old events in batches.
--
-- Compatible with v1000 code: whatsmeow never reads these objects, and its
-- device upsert names no key column, so saving a device fires nothing new.
SET LOCAL lock_timeout = '10s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE whatsmeow_allowed_table_objects (
    table_name  TEXT        NOT NULL,
    kind        TEXT        NOT NULL CHECK (kind IN ('trigger', 'rule', 'policy', 'foreign key')),
    object_name TEXT        NOT NULL,
    reason      TEXT        NOT NULL CHECK (reason <> ''),
    allowed_by  TEXT        NOT NULL DEFAULT current_user,
    allowed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),

    PRIMARY KEY (table_name, kind, object_name)
);

COMMENT ON TABLE whatsmeow_allowed_table_objects IS
'triggers, rules, policies and foreign keys on the store''s tables that the owner allows although the package did '
'not create them; the application role has no privilege on it';

-- Every store table, trigger function and allow-list entry is found through the
-- functions' pinned search_path (pg_catalog, then the store's schema, set below).
-- SECURITY DEFINER, so that whoever audits the store may see which objects the
-- owner allowed; it returns catalog facts only, and every comparison is of
-- identical built-in types, so no operator but pg_catalog's can match.
CREATE FUNCTION whatsmeow_foreign_table_objects()
RETURNS TABLE (
    table_name TEXT, kind TEXT, object_name TEXT, object_owner TEXT, detail TEXT, allowed BOOLEAN
)
LANGUAGE sql
STABLE
SECURITY DEFINER
AS $$
    WITH package_tables AS (
        SELECT c.oid, c.relname::TEXT AS relname, c.relowner
        FROM pg_catalog.pg_class AS c
        WHERE
            c.relnamespace = (
                SELECT a.relnamespace FROM pg_catalog.pg_class AS a
                WHERE a.oid = 'whatsmeow_allowed_table_objects'::REGCLASS::OID
            )
            AND c.relname IN (
                'whatsmeow_device', 'whatsmeow_identity_keys', 'whatsmeow_pre_keys', 'whatsmeow_sessions',
                'whatsmeow_sender_keys', 'whatsmeow_app_state_sync_keys', 'whatsmeow_app_state_version',
                'whatsmeow_app_state_mutation_macs', 'whatsmeow_contacts', 'whatsmeow_chat_settings',
                'whatsmeow_message_secrets', 'whatsmeow_privacy_tokens', 'whatsmeow_nct_salt', 'whatsmeow_lid_map',
                'whatsmeow_event_buffer', 'whatsmeow_retry_buffer',
                'whatsmeow_version', 'whatsmeow_tenant_events', 'whatsmeow_allowed_table_objects'
            )
    ),

    found AS (
        SELECT
            t.relname AS table_name,
            'trigger' AS kind,
            g.tgname::TEXT AS object_name,
            pg_catalog.pg_get_userbyid(p.proowner)::TEXT AS object_owner,
            'runs ' || p.oid::REGPROCEDURE::TEXT AS detail
        FROM pg_catalog.pg_trigger AS g
        INNER JOIN package_tables AS t ON g.tgrelid = t.oid
        INNER JOIN pg_catalog.pg_proc AS p ON g.tgfoid = p.oid
        WHERE
            NOT g.tgisinternal
            -- The package's own device triggers (v1002, v1003).
            AND NOT (
                t.relname = 'whatsmeow_device'
                AND g.tgname IN (
                    'whatsmeow_device_added_event', 'whatsmeow_device_removed_event',
                    'whatsmeow_device_rekeyed_event', 'whatsmeow_device_moved_event'
                )
                AND p.oid = 'whatsmeow_log_device_event()'::REGPROCEDURE::OID
            )
            -- Whoever installed an extension chose its triggers (Citus adds one).
            AND NOT EXISTS (
                SELECT FROM pg_catalog.pg_depend AS d
                WHERE d.classid = 'pg_catalog.pg_proc'::REGCLASS::OID AND d.objid = p.oid AND d.deptype = 'e'
            )
        UNION ALL
        SELECT
            t.relname,
            'rule',
            r.rulename::TEXT,
            pg_catalog.pg_get_userbyid(t.relowner)::TEXT,
            'rewrites statements on the table'
        FROM pg_catalog.pg_rewrite AS r
        INNER JOIN package_tables AS t ON r.ev_class = t.oid
        UNION ALL
        SELECT
            t.relname,
            'policy',
            p.polname::TEXT,
            pg_catalog.pg_get_userbyid(t.relowner)::TEXT,
            CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END
        FROM pg_catalog.pg_policy AS p
        INNER JOIN package_tables AS t ON p.polrelid = t.oid
        WHERE p.polname <> 'whatsmeow_tenant_isolation'
        UNION ALL
        SELECT
            t.relname,
            'foreign key',
            con.conname::TEXT,
            pg_catalog.pg_get_userbyid(c.relowner)::TEXT,
            'from ' || con.conrelid::REGCLASS::TEXT || ', which a delete cascades into'
        FROM pg_catalog.pg_constraint AS con
        INNER JOIN package_tables AS t ON con.confrelid = t.oid
        INNER JOIN pg_catalog.pg_class AS c ON con.conrelid = c.oid
        WHERE con.contype = 'f' AND con.conrelid NOT IN (SELECT pt.oid FROM package_tables AS pt)
    )

    SELECT
        f.table_name,
        f.kind,
        f.object_name,
        f.object_owner,
        f.detail,
        EXISTS (
            SELECT FROM whatsmeow_allowed_table_objects AS a
            WHERE a.table_name = f.table_name AND a.kind = f.kind AND a.object_name = f.object_name
        ) AS allowed
    FROM found AS f
    ORDER BY f.table_name, f.kind, f.object_name
$$;

CREATE FUNCTION whatsmeow_refuse_foreign_table_objects()
RETURNS VOID
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    found TEXT[];
BEGIN
    SELECT pg_catalog.array_agg(
        pg_catalog.format('%s %I on %s (owned by %I): %s', f.kind, f.object_name, f.table_name, f.object_owner,
                          f.detail)
        ORDER BY f.table_name, f.kind, f.object_name
    ) INTO found
    FROM whatsmeow_foreign_table_objects() AS f
    WHERE NOT f.allowed;
    IF found IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = pg_catalog.format(
                'refusing to run: %s object(s) on the store''s tables were not created by the package '
                'and would run with the rights of whoever changes those tables',
                pg_catalog.cardinality(found)
            ),
            DETAIL = pg_catalog.array_to_string(found, E'\n'),
            HINT = 'Drop each one (DROP TRIGGER name ON table, DROP RULE, DROP POLICY, or ALTER TABLE ... DROP '
            'CONSTRAINT), or, as the store''s owner, allow it by name: INSERT INTO whatsmeow_allowed_table_objects '
            '(table_name, kind, object_name, reason) VALUES (...).';
    END IF;
END
$$;

-- As for whatsmeow_set_tenant: pg_catalog, then the store's own schema, where
-- nobody but the owner may create objects once `rls roles` has run.
DO $$
BEGIN
    EXECUTE pg_catalog.format(
        'ALTER FUNCTION %I.whatsmeow_foreign_table_objects() SET search_path = pg_catalog, %I, pg_temp',
        pg_catalog.current_schema(),
        pg_catalog.current_schema()
    );
    EXECUTE pg_catalog.format(
        'ALTER FUNCTION %I.whatsmeow_refuse_foreign_table_objects() SET search_path = pg_catalog, %I, pg_temp',
        pg_catalog.current_schema(),
        pg_catalog.current_schema()
    );
END
$$;

-- ---------------------------------------------------------------------------
-- The tenant event log: moved devices, bounded text, pruning
-- ---------------------------------------------------------------------------

ALTER TABLE whatsmeow_tenant_events DROP CONSTRAINT whatsmeow_tenant_events_action_check;
ALTER TABLE whatsmeow_tenant_events ADD CONSTRAINT whatsmeow_tenant_events_action_check CHECK (
    action IN (
        'device_added', 'device_removed', 'device_rekeyed', 'device_moved', 'import', 'export', 'purge', 'rename',
        'isolate', 'move'
    )
) NOT VALID;
ALTER TABLE whatsmeow_tenant_events VALIDATE CONSTRAINT whatsmeow_tenant_events_action_check;

-- Every text copied from a device row is cut at 128 characters (JIDs are far
-- shorter), and says so.
CREATE OR REPLACE FUNCTION whatsmeow_log_device_event()
RETURNS TRIGGER
LANGUAGE plpgsql
SECURITY DEFINER
AS $$
DECLARE
    acting TEXT := coalesce(nullif(pg_catalog.current_setting('role'), 'none'), SESSION_USER);
    row_values JSONB;
    changed TEXT[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_values := pg_catalog.jsonb_build_object('jid', OLD.jid, 'lid', OLD.lid);
    ELSE
        row_values := pg_catalog.jsonb_build_object('jid', NEW.jid, 'lid', NEW.lid);
    END IF;
    IF TG_OP = 'UPDATE' AND TG_NAME = 'whatsmeow_device_moved_event' THEN
        row_values := row_values || pg_catalog.jsonb_build_object(
            'from_jid', OLD.jid, 'from_business_id', OLD.business_id
        );
    END IF;
    SELECT pg_catalog.jsonb_object_agg(
        v.key,
        CASE
            WHEN pg_catalog.length(v.value) > 128
                THEN pg_catalog.left(v.value, 128) || pg_catalog.format('… (cut from %s characters)',
                                                                       pg_catalog.length(v.value))
            ELSE v.value
        END
    ) INTO row_values
    FROM pg_catalog.jsonb_each_text(row_values) AS v;

    IF TG_OP = 'INSERT' THEN
        INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
        VALUES (NEW.business_id, 'device_added', row_values, acting, SESSION_USER);
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
        VALUES (OLD.business_id, 'device_removed', row_values, acting, SESSION_USER);
        RETURN NULL;
    ELSIF TG_NAME = 'whatsmeow_device_moved_event' THEN
        INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
        VALUES (NEW.business_id, 'device_moved', row_values, acting, SESSION_USER);
        RETURN NULL;
    END IF;
    -- The names of the key columns that changed, never their values.
    SELECT pg_catalog.array_agg(n.key ORDER BY n.key) INTO changed
    FROM pg_catalog.jsonb_each(pg_catalog.to_jsonb(NEW)) AS n
    INNER JOIN pg_catalog.jsonb_each(pg_catalog.to_jsonb(OLD)) AS o ON n.key = o.key
    WHERE
        n.value IS DISTINCT FROM o.value
        AND n.key IN (
            'registration_id', 'noise_key', 'identity_key', 'signed_pre_key', 'signed_pre_key_id',
            'signed_pre_key_sig', 'adv_key', 'adv_details', 'adv_account_sig', 'adv_account_sig_key',
            'adv_device_sig'
        );
    INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
    VALUES (
        NEW.business_id, 'device_rekeyed',
        row_values || pg_catalog.jsonb_build_object('changed', pg_catalog.to_jsonb(changed)),
        acting, SESSION_USER
    );
    RETURN NULL;
END
$$;

-- CREATE OR REPLACE drops the function's settings: its search_path is pinned again.
DO $$
BEGIN
    EXECUTE pg_catalog.format(
        'ALTER FUNCTION %I.whatsmeow_log_device_event() SET search_path = pg_catalog, %I, pg_temp',
        pg_catalog.current_schema(),
        pg_catalog.current_schema()
    );
END
$$;

-- As in v1002, a store distributed with Citus takes no ordinary trigger on its
-- device table.
DO $$
DECLARE
    distributed BOOLEAN := FALSE;
BEGIN
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        distributed := EXISTS (
            SELECT FROM pg_catalog.pg_dist_partition AS p
            WHERE p.logicalrelid = 'whatsmeow_device'::REGCLASS
        );
    END IF;
    IF distributed THEN
        RETURN;
    END IF;

    CREATE TRIGGER whatsmeow_device_moved_event
    AFTER UPDATE OF jid, business_id ON whatsmeow_device
    FOR EACH ROW
    WHEN ((old.jid, old.business_id) IS DISTINCT FROM (new.jid, new.business_id))
    EXECUTE FUNCTION whatsmeow_log_device_event();
END
$$;

-- Events older than the given age, at most batch_size of them, oldest first;
-- returns how many went. The caller commits between batches.
CREATE FUNCTION whatsmeow_prune_tenant_events(older_than INTERVAL, batch_size INTEGER)
RETURNS BIGINT
LANGUAGE plpgsql
AS $$
DECLARE
    removed BIGINT;
BEGIN
    IF older_than IS NULL OR older_than <= INTERVAL '0' OR batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'whatsmeow_prune_tenant_events needs a positive age and a batch size of at least 1';
    END IF;
    DELETE FROM whatsmeow_tenant_events
    WHERE id IN (
        SELECT e.id FROM whatsmeow_tenant_events AS e
        WHERE e.logged_at < pg_catalog.now() - older_than
        ORDER BY e.id
        LIMIT batch_size
    );
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;

DO $$
BEGIN
    EXECUTE pg_catalog.format(
        'ALTER FUNCTION %I.whatsmeow_prune_tenant_events(INTERVAL, INTEGER) SET search_path = pg_catalog, %I, pg_temp',
        pg_catalog.current_schema(),
        pg_catalog.current_schema()
    );
END
$$;

REVOKE ALL ON FUNCTION whatsmeow_prune_tenant_events(INTERVAL, INTEGER) FROM public;
