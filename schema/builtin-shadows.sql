-- Refuses to go on while a schema on this session's search_path, other than
-- pg_catalog, holds a function or operator named like a built-in: PostgreSQL
-- picks the closest match among all of them, so an overload such as
-- public.format(TEXT, REGCLASS) would run in place of the built-in, with the
-- rights of whoever runs the package's SQL. Members of extensions are trusted:
-- someone allowed to install the extension chose them.
--   psql -v ON_ERROR_STOP=1 -f schema/builtin-shadows.sql
-- schema/latest.sql and schema/adopt.sql include it, and every applier command
-- runs it first. Read-only.
DO $$
DECLARE
    searched NAME[] := pg_catalog.current_schemas(FALSE);
    caller_path TEXT := pg_catalog.current_setting('search_path');
    shadows TEXT[];
BEGIN
    -- Built-ins from pg_catalog alone while looking, or the look itself could be led astray.
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', TRUE);
    SELECT array_agg(found.object ORDER BY found.object) INTO shadows
    FROM (
        SELECT format('%s owned by %I', p.oid::REGPROCEDURE, pg_get_userbyid(p.proowner)) AS object
        FROM pg_proc AS p
        INNER JOIN pg_namespace AS n ON p.pronamespace = n.oid
        WHERE
            n.nspname = ANY(searched)
            AND n.nspname <> 'pg_catalog'
            AND EXISTS (
                SELECT FROM pg_proc AS b
                WHERE b.pronamespace = 'pg_catalog'::REGNAMESPACE AND b.proname = p.proname
            )
            AND NOT EXISTS (
                SELECT FROM pg_depend AS d
                WHERE d.classid = 'pg_proc'::REGCLASS AND d.objid = p.oid AND d.deptype = 'e'
            )
        UNION ALL
        SELECT format('operator %s owned by %I', o.oid::REGOPERATOR, pg_get_userbyid(o.oprowner))
        FROM pg_operator AS o
        INNER JOIN pg_namespace AS n ON o.oprnamespace = n.oid
        WHERE
            n.nspname = ANY(searched)
            AND n.nspname <> 'pg_catalog'
            AND EXISTS (
                SELECT FROM pg_operator AS b
                WHERE b.oprnamespace = 'pg_catalog'::REGNAMESPACE AND b.oprname = o.oprname
            )
            AND NOT EXISTS (
                SELECT FROM pg_depend AS d
                WHERE d.classid = 'pg_operator'::REGCLASS AND d.objid = o.oid AND d.deptype = 'e'
            )
    ) AS found;
    IF shadows IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('refusing to run: %s object(s) named like built-ins would run in their place',
                             cardinality(shadows)),
            DETAIL = array_to_string(shadows, E'\n'),
            HINT = 'Drop them or move them out of the schemas on search_path; then take CREATE on those '
            'schemas away from PUBLIC and the application (rls roles does it for the store''s schema).';
    END IF;
    PERFORM set_config('search_path', caller_path, TRUE);
END
$$;
