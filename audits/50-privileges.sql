-- Privileges: who can read past row-level security, and what hands every
-- tenant's rows to roles that should see one tenant at a time.
--   psql -v ON_ERROR_STOP=1 -f audits/50-privileges.sql
-- The application role is whatsmeow_app, or the role named by the setting
-- whatsmeow.app_role, as in rls/roles.sql.
--
-- The rule for roles that can read every tenant's rows:
--   * Superusers always can; every cluster has one. They are listed
--     (privileged_roles), not flagged.
--   * Login roles with BYPASSRLS are listed too: this database cannot tell who
--     uses them.
--   * A finding when the application role is, or can SET ROLE to, a superuser,
--     a BYPASSRLS role or an owner of tenant tables.
--   * A finding when a login role that is not a superuser owns tenant tables
--     whose row-level security is enabled but not forced: enabling it says the
--     application relies on it, and a session as that owner skips it. With row-level
--     security off, owning the tables changes nothing, and forced, the owner
--     is bound too, so both are only listed.
BEGIN;

-- Informational: login roles that read every tenant's rows.
CREATE OR REPLACE VIEW whatsmeow_audit.privileged_roles AS
SELECT
    r.rolname AS role_name,
    r.rolsuper AS superuser,
    r.rolbypassrls AS bypass_rls,
    owned.tables AS owned_tenant_tables,
    CASE
        WHEN r.rolsuper THEN 'superuser: bypasses row-level security and every privilege'
        WHEN r.rolbypassrls THEN 'BYPASSRLS: reads every tenant''s rows of any table it may read'
        ELSE 'owns tenant tables: bypasses their row-level security unless it is forced'
    END AS reason
FROM pg_roles AS r
CROSS JOIN
    LATERAL (
        SELECT count(*) AS tables
        FROM whatsmeow_audit.whatsmeow_tables AS t
        WHERE t.relowner = r.oid AND t.business_id_attnum IS NOT NULL
    ) AS owned
WHERE r.rolcanlogin AND (r.rolsuper OR r.rolbypassrls OR owned.tables > 0)
ORDER BY r.rolname;

CREATE OR REPLACE VIEW whatsmeow_audit.rls_bypass AS
WITH app AS (
    SELECT
        r.oid,
        r.rolname,
        r.rolsuper
    FROM pg_roles AS r
    WHERE r.rolname = coalesce(nullif(current_setting('whatsmeow.app_role', TRUE), ''), 'whatsmeow_app')
),

owners AS (
    SELECT DISTINCT t.relowner
    FROM whatsmeow_audit.whatsmeow_tables AS t
    WHERE t.business_id_attnum IS NOT NULL
)

SELECT
    format('role %I', app.rolname) AS object,
    format(
        'the application role can bypass row-level security: %s',
        string_agg(
            format(
                '%s %s',
                CASE WHEN r.oid = app.oid THEN 'it' ELSE format('it can SET ROLE %I, which', r.rolname) END,
                CASE
                    WHEN r.rolsuper THEN 'is a superuser'
                    WHEN r.rolbypassrls THEN 'has BYPASSRLS'
                    ELSE 'owns tenant tables'
                END
            ),
            '; ' ORDER BY r.rolname
        )
    ) AS problem
FROM app
INNER JOIN pg_roles AS r
    ON pg_has_role(app.oid, r.oid, 'MEMBER') AND (app.oid = r.oid OR NOT app.rolsuper)
WHERE r.rolsuper OR r.rolbypassrls OR r.oid IN (SELECT o.relowner FROM owners AS o)
GROUP BY app.rolname

UNION ALL

SELECT
    format('role %I', r.rolname) AS object,
    format(
        'can log in and owns %s, where row-level security is enabled but not forced: '
        'a session as this role reads every tenant''s rows (make it NOLOGIN and SET ROLE to it, '
        'or run rls/force.sql)',
        string_agg(t.table_name, ', ' ORDER BY t.table_name)
    ) AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
INNER JOIN pg_roles AS r ON t.relowner = r.oid
WHERE
    t.business_id_attnum IS NOT NULL
    AND t.relrowsecurity
    AND NOT t.relforcerowsecurity
    AND r.rolcanlogin
    AND NOT r.rolsuper
GROUP BY r.rolname;

-- TRUNCATE ignores row-level security: only the owner may have it.
CREATE OR REPLACE VIEW whatsmeow_audit.truncate_grants AS
SELECT
    t.table_name AS object,
    format(
        'TRUNCATE is granted to %s: TRUNCATE ignores row-level security and empties every tenant''s rows',
        CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END
    ) AS problem
FROM whatsmeow_audit.whatsmeow_tables AS t
CROSS JOIN LATERAL aclexplode(t.relacl) AS g
WHERE
    t.business_id_attnum IS NOT NULL
    AND g.privilege_type = 'TRUNCATE'
    AND g.grantee <> t.relowner;

