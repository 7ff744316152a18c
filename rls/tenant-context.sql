-- The tenant context: how a transaction names the one tenant whose rows it may see.
--   psql -v ON_ERROR_STOP=1 -f rls/tenant-context.sql
-- Run it before roles.sql and enable.sql; it is re-runnable. The application calls
--   SELECT whatsmeow_set_tenant($1);
-- as the first statement of every transaction. The setting it makes is read by the
-- policies of enable.sql and ends with the transaction.
BEGIN;

-- SET LOCAL rather than set_config(..., TRUE): on Citus only a SET LOCAL reaches the
-- workers, where the policies are evaluated. Running it through EXECUTE inside a
-- function lets the value arrive as a bind parameter. No SECURITY DEFINER: the
-- caller may set its own setting, nothing more.
CREATE OR REPLACE FUNCTION whatsmeow_set_tenant(business_id TEXT)
RETURNS VOID
LANGUAGE plpgsql
AS $$
BEGIN
    IF whatsmeow_business_id_is_valid(business_id) IS NOT TRUE THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format(
                'invalid business_id %s: must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -',
                -- JSON quoting keeps quotes, newlines and control characters out of the log line.
                coalesce(to_json(left(business_id, 80))::TEXT, 'NULL')
                || CASE WHEN length(business_id) > 80 THEN ' (cut at 80 characters)' ELSE '' END
            );
    END IF;
    EXECUTE format('SET LOCAL app.current_business_id = %L', business_id);
END
$$;

COMMIT;
