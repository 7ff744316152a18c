-- The tenant context: how a transaction names the one tenant whose rows it may see.
--   psql -v ON_ERROR_STOP=1 -f rls/tenant-context.sql
-- Run it before roles.sql and enable.sql; it is re-runnable. The application calls
--   SELECT whatsmeow_set_tenant($1);
-- as the first statement of every transaction. The policies of enable.sql read
-- the tenant through whatsmeow_current_tenant(), which honours it only in the
-- transaction that named it:
--   * a value left on a pooled connection by a session-level SET, or by an
--     earlier transaction, reads as no tenant;
--   * a second, different tenant named through whatsmeow_set_tenant in the same
--     transaction is refused.
-- What these do and do not protect against is in docs/threat-model.md.
BEGIN;

-- The tenant the policies compare business_id with: the one named in this
-- transaction, else NULL, which matches no row. The stamp is this transaction's
-- start as the 8 bytes of its binary form, in hex: independent of DateStyle,
-- TimeZone and every other setting, and about a tenth of the cost of formatting
-- it as text; whatsmeow_set_tenant writes the same expression. Every name is
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
            OPERATOR(pg_catalog.=) pg_catalog.encode(pg_catalog.timestamptz_send(pg_catalog.now()), 'hex')
            THEN pg_catalog.current_setting('app.current_business_id', TRUE)
    END
$$;

-- The errors of whatsmeow_set_tenant, raised only on its refusing path, where
-- what they cost does not matter: an invalid business_id, or a second tenant
-- in a transaction that already named one.
CREATE OR REPLACE FUNCTION whatsmeow_refuse_tenant(business_id TEXT)
RETURNS VOID
LANGUAGE plpgsql
AS $$
DECLARE
    named TEXT := whatsmeow_current_tenant();
BEGIN
    IF whatsmeow_business_id_is_valid(business_id) IS TRUE AND named IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_transaction_state',
            MESSAGE = format('this transaction already belongs to tenant %s; it cannot switch to %s',
                             to_json(named)::TEXT, to_json(business_id)::TEXT),
            HINT = 'End the transaction (COMMIT or ROLLBACK) and name the next tenant in a new one.';
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'invalid_parameter_value',
        MESSAGE = format(
            'invalid business_id %s: must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -',
            -- JSON quoting keeps quotes, newlines and control characters out of the log line.
            coalesce(to_json(left(business_id, 80))::TEXT, 'NULL')
            || CASE WHEN length(business_id) > 80 THEN ' (cut at 80 characters)' ELSE '' END
        );
END
$$;

-- whatsmeow_set_tenant, and where each form applies.
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
    -- The refusing path resolves built-ins from pg_catalog and the store alone:
    -- the store's schema, where nobody but the owner may create objects once
    -- roles.sql has run; the audit reports any role that still may.
    EXECUTE pg_catalog.format(
        'ALTER FUNCTION %1$I.whatsmeow_refuse_tenant(TEXT) SET search_path = pg_catalog, %1$I, pg_temp', store
    );
    -- A single SQL expression with no SET clause, so the planner inlines it into
    -- the calling statement: the call costs what two set_config() calls cost,
    -- with no PL/pgSQL call and no search_path switch. Every name is qualified
    -- (searched CASE and OPERATOR(pg_catalog.…), never IS DISTINCT FROM or a
    -- simple CASE, which look "=" up on the caller's search_path), so an object
    -- another role creates cannot stand in for one it calls. In order:
    --   * the tenant this transaction already named: nothing to do;
    --   * no tenant named in this transaction and a valid id (the rule of
    --     whatsmeow_business_id_is_valid, which the tables' CHECK uses, spelled
    --     out so that no PL/pgSQL call is made): set_config(…, TRUE), which lasts
    --     until the transaction ends, and the stamp;
    --   * anything else: whatsmeow_refuse_tenant raises the error.
    -- The same stamp expression as whatsmeow_current_tenant.
    EXECUTE pg_catalog.format(
        $plain$
        CREATE OR REPLACE FUNCTION %1$I.whatsmeow_set_tenant(business_id TEXT)
        RETURNS VOID
        LANGUAGE sql
        VOLATILE
        AS $body$
            SELECT CASE
                WHEN pg_catalog.current_setting('app.current_business_id_xact', TRUE)
                    OPERATOR(pg_catalog.=) pg_catalog.encode(pg_catalog.timestamptz_send(pg_catalog.now()), 'hex')
                    THEN CASE
                        WHEN pg_catalog.current_setting('app.current_business_id', TRUE) OPERATOR(pg_catalog.=) business_id
                            THEN ''::pg_catalog.void
                        ELSE %1$I.whatsmeow_refuse_tenant(business_id)
                    END
                WHEN business_id OPERATOR(pg_catalog.~) '^[A-Za-z0-9_-]+$'
                    AND pg_catalog.length(business_id) OPERATOR(pg_catalog.<=) 64
                    THEN CASE
                        WHEN pg_catalog.set_config('app.current_business_id', business_id, TRUE) IS NOT NULL
                            AND pg_catalog.set_config(
                                'app.current_business_id_xact',
                                pg_catalog.encode(pg_catalog.timestamptz_send(pg_catalog.now()), 'hex'),
                                TRUE
                            ) IS NOT NULL
                            THEN ''::pg_catalog.void
                    END
                ELSE %1$I.whatsmeow_refuse_tenant(business_id)
            END
        $body$
        $plain$,
        store
    );
    -- On Citus the policies run on the workers, which receive a SET LOCAL, never
    -- a set_config(), and only while citus.propagate_set_commands is 'local'. A
    -- role's setting would not do: the logins that are members of it do not
    -- inherit it, and read zero rows without an error. SET LOCAL takes no bind
    -- parameter, so this form is PL/pgSQL: EXECUTE lets the value arrive as one.
    -- The workers' transactions start at other times, so the stamp cannot match
    -- there, and they need none: the coordinator forwards only what SET LOCAL set
    -- in the transaction, never a session-level value, so a worker's setting is
    -- always the current transaction's.
    IF EXISTS (SELECT FROM pg_catalog.pg_extension AS e WHERE e.extname OPERATOR(pg_catalog.=) 'citus') THEN
        EXECUTE pg_catalog.format(
            $citus$
            CREATE OR REPLACE FUNCTION %1$I.whatsmeow_set_tenant(business_id TEXT)
            RETURNS VOID
            LANGUAGE plpgsql
            AS $body$
            DECLARE
                stamp TEXT := pg_catalog.encode(pg_catalog.timestamptz_send(pg_catalog.now()), 'hex');
            BEGIN
                IF pg_catalog.current_setting('app.current_business_id_xact', TRUE) OPERATOR(pg_catalog.=) stamp THEN
                    IF pg_catalog.current_setting('app.current_business_id', TRUE) OPERATOR(pg_catalog.=) business_id THEN
                        RETURN;
                    END IF;
                    PERFORM %1$I.whatsmeow_refuse_tenant(business_id);
                END IF;
                IF NOT coalesce(%1$I.whatsmeow_business_id_is_valid(business_id), FALSE) THEN
                    PERFORM %1$I.whatsmeow_refuse_tenant(business_id);
                END IF;
                IF pg_catalog.current_setting('citus.propagate_set_commands', TRUE) IS NOT NULL THEN
                    SET LOCAL citus.propagate_set_commands = 'local';
                END IF;
                EXECUTE pg_catalog.format('SET LOCAL app.current_business_id = %%L', business_id);
                PERFORM pg_catalog.set_config('app.current_business_id_xact', stamp, TRUE);
            END
            $body$
            $citus$,
            store
        );
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
