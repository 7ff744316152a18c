-- The tenant context: how a transaction names the one tenant whose rows it may see.
--   psql -v ON_ERROR_STOP=1 -f rls/tenant-context.sql
-- Run it before roles.sql and enable.sql; it is re-runnable. The application calls
--   SELECT whatsmeow_set_tenant($1);
-- as the first statement of every transaction. The policies of enable.sql read
-- the tenant through whatsmeow_current_tenant(), which honours it only in the
-- transaction that named it:
--   * a value left on a pooled connection by a session-level SET, or by an
--     earlier transaction, reads as no tenant;
--   * a second, different tenant in the same transaction is refused.
BEGIN;

-- The tenant the policies compare business_id with: the one whatsmeow_set_tenant
-- named in this transaction, else NULL, which matches no row. The stamp is this
-- transaction's start, to the microsecond, in UTC and independent of DateStyle:
-- what tells a tenant named in this transaction from one left over on the
-- connection; whatsmeow_set_tenant writes the same expression. Every name is
-- qualified, so the body means the same on any caller's search_path, and there
-- is no SET clause, so the policy inlines it and its index keeps the comparison.
CREATE OR REPLACE FUNCTION whatsmeow_current_tenant()
RETURNS TEXT
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN pg_catalog.current_setting('app.current_business_id_xact', TRUE)
            OPERATOR(pg_catalog.=) pg_catalog.to_char(pg_catalog.timezone('UTC', pg_catalog.now()), 'YYYYMMDDHH24MISSUS')
            THEN pg_catalog.current_setting('app.current_business_id', TRUE)
    END
$$;

-- SET LOCAL rather than set_config(..., TRUE) for the tenant: on Citus only a SET
-- LOCAL reaches the workers, where the policies are evaluated. Running it
-- through EXECUTE inside a function lets the value arrive as a bind parameter.
-- No SECURITY DEFINER: the caller may set its own settings, nothing more. Every
-- built-in is qualified and search_path is pinned below, so an object another
-- role creates cannot stand in for one this function calls.
CREATE OR REPLACE FUNCTION whatsmeow_set_tenant(business_id TEXT)
RETURNS VOID
LANGUAGE plpgsql
AS $$
DECLARE
    stamp TEXT := pg_catalog.to_char(pg_catalog.timezone('UTC', pg_catalog.now()), 'YYYYMMDDHH24MISSUS');
    named TEXT;
BEGIN
    IF whatsmeow_business_id_is_valid(business_id) IS NOT TRUE THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = pg_catalog.format(
                'invalid business_id %s: must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -',
                -- JSON quoting keeps quotes, newlines and control characters out of the log line.
                coalesce(pg_catalog.to_json(pg_catalog.left(business_id, 80))::TEXT, 'NULL')
                || CASE WHEN pg_catalog.length(business_id) > 80 THEN ' (cut at 80 characters)' ELSE '' END
            );
    END IF;
    IF pg_catalog.current_setting('app.current_business_id_xact', TRUE) OPERATOR(pg_catalog.=) stamp THEN
        named := pg_catalog.current_setting('app.current_business_id', TRUE);
        IF named OPERATOR(pg_catalog.=) business_id THEN
            RETURN;
        END IF;
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_transaction_state',
            MESSAGE = pg_catalog.format('this transaction already belongs to tenant %s; it cannot switch to %s',
                                        pg_catalog.to_json(named)::TEXT, pg_catalog.to_json(business_id)::TEXT),
            HINT = 'End the transaction (COMMIT or ROLLBACK) and name the next tenant in a new one.';
    END IF;
    -- On a Citus coordinator the policies run on the workers, which receive a
    -- SET LOCAL only while citus.propagate_set_commands is 'local'. A role's
    -- setting would not do: the logins that are members of it do not inherit it,
    -- and read zero rows without an error. The GUC exists only where Citus is loaded.
    IF pg_catalog.current_setting('citus.propagate_set_commands', TRUE) IS NOT NULL THEN
        SET LOCAL citus.propagate_set_commands = 'local';
    END IF;
    EXECUTE pg_catalog.format('SET LOCAL app.current_business_id = %L', business_id);
    PERFORM pg_catalog.set_config('app.current_business_id_xact', stamp, TRUE);
END
$$;

-- The store's own schema joins pg_catalog on the function's path, where nobody
-- but the owner may create objects once roles.sql has run; the audit reports
-- any role that still may.
DO $$
DECLARE
    store TEXT := pg_catalog.current_schema();
BEGIN
    IF store IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_schema_name',
            MESSAGE = 'search_path names no existing schema, so there is no store schema to install into',
            HINT = 'Set search_path to the schema that holds the whatsmeow tables.';
    END IF;
    EXECUTE pg_catalog.format(
        'ALTER FUNCTION %I.whatsmeow_set_tenant(TEXT) SET search_path = pg_catalog, %I, pg_temp', store, store
    );
    -- On Citus the policies run on the workers, whose transactions start at other
    -- times, so the stamp cannot match there. They need none: the coordinator
    -- forwards only what SET LOCAL set in the transaction, never a session-level
    -- value, so a worker's setting is always the current transaction's.
    IF EXISTS (SELECT FROM pg_catalog.pg_extension AS e WHERE e.extname OPERATOR(pg_catalog.=) 'citus') THEN
        EXECUTE pg_catalog.format(
            $citus$
            CREATE OR REPLACE FUNCTION %I.whatsmeow_current_tenant()
            RETURNS TEXT
            LANGUAGE sql
            STABLE
            PARALLEL SAFE
            AS $body$
                SELECT CASE
                    WHEN pg_catalog.current_setting('app.current_business_id', TRUE) OPERATOR(pg_catalog.<>) ''
                        THEN pg_catalog.current_setting('app.current_business_id', TRUE)
                END
            $body$
            $citus$,
            store
        );
    END IF;
END
$$;

COMMIT;
