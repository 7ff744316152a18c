-- Least-privilege roles: an owner for maintenance and an application role that
-- row-level security always applies to.
--   psql -v ON_ERROR_STOP=1 -f rls/tenant-context.sql -f rls/roles.sql
-- The names default to whatsmeow_owner and whatsmeow_app. Other names, and the
-- optional guardrails, come from settings, which keeps this file plain SQL for
-- psql and the applier alike:
--   PGOPTIONS='-c whatsmeow.app_role=acme_app -c whatsmeow.owner_role=acme_owner' \
--     psql -v ON_ERROR_STOP=1 -f rls/roles.sql
--   whatsmeow-tenancy rls roles --app-role acme_app --owner-role acme_owner
-- Run it as a superuser, or as the database's owner with CREATEROLE (the admin of
-- a managed PostgreSQL). Re-runnable: existing roles are kept, and privileges
-- are reset to exactly these:
--   owner role: NOLOGIN when created; owns every whatsmeow table and the
--     package's functions, so upgrades run as it (SET ROLE, or a login role that
--     is a member of it); may CREATE in the store's schema (for upgrades) and in
--     the database (for the audit's schema and verify's scratch schema). A
--     non-superuser running this file becomes a member of it, which handing over
--     ownership needs.
--   application role: NOLOGIN when created (grant it to a login role, or ALTER
--     ROLE ... LOGIN); never the owner, a member of it, a superuser or BYPASSRLS.
--     SELECT, INSERT, UPDATE and DELETE on the tenant tables; no TRUNCATE, which
--     ignores row-level security. SELECT on whatsmeow_version only: whatsmeow reads
--     the version at startup to refuse a newer schema, and must never write it.
--     EXECUTE on whatsmeow_set_tenant and whatsmeow_current_tenant.
--   taken away from PUBLIC and the application role: CREATE on the store's schema
--     (an object planted there could stand in for one the package calls) and
--     TEMPORARY on the database (a temporary table shadows a store table for
--     every later client of a pooled connection). Each change is reported as a
--     NOTICE; what this role may not change (a schema it does not own) is
--     reported as a WARNING and stays a finding of the audit.
-- Guardrails for the application role and each login that is a member of it,
-- only when asked:
--   whatsmeow.app_connection_limit, whatsmeow.app_idle_session_timeout and
--   whatsmeow.app_idle_in_transaction_session_timeout.
BEGIN;

-- Handing over ownership waits for an exclusive lock on every table.
SET LOCAL lock_timeout = '10s';

DO $$
DECLARE
    store NAME := pg_catalog.current_schema();
    caller_path TEXT := pg_catalog.current_setting('search_path');
    app_role TEXT;
    owner_role TEXT;
    connection_limit TEXT;
    role_settings TEXT[][];
    role_setting TEXT[];
    role_name TEXT;
    login_name TEXT;
    relation RECORD;
    routine REGPROCEDURE;
    item RECORD;
    held BOOLEAN;
    revoked BOOLEAN;
