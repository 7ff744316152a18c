-- Least-privilege roles: an owner for maintenance and an application role that
-- row-level security always applies to.
--   psql -v ON_ERROR_STOP=1 -f rls/tenant-context.sql -f rls/roles.sql
-- The names default to whatsmeow_owner and whatsmeow_app. Other names come from the
-- settings whatsmeow.owner_role and whatsmeow.app_role, which keeps this file plain
-- SQL for psql and the applier alike:
--   PGOPTIONS='-c whatsmeow.app_role=acme_app -c whatsmeow.owner_role=acme_owner' \
--     psql -v ON_ERROR_STOP=1 -f rls/roles.sql
--   python -m applier rls roles --app-role acme_app --owner-role acme_owner
-- Run as a superuser: it creates roles and hands over ownership. Re-runnable:
-- existing roles are kept, and the application role's privileges are reset to
-- exactly these:
--   owner role: NOLOGIN when created; owns every whatsmeow table and function, so
--     upgrades run as it (SET ROLE, or a login role that is a member of it).
--   application role: NOLOGIN when created (grant it to a login role, or ALTER
--     ROLE ... LOGIN); never the owner, a member of it, a superuser or BYPASSRLS.
--     SELECT, INSERT, UPDATE and DELETE on the tenant tables; no TRUNCATE, which
--     ignores row-level security. SELECT on whatsmeow_version only: whatsmeow reads
--     the version at startup to refuse a newer schema, and must never write it.
--     EXECUTE on whatsmeow_set_tenant.
-- No function here is SECURITY DEFINER, so there is no EXECUTE to revoke from PUBLIC.
BEGIN;

-- Handing over ownership waits for an exclusive lock on every table.
SET LOCAL lock_timeout = '10s';

DO $$
DECLARE
    app_role TEXT := coalesce(nullif(current_setting('whatsmeow.app_role', TRUE), ''), 'whatsmeow_app');
    owner_role TEXT := coalesce(nullif(current_setting('whatsmeow.owner_role', TRUE), ''), 'whatsmeow_owner');
    role_name TEXT;
    relation RECORD;
    routine REGPROCEDURE;
BEGIN
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

    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), app_role);

    FOR relation IN
        SELECT
            c.oid::REGCLASS AS name,
            c.relname = 'whatsmeow_version' AS is_version,
            EXISTS (
                SELECT FROM pg_attribute AS a
                WHERE a.attrelid = c.oid AND a.attname = 'business_id' AND NOT a.attisdropped
            ) AS is_tenant
        FROM pg_class AS c
        WHERE
            c.relnamespace = quote_ident(current_schema())::REGNAMESPACE
            AND c.relkind IN ('r', 'p')
            AND c.relname LIKE 'whatsmeow\_%'
        ORDER BY c.relname
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO %I', relation.name, owner_role);
        EXECUTE format('REVOKE ALL ON TABLE %s FROM %I', relation.name, app_role);
        IF relation.is_tenant THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO %I', relation.name, app_role);
        ELSIF relation.is_version THEN
            EXECUTE format('GRANT SELECT ON TABLE %s TO %I', relation.name, app_role);
        END IF;
    END LOOP;

    FOR routine IN
        SELECT p.oid::REGPROCEDURE
        FROM pg_proc AS p
        WHERE p.pronamespace = quote_ident(current_schema())::REGNAMESPACE AND p.proname LIKE 'whatsmeow\_%'
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO %I', routine, owner_role);
    END LOOP;
    EXECUTE format('GRANT EXECUTE ON FUNCTION whatsmeow_set_tenant(TEXT) TO %I', app_role);
END
$$;

COMMIT;
