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

-- Every name below resolves in pg_catalog or is qualified: nothing another role
-- created in the caller's schemas can stand in for a built-in. The views read
-- the caller's current_schema() when queried, not this setting.
SET LOCAL search_path = pg_catalog, pg_temp;

-- Informational: login roles that read every tenant's rows, also through the
-- membership of a role that owns tenant tables (its rights are inherited).
CREATE OR REPLACE VIEW whatsmeow_audit.privileged_roles AS
SELECT
    r.rolname AS role_name,
    r.rolsuper AS superuser,
    r.rolbypassrls AS bypass_rls,
    owned.tables AS owned_tenant_tables,
    owned.through AS through_role,
    CASE
        WHEN r.rolsuper THEN 'superuser: bypasses row-level security and every privilege'
        WHEN r.rolbypassrls THEN 'BYPASSRLS: reads every tenant''s rows of any table it may read'
        WHEN owned.through IS NULL THEN 'owns tenant tables: bypasses their row-level security unless it is forced'
        ELSE format(
            'inherits role %s, which owns tenant tables: bypasses their row-level security unless it '
            'is forced', owned.through
        )
    END AS reason
FROM pg_roles AS r
CROSS JOIN
    LATERAL (
        SELECT
            count(*) AS tables,
            string_agg(DISTINCT quote_ident(pg_get_userbyid(t.relowner)), ', ')
            FILTER (WHERE t.relowner <> r.oid) AS through
        FROM whatsmeow_audit.whatsmeow_tables AS t
        WHERE t.business_id_attnum IS NOT NULL AND pg_has_role(r.oid, t.relowner, 'USAGE') AND NOT r.rolsuper
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
GROUP BY r.rolname

UNION ALL

-- A login that acts as the application but can also read past its policies.
SELECT
    format('role %I', l.rolname) AS object,
    format(
        'logs in as the application (a member of %I) but reads every tenant''s rows: %s',
        app.rolname,
        CASE
            WHEN l.rolbypassrls THEN 'it has BYPASSRLS'
            ELSE 'it is a member of a role that owns tenant tables, and row-level security is not forced'
        END
    ) AS problem
FROM pg_roles AS l
INNER JOIN pg_roles AS app
    ON app.rolname = coalesce(nullif(current_setting('whatsmeow.app_role', TRUE), ''), 'whatsmeow_app')
WHERE
    l.rolcanlogin
    AND l.oid <> app.oid
    -- Superusers are members of every role; they are listed, not flagged. USAGE:
    -- a login that acts with the application's privileges, not one that only
    -- administers the role (as CREATEROLE makes a role's creator on PostgreSQL 16).
    AND NOT l.rolsuper
    AND pg_has_role(l.oid, app.oid, 'USAGE')
    AND (
        l.rolbypassrls
        OR EXISTS (
            SELECT FROM whatsmeow_audit.whatsmeow_tables AS t
            WHERE
                t.business_id_attnum IS NOT NULL
                AND t.relrowsecurity
                AND NOT t.relforcerowsecurity
                AND pg_has_role(l.oid, t.relowner, 'MEMBER')
        )
    );

-- CREATE on the store's schema lets a role put objects there that could stand in
-- for the package's functions or for built-ins; TEMPORARY on the database lets it
-- shadow a store table for every later client of a pooled connection. Once the
-- application relies on row-level security, only the store's owners may hold
-- either (rls roles takes both away); superusers are not counted.
CREATE OR REPLACE VIEW whatsmeow_audit.create_privileges AS
WITH owners AS (
    SELECT DISTINCT t.relowner
    FROM whatsmeow_audit.whatsmeow_tables AS t
    WHERE t.business_id_attnum IS NOT NULL
),

relied_on AS (
    SELECT coalesce(bool_or(t.relrowsecurity), FALSE) AS rls_on
    FROM whatsmeow_audit.whatsmeow_tables AS t
    WHERE t.business_id_attnum IS NOT NULL
),

held AS (
    SELECT
        format('schema %I', n.nspname) AS object,
        'CREATE on the store''s schema' AS what,
        g.grantee,
        n.nspowner AS object_owner
    FROM pg_namespace AS n
    CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) AS g
    WHERE n.oid = quote_ident(current_schema())::REGNAMESPACE AND g.privilege_type = 'CREATE'
    UNION ALL
    SELECT
        format('database %I', d.datname) AS object,
        'TEMPORARY on the database' AS what,
        g.grantee,
        d.datdba AS object_owner
    FROM pg_database AS d
    CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) AS g
    WHERE d.datname = current_database() AND g.privilege_type = 'TEMPORARY'
)

