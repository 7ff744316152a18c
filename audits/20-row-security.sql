-- Row-level security coverage of the tenant tables (those with a business_id
-- column, as rls/enable.sql finds them).
--   psql -v ON_ERROR_STOP=1 -f audits/20-row-security.sql
-- Row-level security is optional: off on every tenant table is not a finding.
-- Once it is on anywhere, the application relies on it, so every tenant table
-- must be covered the same way.
BEGIN;

-- Every name below resolves in pg_catalog or is qualified: nothing another role
-- created in the caller's schemas can stand in for a built-in. The views read
-- the caller's current_schema() when queried, not this setting.
SET LOCAL search_path = pg_catalog, pg_temp;

-- A policy expression counts as keyed when it is exactly a comparison of
-- business_id with the tenant of the current transaction, as rls/enable.sql
-- writes it: the body of whatsmeow_current_tenant() written out, in its Citus
-- form only where Citus is installed, or, as earlier releases wrote it, a call of
-- the function. The deparsed text is compared with its spacing folded and its
-- pg_catalog. prefixes, which depend on the reader's search_path, dropped. A
-- policy that reads app.current_business_id alone also honours a value left on a
-- pooled connection, so it does not count.
CREATE OR REPLACE FUNCTION whatsmeow_audit.is_tenant_keyed(expression TEXT)
RETURNS BOOLEAN
LANGUAGE sql
STABLE
SET search_path = pg_catalog
AS $$
    WITH folded AS (
        SELECT replace(regexp_replace(expression, '\s+', ' ', 'g'), 'pg_catalog.', '') AS text
    )
    SELECT coalesce(
        expression ~ '^\(business_id = ([a-z_][a-z0-9_$]*\.|"[^"]+"\.)?whatsmeow_current_tenant\(\)\)$'
        OR folded.text = '(business_id = CASE WHEN (current_setting(''app.current_business_id_xact''::text, true) '
        || '= encode(timestamptz_send(now()), ''hex''::text)) '
        || 'THEN current_setting(''app.current_business_id''::text, true) ELSE NULL::text END)'
        OR (
            folded.text = '(business_id = CASE WHEN (current_setting(''app.current_business_id''::text, true) '
            || '<> ''''::text) THEN current_setting(''app.current_business_id''::text, true) ELSE NULL::text END)'
            AND EXISTS (SELECT FROM pg_extension AS e WHERE e.extname = 'citus')
        ),
        FALSE
    )
    FROM folded
$$;

-- Every policy on a tenant table, with whether each of its expressions is keyed.
-- A missing WITH CHECK falls back to USING, except for INSERT, which has no USING.
CREATE OR REPLACE VIEW whatsmeow_audit.tenant_policies AS
SELECT
    t.table_name,
    p.polname AS policy_name,
    p.polpermissive AS permissive,
    pg_get_expr(p.polqual, p.polrelid) AS using_expression,
    pg_get_expr(p.polwithcheck, p.polrelid) AS check_expression,
    CASE p.polcmd
        WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL'
    END AS command,
    p.polcmd = 'a' OR whatsmeow_audit.is_tenant_keyed(pg_get_expr(p.polqual, p.polrelid)) AS using_keyed,
    p.polcmd IN ('r', 'd')
    OR whatsmeow_audit.is_tenant_keyed(pg_get_expr(coalesce(p.polwithcheck, p.polqual), p.polrelid)) AS check_keyed
FROM whatsmeow_audit.whatsmeow_tables AS t
INNER JOIN pg_policy AS p ON t.relid = p.polrelid
WHERE t.business_id_attnum IS NOT NULL;

-- Informational: one row per tenant table.
CREATE OR REPLACE VIEW whatsmeow_audit.row_security_status AS
SELECT
    t.table_name,
    t.relrowsecurity AS enabled,
    t.relforcerowsecurity AS forced,
    coalesce(array_agg(p.policy_name ORDER BY p.policy_name) FILTER (WHERE p.policy_name IS NOT NULL), '{}')
        AS policies,
    coalesce(bool_or(p.permissive AND p.using_keyed AND p.check_keyed), FALSE) AS tenant_policy
FROM whatsmeow_audit.whatsmeow_tables AS t
LEFT JOIN whatsmeow_audit.tenant_policies AS p ON t.table_name = p.table_name
WHERE t.business_id_attnum IS NOT NULL
GROUP BY t.table_name, t.relrowsecurity, t.relforcerowsecurity
ORDER BY t.table_name;

CREATE OR REPLACE VIEW whatsmeow_audit.row_security AS
WITH coverage AS (
    SELECT
        count(*) AS tables,
        count(*) FILTER (WHERE t.relrowsecurity) AS enabled,
        count(*) FILTER (WHERE t.relforcerowsecurity) AS forced
    FROM whatsmeow_audit.whatsmeow_tables AS t
    WHERE t.business_id_attnum IS NOT NULL
)

SELECT
    t.table_name AS object,
    format(
        'row-level security is off, while it is on for %s of the %s tenant tables: '
        'every role with access reads every tenant''s rows here',
        c.enabled, c.tables
    ) AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
CROSS JOIN coverage AS c
WHERE t.business_id_attnum IS NOT NULL AND NOT t.relrowsecurity AND c.enabled > 0

UNION ALL

-- rls/enable.sql forces every table once any is forced; one left out is the
-- table an application connected as the owner reads unfiltered.
SELECT
    t.table_name AS object,
    format(
        'row-level security is not forced, while it is forced on %s of the %s tenant tables: '
        'the owner reads every tenant''s rows here',
        c.forced, c.tables
    ) AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
CROSS JOIN coverage AS c
WHERE t.business_id_attnum IS NOT NULL AND NOT t.relforcerowsecurity AND c.forced > 0

UNION ALL

SELECT
    t.table_name AS object,
    'row-level security is on but no permissive policy keyed on the transaction''s tenant exists: '
    'the application sees no rows (run rls/enable.sql)' AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
WHERE
    t.business_id_attnum IS NOT NULL
    AND t.relrowsecurity
    AND NOT EXISTS (
        SELECT FROM whatsmeow_audit.tenant_policies AS p
        WHERE p.table_name = t.table_name AND p.permissive AND p.using_keyed AND p.check_keyed
    )

UNION ALL

-- Permissive policies are OR-ed together: one that is not keyed on the tenant
-- widens what every tenant sees. Restrictive ones only narrow it.
SELECT
    format('policy %I on %s', p.policy_name, p.table_name) AS object,
    format(
        'permissive %s policy is not keyed on the transaction''s tenant: %s',
        p.command,
        CASE
            WHEN NOT p.using_keyed THEN format('USING %s', coalesce(p.using_expression, '(none)'))
            ELSE format('WITH CHECK %s', coalesce(p.check_expression, '(none)'))
        END
    ) AS problem
FROM whatsmeow_audit.tenant_policies AS p
WHERE p.permissive AND NOT (p.using_keyed AND p.check_keyed);

CALL whatsmeow_audit.restrict_access();

COMMIT;
