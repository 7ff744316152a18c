-- Tenant row-level security on every whatsmeow table that has a business_id column.
--   psql -v ON_ERROR_STOP=1 -f rls/enable.sql
-- Re-runnable, and re-run after every upgrade (`whatsmeow-tenancy upgrade` does it):
-- the tables are found in the catalog, so a table added by a later upgrade is
-- covered too. Each table gets one policy, whatsmeow_tenant_isolation: a row is
-- visible and writable only while its business_id is the tenant that
-- whatsmeow_set_tenant named in the current transaction (tenant-context.sql).
-- With no tenant named, every table reads as empty.
BEGIN;

-- ALTER TABLE and CREATE POLICY wait for an exclusive lock; queueing behind a long
-- transaction would stall every query of the application behind them.
SET LOCAL lock_timeout = '10s';

DO $$
DECLARE
    store NAME := pg_catalog.current_schema();
    caller_path TEXT := pg_catalog.current_setting('search_path');
    tenant_tables REGCLASS[];
    tenant_table REGCLASS;
    -- If any table is forced, all are: a table added by an upgrade must not be the
    -- one that an owner-connected application reads without a filter.
    forced BOOLEAN;
    widening TEXT;
    tenant_expression TEXT;
BEGIN
    -- Built-ins from pg_catalog alone from here on: nothing another role created
    -- in the caller's schemas can stand in for them.
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', TRUE);
    SELECT
        array_agg(c.oid::REGCLASS ORDER BY c.relname),
        coalesce(bool_or(c.relforcerowsecurity), FALSE)
    INTO tenant_tables, forced
    FROM pg_class AS c
    WHERE
        c.relnamespace = (SELECT n.oid FROM pg_namespace AS n WHERE n.nspname = store)
        AND c.relkind IN ('r', 'p')
        AND NOT c.relispartition
        -- The package's tenant tables by name: a table someone else put here is
        -- never covered or granted. tests/test_tenant_tables.py keeps every copy equal.
        AND c.relname IN (
            'whatsmeow_device', 'whatsmeow_identity_keys', 'whatsmeow_pre_keys', 'whatsmeow_sessions',
            'whatsmeow_sender_keys', 'whatsmeow_app_state_sync_keys', 'whatsmeow_app_state_version',
            'whatsmeow_app_state_mutation_macs', 'whatsmeow_contacts', 'whatsmeow_chat_settings',
            'whatsmeow_message_secrets', 'whatsmeow_privacy_tokens', 'whatsmeow_nct_salt', 'whatsmeow_lid_map',
            'whatsmeow_event_buffer', 'whatsmeow_retry_buffer'
        );
    IF tenant_tables IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'undefined_table',
            MESSAGE = format('no whatsmeow table with a business_id column in schema %s',
                             coalesce(quote_ident(store), '(none: search_path is empty)')),
            HINT = 'Install the schema first, or set search_path to the schema that holds it.';
    END IF;

    FOREACH tenant_table IN ARRAY tenant_tables LOOP
        -- Permissive policies are OR-ed together, so any other one would widen what a
        -- tenant sees. A restrictive one only narrows it, but runs as whoever reads:
        -- it may stay only once the owner allows it by name (below).
        SELECT string_agg(p.polname, ', ' ORDER BY p.polname) INTO widening
        FROM pg_policy AS p
        WHERE p.polrelid = tenant_table AND p.polpermissive AND p.polname <> 'whatsmeow_tenant_isolation';
        IF widening IS NOT NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = 'object_not_in_prerequisite_state',
                MESSAGE = format('%s has other permissive policies (%s) that would widen tenant isolation',
                                 tenant_table, widening),
                HINT = 'Drop them or make them AS RESTRICTIVE, then run this again.';
        END IF;
    END LOOP;

    -- Nothing the package did not create may sit on its tables (stores at v1003 and
    -- later, which keep the owner's allow-list): it would run as this role.
    IF to_regprocedure(format('%I.whatsmeow_refuse_foreign_table_objects()', store)) IS NOT NULL THEN
        EXECUTE format('SELECT %I.whatsmeow_refuse_foreign_table_objects()', store);
    END IF;

    -- The policies compare business_id with the body of whatsmeow_current_tenant(),
    -- the form tenant-context.sql chose for this platform, written out rather than
    -- called: the planner copies a policy's stored expression, but inlines a function
    -- from its source text each time it plans a statement, on every table the
    -- statement reads, which a statement planned on each run (the simple protocol,
    -- a custom plan) pays every time.
    SELECT substring(p.prosrc FROM '^\s*SELECT\s+(.*\S)\s*$') INTO tenant_expression
    FROM pg_proc AS p
    WHERE p.oid = to_regprocedure(format('%I.whatsmeow_current_tenant()', store));
    IF tenant_expression IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'undefined_function',
            MESSAGE = format('%I.whatsmeow_current_tenant() is missing or is not the single SELECT that '
                             'rls/tenant-context.sql writes', store),
            HINT = 'Run rls/tenant-context.sql first.';
    END IF;

    FOREACH tenant_table IN ARRAY tenant_tables LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tenant_table);
        IF forced THEN
            EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tenant_table);
        END IF;
        -- Re-created rather than kept, so a policy changed by hand is put right.
        IF EXISTS (SELECT FROM pg_policy AS p WHERE p.polrelid = tenant_table
                   AND p.polname = 'whatsmeow_tenant_isolation') THEN
            EXECUTE format('DROP POLICY whatsmeow_tenant_isolation ON %s', tenant_table);
        END IF;
        -- A plain comparison with a STABLE expression, so the primary key, which
        -- starts with business_id, serves it as an index condition.
        EXECUTE format(
            'CREATE POLICY whatsmeow_tenant_isolation ON %1$s AS PERMISSIVE FOR ALL TO PUBLIC '
            'USING (business_id = %2$s) WITH CHECK (business_id = %2$s)',
            tenant_table, tenant_expression
        );
    END LOOP;
    PERFORM set_config('search_path', caller_path, TRUE);
END
$$;

COMMIT;