SELECT
    held.object,
    format(
        '%s holds %s: %s',
        CASE WHEN held.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(held.grantee)) END,
        held.what,
        'an object it creates there can stand in for one the package or the application uses '
        '(rls roles takes it away)'
    ) AS problem
FROM held
WHERE
    (SELECT r.rls_on FROM relied_on AS r)
    AND held.grantee <> held.object_owner
    AND held.grantee NOT IN (SELECT o.relowner FROM owners AS o)
    AND NOT EXISTS (
        SELECT FROM pg_roles AS r
        WHERE r.oid = held.grantee AND r.rolsuper
    );

-- Objects in the store's schema that the package did not create: a function under
-- a whatsmeow_ name (rls roles re-owns only the package's own), or a function or
-- operator named like a built-in, which PostgreSQL may pick in the built-in's
-- place for anyone whose search_path holds the schema. Members of extensions
-- are left out: whoever installed the extension chose them.
CREATE OR REPLACE VIEW whatsmeow_audit.foreign_objects AS
SELECT
    p.oid::REGPROCEDURE::TEXT AS object,
    format(
        'is not one of the package''s functions (owned by %I%s): %s',
        pg_get_userbyid(p.proowner),
        CASE WHEN p.prosecdef THEN ', SECURITY DEFINER' ELSE '' END,
        CASE
            WHEN
                EXISTS (
                    SELECT FROM pg_proc AS b
                    WHERE
                        b.pronamespace = 'pg_catalog'::REGNAMESPACE
                        AND b.proname = p.proname
                )
                THEN 'it is named like a built-in and may run in its place'
            ELSE 'drop it, or move it out of the store''s schema'
        END
    ) AS problem
FROM pg_proc AS p
WHERE
    p.pronamespace = quote_ident(current_schema())::REGNAMESPACE
    AND (
        (
            starts_with(p.proname::TEXT, 'whatsmeow_')
            -- The same list as rls/roles.sql, which re-owns these.
            AND p.oid NOT IN (
                SELECT coalesce(to_regprocedure(format('%I.%s', current_schema(), signature)), 0)
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
        )
        OR EXISTS (
            SELECT FROM pg_proc AS b
            WHERE b.pronamespace = 'pg_catalog'::REGNAMESPACE AND b.proname = p.proname
        )
    )
    AND NOT EXISTS (
        SELECT FROM pg_depend AS d
        WHERE d.classid = 'pg_proc'::REGCLASS AND d.objid = p.oid AND d.deptype = 'e'
    )

UNION ALL

SELECT
    format('operator %s', o.oid::REGOPERATOR) AS object,
    format(
        'is named like a built-in operator and may run in its place (owned by %I)',
        pg_get_userbyid(o.oprowner)
    ) AS problem
FROM pg_operator AS o
WHERE
    o.oprnamespace = quote_ident(current_schema())::REGNAMESPACE
    AND EXISTS (
        SELECT FROM pg_operator AS b
        WHERE b.oprnamespace = 'pg_catalog'::REGNAMESPACE AND b.oprname = o.oprname
    )
    AND NOT EXISTS (
        SELECT FROM pg_depend AS d
        WHERE d.classid = 'pg_operator'::REGCLASS AND d.objid = o.oid AND d.deptype = 'e'
    );

-- A whatsmeow_ table the package did not create: rls roles neither re-owns nor
-- grants it, and no command of the package reads or writes it.
CREATE OR REPLACE VIEW whatsmeow_audit.foreign_tables AS
SELECT
    c.oid::REGCLASS::TEXT AS object,
    format(
        'is not one of the package''s tables (owned by %I): the package neither grants nor reads it; drop it, '
        'or move it out of the store''s schema',
        pg_get_userbyid(c.relowner)
    ) AS problem
FROM pg_class AS c
WHERE
    c.relnamespace = quote_ident(current_schema())::REGNAMESPACE
    AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND NOT c.relispartition
    AND starts_with(c.relname::TEXT, 'whatsmeow_')
    AND c.oid NOT IN (SELECT t.relid FROM whatsmeow_audit.whatsmeow_tables AS t);

-- Triggers, rules, policies and foreign keys on the store's tables that the
-- package did not create, as the store's own whatsmeow_foreign_table_objects
-- lists them (upgrades/21-foreign-table-objects-and-event-bounds.sql): the ones
-- the owner has not allowed by name are findings, the allowed ones information.
-- The function is found in the reader's current schema when the view is read;
-- a store older than v1003 has none, and nothing to list.
CREATE OR REPLACE FUNCTION whatsmeow_audit.store_table_objects()
RETURNS TABLE (
    table_name TEXT, kind TEXT, object_name TEXT, object_owner TEXT, detail TEXT, allowed BOOLEAN
)
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    lister TEXT := pg_catalog.format('%I.whatsmeow_foreign_table_objects()', pg_catalog.current_schema());
BEGIN
    IF pg_catalog.to_regprocedure(lister) IS NOT NULL THEN
        RETURN QUERY EXECUTE pg_catalog.format('SELECT * FROM %s', lister);
    END IF;
END
$$;

CREATE OR REPLACE VIEW whatsmeow_audit.table_objects AS
SELECT
    f.table_name,
    f.kind,
    f.object_name,
    f.object_owner,
    f.detail,
    f.allowed,
    format('%s %I on %s', f.kind, f.object_name, f.table_name) AS object,
    format(
        'owned by %I, %s; not created by the package and not allowed by name: it runs with the rights of '
        'whoever changes the table (drop it, or allow it in whatsmeow_allowed_table_objects)',
        f.object_owner,
        f.detail
    ) AS problem
FROM whatsmeow_audit.store_table_objects() AS f;

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

-- The tenant event log records what the application and the operators did, for
-- the owner: the application role (and PUBLIC) may not even read it, since it
-- names every tenant's devices, and no one but the owner may change it.
CREATE OR REPLACE VIEW whatsmeow_audit.event_log_grants AS
WITH grants AS (
    SELECT
        t.table_name,
        g.grantee,
        g.privilege_type,
        -- CASE, not OR: PUBLIC has no role to ask pg_has_role about.
        CASE
            WHEN g.grantee = 0 THEN TRUE
            ELSE coalesce(pg_has_role(app.oid, g.grantee, 'USAGE'), FALSE)
        END AS reaches_app
    FROM whatsmeow_audit.whatsmeow_tables AS t
    CROSS JOIN LATERAL aclexplode(t.relacl) AS g
    LEFT JOIN pg_roles AS app
        ON app.rolname = coalesce(nullif(current_setting('whatsmeow.app_role', TRUE), ''), 'whatsmeow_app')
    WHERE t.is_event_log AND g.grantee <> t.relowner
)

SELECT
    grants.table_name AS object,
    format(
        '%s granted to %s: %s',
        string_agg(grants.privilege_type, ', ' ORDER BY grants.privilege_type),
        CASE WHEN grants.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grants.grantee)) END,
        CASE
            WHEN bool_or(grants.reaches_app) THEN 'the application may not read or change the tenant event log'
            ELSE 'only the owner may change the tenant event log'
        END
    ) AS problem
FROM grants
WHERE grants.reaches_app OR grants.privilege_type NOT IN ('SELECT', 'REFERENCES', 'TRIGGER')
GROUP BY grants.table_name, grants.grantee;

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
