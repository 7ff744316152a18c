-- v1001 -> v1002 (compatible with v1000+): Tenant event log: devices added, removed and re-keyed, tenant operations
-- An append-only record of what happened to each tenant: every device added,
-- removed or re-keyed, by whatever path (whatsmeow deleting a logged-out device
-- included), and every tenant operation of the applier with its counts. Each
-- event names the tenant, the time, and the roles that did it.
--
-- The tenant is in a column named tenant, not business_id, on purpose: the log
-- is not a tenant table, so row-level security, `rls roles` and the audit leave
-- it to the owner. The application role gets no privilege on it at all: it can
-- neither read, change nor delete it, and a device it adds or removes is logged
-- by a trigger that runs with the owner's rights. The log holds no key
-- material (JIDs, column names and counts only) and no foreign key: an event
-- outlives the device and the tenant it records.
--
-- Compatible with v1000 code: whatsmeow never reads the log. The triggers fire
-- only when a device row is inserted or deleted, or when one of its key columns
-- is updated to a different value; whatsmeow's device upsert never names a key
-- column in its DO UPDATE, so saving a device does not fire them.
SET LOCAL lock_timeout = '10s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE whatsmeow_tenant_events (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY,
    logged_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    tenant       TEXT        NOT NULL CHECK (whatsmeow_business_id_is_valid(tenant)),
    action       TEXT        NOT NULL CHECK (
        action IN ('device_added', 'device_removed', 'device_rekeyed', 'import', 'export', 'purge', 'rename')
    ),
    details      JSONB       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    acting_role  TEXT        NOT NULL,
    session_role TEXT        NOT NULL,

    PRIMARY KEY (id)
);

COMMENT ON TABLE whatsmeow_tenant_events IS
'append-only log of device and tenant operations per tenant; the owner reads and prunes it, the application role '
'has no privilege on it; never holds key material';

-- Called by the applier's tenant commands (and anything else run as the owner)
-- to log an operation with its counts. No SECURITY DEFINER: only the owner may
-- write the log, so the application cannot forge an event.
CREATE FUNCTION whatsmeow_record_tenant_event(business_id TEXT, action TEXT, details JSONB)
RETURNS BIGINT
LANGUAGE plpgsql
AS $$
DECLARE
    event_id BIGINT;
BEGIN
    IF whatsmeow_business_id_is_valid(business_id) IS NOT TRUE THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = pg_catalog.format(
                'invalid business_id %s: must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -',
                coalesce(pg_catalog.to_json(pg_catalog.left(business_id, 80))::TEXT, 'NULL')
            );
    END IF;
    INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
    VALUES (business_id, action, coalesce(details, '{}'), CURRENT_USER, SESSION_USER)
    RETURNING id INTO event_id;
    RETURN event_id;
END
$$;

-- The device triggers' function. SECURITY DEFINER, because the application role
-- that adds and removes devices may not write the log; its search_path is pinned
-- below. Inside it CURRENT_USER is the owner, so the role the session acts as
-- comes from SET ROLE, else the login.
CREATE FUNCTION whatsmeow_log_device_event()
RETURNS TRIGGER
LANGUAGE plpgsql
SECURITY DEFINER
AS $$
DECLARE
    acting TEXT := coalesce(nullif(pg_catalog.current_setting('role'), 'none'), SESSION_USER);
    changed TEXT[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
        VALUES (
            NEW.business_id, 'device_added', pg_catalog.jsonb_build_object('jid', NEW.jid, 'lid', NEW.lid),
            acting, SESSION_USER
        );
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO whatsmeow_tenant_events (tenant, action, details, acting_role, session_role)
        VALUES (
            OLD.business_id, 'device_removed', pg_catalog.jsonb_build_object('jid', OLD.jid, 'lid', OLD.lid),
            acting, SESSION_USER
        );
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
        pg_catalog.jsonb_build_object('jid', NEW.jid, 'lid', NEW.lid, 'changed', pg_catalog.to_jsonb(changed)),
        acting, SESSION_USER
    );
    RETURN NULL;
END
$$;

-- The store's own schema joins pg_catalog on the function's path, as for
-- whatsmeow_set_tenant: nobody but the owner may create objects there once
-- `rls roles` has run.
DO $$
BEGIN
    EXECUTE pg_catalog.format(
        'ALTER FUNCTION %I.whatsmeow_log_device_event() SET search_path = pg_catalog, %I, pg_temp',
        pg_catalog.current_schema(),
        pg_catalog.current_schema()
    );
END
$$;

CREATE TRIGGER whatsmeow_device_added_event
AFTER INSERT ON whatsmeow_device
FOR EACH ROW EXECUTE FUNCTION whatsmeow_log_device_event();

CREATE TRIGGER whatsmeow_device_removed_event
AFTER DELETE ON whatsmeow_device
FOR EACH ROW EXECUTE FUNCTION whatsmeow_log_device_event();

-- UPDATE OF: an UPDATE (or ON CONFLICT DO UPDATE) whose SET list names no key
-- column does not even evaluate the WHEN clause.
CREATE TRIGGER whatsmeow_device_rekeyed_event
AFTER UPDATE OF
registration_id, noise_key, identity_key, signed_pre_key, signed_pre_key_id, signed_pre_key_sig,
adv_key, adv_details, adv_account_sig, adv_account_sig_key, adv_device_sig
ON whatsmeow_device
FOR EACH ROW
WHEN (
    (
        old.registration_id, old.noise_key, old.identity_key, old.signed_pre_key, old.signed_pre_key_id,
        old.signed_pre_key_sig, old.adv_key, old.adv_details, old.adv_account_sig, old.adv_account_sig_key,
        old.adv_device_sig
    ) IS DISTINCT FROM (
        new.registration_id, new.noise_key, new.identity_key, new.signed_pre_key, new.signed_pre_key_id,
        new.signed_pre_key_sig, new.adv_key, new.adv_details, new.adv_account_sig, new.adv_account_sig_key,
        new.adv_device_sig
    )
)
EXECUTE FUNCTION whatsmeow_log_device_event();

-- Writing the log is the owner's; a trigger function needs no EXECUTE to fire.
REVOKE ALL ON FUNCTION whatsmeow_record_tenant_event(TEXT, TEXT, JSONB) FROM public;
REVOKE ALL ON FUNCTION whatsmeow_log_device_event() FROM public;