-- A SECURITY DEFINER function resolves names through the caller's search_path
-- unless it pins its own, so a caller can slip in objects that run with the
-- owner's rights.
CREATE OR REPLACE VIEW whatsmeow_audit.definer_functions AS
SELECT
    p.oid::REGPROCEDURE::TEXT AS object,
    'SECURITY DEFINER without a pinned search_path: a caller can put objects on its search_path that then '
    'run with the owner''s rights (ALTER FUNCTION ... SET search_path = pg_catalog, <schema>)'::TEXT AS problem
FROM pg_proc AS p
WHERE
    p.pronamespace IN (quote_ident(current_schema())::REGNAMESPACE, 'whatsmeow_audit'::REGNAMESPACE)
    AND p.prosecdef
    AND NOT EXISTS (
        SELECT FROM unnest(p.proconfig) AS c (setting)
        WHERE c.setting LIKE 'search_path=%'
    );

-- Views, in any schema, that read tenant tables directly or through other
-- views. A view reads its tables with its owner's rights, so one that PUBLIC
-- may read hands every tenant's rows to every role. A security_invoker view
-- (PostgreSQL 15+) reads with the caller's rights and policies instead.
CREATE OR REPLACE VIEW whatsmeow_audit.public_views AS
WITH RECURSIVE reads (view_oid, table_name) AS (
    SELECT
        r.ev_class,
        t.table_name
    FROM whatsmeow_audit.whatsmeow_tables AS t
    INNER JOIN pg_depend AS d
        ON
            d.refclassid = 'pg_class'::REGCLASS
            AND t.relid = d.refobjid
            AND d.classid = 'pg_rewrite'::REGCLASS
    INNER JOIN pg_rewrite AS r ON d.objid = r.oid
    WHERE NOT t.is_version_table AND r.ev_class <> t.relid
    UNION
    SELECT
        r.ev_class,
        reads.table_name
    FROM reads
    INNER JOIN pg_depend AS d
        ON
            d.refclassid = 'pg_class'::REGCLASS
            AND reads.view_oid = d.refobjid
            AND d.classid = 'pg_rewrite'::REGCLASS
    INNER JOIN pg_rewrite AS r ON d.objid = r.oid
    WHERE r.ev_class <> reads.view_oid
)

SELECT
    v.oid::REGCLASS::TEXT AS object,
    format(
        'is readable by PUBLIC and reads %s: a view reads with its owner''s rights, '
        'so every role reads every tenant''s rows through it',
        string_agg(DISTINCT reads.table_name, ', ' ORDER BY reads.table_name)
    ) AS problem
FROM reads
INNER JOIN pg_class AS v ON reads.view_oid = v.oid
WHERE
    v.relkind IN ('v', 'm')
    AND EXISTS (
        SELECT FROM aclexplode(v.relacl) AS g
        WHERE g.grantee = 0 AND g.privilege_type = 'SELECT'
    )
    AND NOT coalesce(array_to_string(v.reloptions, ',') ~* 'security_invoker=(true|on|yes|1)\M', FALSE)
GROUP BY v.oid;

-- The audit views themselves show every tenant (see 00-schema.sql).
CREATE OR REPLACE VIEW whatsmeow_audit.audit_access AS
WITH app AS (
    SELECT r.oid
    FROM pg_roles AS r
    WHERE r.rolname = coalesce(nullif(current_setting('whatsmeow.app_role', TRUE), ''), 'whatsmeow_app')
)

SELECT
    c.oid::REGCLASS::TEXT AS object,
    'is readable by PUBLIC: the audit views show every tenant''s data' AS problem
FROM pg_class AS c
WHERE
    c.relnamespace = 'whatsmeow_audit'::REGNAMESPACE
    AND EXISTS (
        SELECT FROM aclexplode(c.relacl) AS g
        WHERE g.grantee = 0
    )

UNION ALL

SELECT
    c.oid::REGCLASS::TEXT AS object,
    'is readable by the application role: the audit views show every tenant''s data' AS problem
FROM pg_class AS c
INNER JOIN app ON has_table_privilege(app.oid, c.oid, 'SELECT')
WHERE c.relnamespace = 'whatsmeow_audit'::REGNAMESPACE AND c.relkind IN ('r', 'v', 'm')

UNION ALL

SELECT
    p.oid::REGPROCEDURE::TEXT AS object,
    'is executable by PUBLIC' AS problem
FROM pg_proc AS p
WHERE
    p.pronamespace = 'whatsmeow_audit'::REGNAMESPACE
    AND (
        p.proacl IS NULL
        OR EXISTS (
            SELECT FROM aclexplode(p.proacl) AS g
            WHERE g.grantee = 0
        )
    );

CALL whatsmeow_audit.restrict_access();

COMMIT;