BEGIN
    -- Built-ins from pg_catalog alone, as in enable.sql.
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', TRUE);
    -- Nothing the package did not create may sit on its tables (stores at v1003 and
    -- later, which keep the owner's allow-list): it would run as this role.
    IF to_regprocedure(format('%I.whatsmeow_refuse_foreign_table_objects()', store)) IS NOT NULL THEN
        EXECUTE format('SELECT %I.whatsmeow_refuse_foreign_table_objects()', store);
    END IF;
    app_role := coalesce(nullif(current_setting('whatsmeow.app_role', TRUE), ''), 'whatsmeow_app');
    owner_role := coalesce(nullif(current_setting('whatsmeow.owner_role', TRUE), ''), 'whatsmeow_owner');
    connection_limit := nullif(current_setting('whatsmeow.app_connection_limit', TRUE), '');
    role_settings := ARRAY[
        ARRAY['idle_session_timeout', nullif(current_setting('whatsmeow.app_idle_session_timeout', TRUE), '')],
        ARRAY['idle_in_transaction_session_timeout',
              nullif(current_setting('whatsmeow.app_idle_in_transaction_session_timeout', TRUE), '')]
    ];

    IF app_role = owner_role THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('the application role and the owner role are both %I', app_role),
            HINT = 'The owner bypasses row-level security unless it is forced; use two roles.';
    END IF;
    FOREACH role_name IN ARRAY ARRAY[owner_role, app_role] LOOP
        -- A longer name would be cut short by CREATE ROLE and then miss every GRANT.
        IF octet_length(role_name) > 63 THEN
            RAISE EXCEPTION USING
                ERRCODE = 'name_too_long',
                MESSAGE = format('role name %I is longer than 63 bytes', role_name);
        END IF;
        IF NOT EXISTS (SELECT FROM pg_roles AS r WHERE r.rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            RAISE NOTICE 'created role %', quote_ident(role_name);
        END IF;
    END LOOP;

    -- pg_has_role is also true for superusers and for members of the owner role,
    -- both of which would read every tenant's rows.
    IF pg_has_role(app_role, owner_role, 'MEMBER')
       OR EXISTS (SELECT FROM pg_roles AS r WHERE r.rolname = app_role AND r.rolbypassrls) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('role %I bypasses row-level security: it is a superuser, has BYPASSRLS '
                             'or is a member of the owner role %I', app_role, owner_role),
            HINT = 'Use a plain role for the application.';
    END IF;

    -- Without superuser, handing a table to a role takes membership in it; from
    -- PostgreSQL 16 one that may SET ROLE to it, which the membership CREATEROLE
    -- gives a role's creator (ADMIN only) does not include.
    IF current_setting('server_version_num')::INTEGER >= 160000 THEN
        IF NOT pg_has_role(current_user, owner_role, 'SET') THEN
            EXECUTE format('GRANT %I TO %I WITH INHERIT TRUE, SET TRUE', owner_role, current_user);
            RAISE NOTICE 'granted role % to %, to hand it the store', quote_ident(owner_role), quote_ident(current_user);
        END IF;
    ELSIF NOT pg_has_role(current_user, owner_role, 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', owner_role, current_user);
        RAISE NOTICE 'granted role % to %, to hand it the store', quote_ident(owner_role), quote_ident(current_user);
    END IF;

    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', store, app_role);
    EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO %I', store, owner_role);
    EXECUTE format('GRANT CREATE ON DATABASE %I TO %I', current_database(), owner_role);

    FOR relation IN
        SELECT
            c.oid::REGCLASS AS name,
            c.relname = 'whatsmeow_version' AS is_version,
            c.relname IN ('whatsmeow_tenant_events', 'whatsmeow_allowed_table_objects') AS is_package,
            -- The package's tenant tables by name: a table someone else put here is
            -- never covered or granted. tests/test_tenant_tables.py keeps every copy equal.
            c.relname IN (
                'whatsmeow_device', 'whatsmeow_identity_keys', 'whatsmeow_pre_keys', 'whatsmeow_sessions',
                'whatsmeow_sender_keys', 'whatsmeow_app_state_sync_keys', 'whatsmeow_app_state_version',
                'whatsmeow_app_state_mutation_macs', 'whatsmeow_contacts', 'whatsmeow_chat_settings',
                'whatsmeow_message_secrets', 'whatsmeow_privacy_tokens', 'whatsmeow_nct_salt', 'whatsmeow_lid_map',
                'whatsmeow_event_buffer', 'whatsmeow_retry_buffer'
            ) AS is_tenant
        FROM pg_class AS c
        WHERE
            c.relnamespace = (SELECT n.oid FROM pg_namespace AS n WHERE n.nspname = store)
            AND c.relkind IN ('r', 'p')
            AND NOT c.relispartition
            AND starts_with(c.relname::TEXT, 'whatsmeow_')
        ORDER BY c.relname
    LOOP
        -- Only the package's own tables change hands: a foreign whatsmeow_ table keeps
        -- its owner and gains no grant (the audit's foreign_objects reports it).
        CONTINUE WHEN NOT (relation.is_tenant OR relation.is_version OR relation.is_package);
        EXECUTE format('ALTER TABLE %s OWNER TO %I', relation.name, owner_role);
        EXECUTE format('REVOKE ALL ON TABLE %s FROM %I', relation.name, app_role);
        IF relation.is_tenant THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO %I', relation.name, app_role);
        ELSIF relation.is_version THEN
            EXECUTE format('GRANT SELECT ON TABLE %s TO %I', relation.name, app_role);
        END IF;
    END LOOP;

    -- The package's own functions only: a function someone else put in the schema
    -- under a whatsmeow_ name must not gain the owner's rights. The audit's
    -- foreign_objects view holds the same list.
    FOR routine IN
        SELECT p.oid::REGPROCEDURE
        FROM pg_proc AS p
        WHERE p.oid IN (
            SELECT to_regprocedure(format('%I.%s', store, signature))
            FROM unnest(ARRAY[
                'whatsmeow_business_id_is_valid(text)',
                'whatsmeow_set_tenant(text)',
                'whatsmeow_refuse_tenant(text)',
                'whatsmeow_current_tenant()',
                'whatsmeow_retention_horizons(interval)',
                'whatsmeow_prune_candidates(text,interval)',
                'whatsmeow_prune(text,interval,integer)',
                'whatsmeow_record_tenant_event(text,text,jsonb)',
                'whatsmeow_log_device_event()',
                'whatsmeow_foreign_table_objects()',
                'whatsmeow_refuse_foreign_table_objects()',
                'whatsmeow_prune_tenant_events(interval,integer)'
            ]) AS signature
        )
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', routine, owner_role);
    END LOOP;
    EXECUTE format('GRANT EXECUTE ON FUNCTION %I.whatsmeow_set_tenant(TEXT) TO %I', store, app_role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %I.whatsmeow_current_tenant() TO %I', store, app_role);

    -- What the application never needs and the attacks on it use.
    FOR item IN
        SELECT
            g.kind,
            g.object_name,
            g.privilege,
            w.grantee_oid,
            w.grantee_label
        FROM (VALUES ('SCHEMA', store::TEXT, 'CREATE'), ('DATABASE', current_database()::TEXT, 'TEMPORARY'))
            AS g (kind, object_name, privilege)
        CROSS JOIN (
            SELECT
                0::OID AS grantee_oid,
                'PUBLIC' AS grantee_label
            UNION ALL
            SELECT
                r.oid,
                quote_ident(r.rolname)
            FROM pg_roles AS r
            WHERE r.rolname = app_role
        ) AS w
    LOOP
        revoked := FALSE;
        FOR attempt IN 1..2 LOOP
            SELECT EXISTS (
                SELECT FROM aclexplode(
                    CASE item.kind
                        WHEN 'SCHEMA' THEN (
                            SELECT coalesce(n.nspacl, acldefault('n', n.nspowner)) FROM pg_namespace AS n
                            WHERE n.nspname = store
                        )
                        ELSE (
                            SELECT coalesce(d.datacl, acldefault('d', d.datdba)) FROM pg_database AS d
                            WHERE d.datname = current_database()
                        )
                    END
                ) AS a
                WHERE a.grantee = item.grantee_oid AND a.privilege_type = item.privilege
            ) INTO held;
            EXIT WHEN NOT held OR attempt = 2;
            EXECUTE format('REVOKE %s ON %s %I FROM %s', item.privilege, item.kind, item.object_name,
                           item.grantee_label);
            revoked := TRUE;
        END LOOP;
        IF held THEN
            -- REVOKE by someone who is not the object's owner changes nothing.
            RAISE WARNING '% still holds % on % %: only its owner may revoke it', item.grantee_label,
                item.privilege, lower(item.kind), quote_ident(item.object_name);
        ELSIF revoked THEN
            RAISE NOTICE 'revoked % on % % from %', item.privilege, lower(item.kind), quote_ident(item.object_name),
                item.grantee_label;
        END IF;
    END LOOP;

    -- Guardrails: the application role and every login that is a member of it.
    FOR login_name IN
        SELECT r.rolname FROM pg_roles AS r
        WHERE
            r.rolname = app_role
            -- USAGE: logins that act as the application, not its administrators.
            OR (r.rolcanlogin AND pg_has_role(r.oid, app_role, 'USAGE') AND NOT r.rolsuper)
        ORDER BY r.rolname
    LOOP
        IF connection_limit IS NOT NULL THEN
            EXECUTE format('ALTER ROLE %I CONNECTION LIMIT %s', login_name, connection_limit::INTEGER);
            RAISE NOTICE 'role % may open at most % connections', quote_ident(login_name), connection_limit::INTEGER;
        END IF;
        FOREACH role_setting SLICE 1 IN ARRAY role_settings LOOP
            IF role_setting[2] IS NOT NULL THEN
                EXECUTE format('ALTER ROLE %I SET %s = %L', login_name, role_setting[1], role_setting[2]);
                RAISE NOTICE 'role % has % = %', quote_ident(login_name), role_setting[1], role_setting[2];
            END IF;
        END LOOP;
    END LOOP;
    PERFORM set_config('search_path', caller_path, TRUE);
END
$$;

COMMIT;
