"""An application login that plants look-alikes of built-ins gains nothing from them.

The database is one carried over from PostgreSQL 12-14: PUBLIC may CREATE in the
schema public, and an upgrade or a dump and restore keeps that grant. The login
`mallory`, a member of the application role, puts in public an overload of every
built-in function that the package's SQL calls, for the argument types a call
site may pass, and a look-alike of every operator it uses. Each planted object
counts its calls in a sequence, which no rollback undoes, and tries to make
mallory a superuser. Then every command runs, as a superuser and as a login of
the owner role: each one either refuses, naming what it found, or runs without
calling anything planted, and no tenant is redirected.
"""

from __future__ import annotations

import itertools
import re

import psycopg
import pytest
from psycopg import sql
from rls_helpers import APP, OWNER
from runners import ROOT, applier
from runners import psql as run_psql
from scratch import scratch_database
from store import UPSTREAM_VERSION, load_queries, params, seed
from upstream import make_store

from applier import rls

ATTACKER, VICTIM, OWNER_LOGIN = "mallory", "victim_app", "owner_login"
ACME, GLOBEX = "acme", "globex"
# What a call site may pass: the catalog's own types and the common scalars.
ARGUMENT_TYPES = ("text", "name", "regclass", "oid", "integer", "bigint", "boolean", "regnamespace")
# Arity 3 and more: the combinations of these.
FEW_TYPES = ("text", "name", "boolean", "integer")
OPERATORS = ("=", "<>", "~~", "!~~", "~", "!~", "~*", "||", "<", ">", "<=", ">=", "^@", "@>", "<@", "&&")
OPERAND_TYPES = ("text", "name", '"char"', "oid", "regclass", "integer", "boolean", "bytea", "regnamespace")
SOURCES = [path for folder in ("rls", "audits", "schema", "upgrades") for path in (ROOT / folder).glob("*.sql")]
SOURCES += list((ROOT / "applier").glob("*.py"))

# The body of every planted function: count the call, then try to take over.
BODY = """
BEGIN
    PERFORM pg_catalog.nextval('public.planted_calls'::pg_catalog.regclass);
    BEGIN
        ALTER ROLE mallory SUPERUSER;
    EXCEPTION WHEN insufficient_privilege THEN
        NULL;
    END;
    RETURN NULL;
END
"""


def _login(dsn: str, user: str) -> str:
    return f"{dsn} user={user}"


def _ensure_login(conn: psycopg.Connection, name: str, member_of: str) -> None:
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(member_of), sql.Identifier(name)))


def called_builtins(conn: psycopg.Connection) -> dict[str, list[tuple[int, bool, str]]]:
    """Every built-in function named in the package's SQL: {name: [(arity, variadic, return type)]}."""
    named = set()
    for path in SOURCES:
        named |= set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*\(", path.read_text(encoding="utf-8").lower()))
    rows = conn.execute(
        """
        SELECT p.proname, p.pronargs, p.provariadic <> 0,
               CASE WHEN t.typtype = 'p' OR p.proretset THEN 'text' ELSE format_type(p.prorettype, NULL) END
        FROM pg_proc AS p JOIN pg_type AS t ON t.oid = p.prorettype
        WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind = 'f' AND p.proname = ANY(%s)
        """,
        (sorted(named),),
    )
    found: dict[str, list[tuple[int, bool, str]]] = {}
    for name, arity, variadic, returns in rows:
        found.setdefault(name, []).append((arity, variadic, returns))
    return found


def plant(conn: psycopg.Connection, builtins: dict[str, list[tuple[int, bool, str]]]) -> int:
    """As the attacker: the look-alikes; returns how many objects were created."""
    created = 0
    with conn.transaction():
        for name, signatures in sorted(builtins.items()):
            shapes: dict[tuple[str, ...], str] = {}
            for arity, variadic, returns in signatures:
                for count in range(max(arity, 1), (arity + 3 if variadic else arity + 1)):
                    types = ARGUMENT_TYPES if count <= 2 else FEW_TYPES
                    for args in itertools.product(types, repeat=count):
                        shapes.setdefault(args, returns)
            for args, returns in shapes.items():
                conn.execute(sql.SQL("CREATE FUNCTION public.{}({}) RETURNS {} LANGUAGE plpgsql "
                                     "SET search_path = pg_catalog AS {}").format(
                    sql.Identifier(name), sql.SQL(", ").join(map(sql.SQL, args)), sql.SQL(returns),
                    sql.Literal(BODY)))
                created += 1
        for number, (left, right) in enumerate(itertools.product(OPERAND_TYPES, repeat=2)):
            conn.execute(sql.SQL("CREATE FUNCTION public.planted_operator_{}({}, {}) RETURNS BOOLEAN "
                                 "LANGUAGE plpgsql SET search_path = pg_catalog AS {}").format(
                sql.SQL(str(number)), sql.SQL(left), sql.SQL(right), sql.Literal(BODY)))
            for operator in OPERATORS:
                conn.execute(sql.SQL("CREATE OPERATOR public.{} (LEFTARG = {}, RIGHTARG = {}, "
                                     "FUNCTION = public.planted_operator_{})").format(
                    sql.SQL(operator), sql.SQL(left), sql.SQL(right), sql.SQL(str(number))))
                created += 1
    return created


def carry_over_and_plant(admin: psycopg.Connection, dsn: str) -> int:
    """PUBLIC may CREATE in public again (as on PostgreSQL 12-14), and the attacker plants."""
    admin.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
    admin.execute("CREATE SEQUENCE IF NOT EXISTS public.planted_calls")
    admin.execute("GRANT USAGE, SELECT, UPDATE ON SEQUENCE public.planted_calls TO PUBLIC")
    _ensure_login(admin, ATTACKER, APP)
    with psycopg.connect(_login(dsn, ATTACKER), autocommit=True) as attacker:
        return plant(attacker, called_builtins(admin))


def planted_calls(admin: psycopg.Connection) -> int:
    value, called = admin.execute("SELECT last_value, is_called FROM public.planted_calls").fetchone()
    return value if called else 0


def attacker_is_superuser(admin: psycopg.Connection) -> bool:
    return admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (ATTACKER,)).fetchone()[0]


@pytest.fixture(scope="module")
def planted(pg_cluster, template_db):
    """A two-tenant store with row-level security and roles, then carried over and planted; its DSN."""
    with scratch_database(pg_cluster, template_db) as dsn:
        with psycopg.connect(dsn, autocommit=True) as admin:
            seed(admin, ACME)
            seed(admin, GLOBEX)
            rls.create_roles(admin)
            rls.enable(admin)
            _ensure_login(admin, VICTIM, APP)
            _ensure_login(admin, OWNER_LOGIN, OWNER)
            assert carry_over_and_plant(admin, dsn) > 1000
            assert planted_calls(admin) == 0
            yield dsn


@pytest.fixture
def admin(planted):
    # The test's own look-ups must not resolve to the look-alikes either.
    with psycopg.connect(planted, autocommit=True, options="-c search_path=pg_catalog") as conn:
        calls = planted_calls(conn)
        yield conn
        assert planted_calls(conn) == calls, "a planted object was called"
        assert not attacker_is_superuser(conn)


COMMANDS = [
    ("status",), ("upgrade",), ("upgrade", "--dry-run"), ("rls", "roles"), ("rls", "enable"),
    ("rls", "disable"), ("rls", "status"), ("verify",), ("demo",),
]


@pytest.mark.parametrize("login", ["superuser", "owner"])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_applier_command_refuses_and_names_a_planted_look_alike(planted, admin, login, command):
    dsn = planted if login == "superuser" else _login(planted, OWNER_LOGIN)
    result = applier(*command, "--dsn", dsn)
    assert result.returncode == 2, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "refusing to run" in line and "public.format(text,text) owned by mallory" in line
    assert "operator public.~~(name,name) owned by mallory" in line


@pytest.mark.parametrize("login", ["superuser", "owner"])
def test_the_audit_reports_the_look_alikes_and_calls_none_of_them(planted, admin, login):
    dsn = planted if login == "superuser" else _login(planted, OWNER_LOGIN)
    result = applier("audit", "--dsn", dsn)
    assert result.returncode == 1, result.stderr
    assert "builtin_shadows" in result.stdout and "public.format(text,regclass) owned by mallory" in result.stdout
    assert "the rest of the audit did not run" in result.stdout


def test_the_psql_files_of_rls_and_audits_call_nothing_planted(planted, admin, psql):
    files = [ROOT / "rls" / name for name in ("tenant-context.sql", "enable.sql", "force.sql", "status.sql")]
    files += sorted((ROOT / "audits").glob("*.sql"))
    for login in (planted, _login(planted, OWNER_LOGIN)):
        result = run_psql(psql, login, *itertools.chain.from_iterable(("-f", str(f)) for f in files))
        assert result.returncode == 0, result.stderr
    # The views audit the reader's current schema; reading them calls nothing by name.
    with psycopg.connect(planted, autocommit=True) as reader:
        findings = reader.execute('SELECT "check", object, problem FROM whatsmeow_audit.findings').fetchall()
    by_check = {}
    for check, obj, problem in findings:
        by_check.setdefault(check, {})[obj] = problem
    # Named as the reader's search_path shows them: qualified where a built-in hides them.
    assert "format(text,text)" in by_check["foreign_objects"]
    assert "operator public.=(text,text)" in by_check["foreign_objects"]
    assert by_check["create_privileges"] == {
        "schema public": "PUBLIC holds CREATE on the store's schema: an object it creates there can stand in "
        "for one the package or the application uses (rls roles takes it away)",
    }


def test_another_login_of_the_application_is_not_redirected(planted, admin):
    # Every read of the catalogue, in the victim's own session, whose search_path holds the look-alikes.
    reads = [query for query in load_queries().values() if query.verb == "SELECT"]
    with psycopg.connect(_login(planted, VICTIM), autocommit=True) as victim:
        for query in reads:
            with victim.transaction(force_rollback=True):
                victim.execute("SELECT whatsmeow_set_tenant(%s)", (GLOBEX,))
                query.run(victim, params(GLOBEX))
        with victim.transaction():
            victim.execute("SELECT whatsmeow_set_tenant(%s)", (GLOBEX,))
            tenants = {row[0] for row in victim.execute("SELECT business_id FROM whatsmeow_device")}
    assert tenants == {GLOBEX}


def test_roles_takes_create_away_and_re_owns_only_the_packages_functions(pg_cluster, template_db, psql):
    with scratch_database(pg_cluster, template_db) as dsn, psycopg.connect(dsn, autocommit=True) as admin:
        rls.create_roles(admin)
        admin.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        database = admin.execute("SELECT current_database()").fetchone()[0]
        admin.execute(sql.SQL("GRANT TEMPORARY ON DATABASE {} TO PUBLIC").format(sql.Identifier(database)))
        _ensure_login(admin, ATTACKER, APP)
        with psycopg.connect(_login(dsn, ATTACKER), autocommit=True) as attacker:
            attacker.execute("CREATE FUNCTION public.whatsmeow_every_tenant() RETURNS SETOF TEXT LANGUAGE sql "
                             "SECURITY DEFINER AS 'SELECT business_id FROM public.whatsmeow_device'")
        result = run_psql(psql, dsn, "-f", str(ROOT / "rls" / "tenant-context.sql"),
                          "-f", str(ROOT / "rls" / "roles.sql"))
        assert result.returncode == 0, result.stderr
        assert "revoked CREATE on schema public from PUBLIC" in result.stderr
        assert "revoked TEMPORARY on database" in result.stderr
        owner = admin.execute("SELECT proowner::regrole::text FROM pg_proc WHERE proname = 'whatsmeow_every_tenant'")
        assert owner.fetchone()[0] == ATTACKER
        with psycopg.connect(_login(dsn, ATTACKER), autocommit=True) as attacker:
            for statement in ("CREATE FUNCTION public.format(TEXT, TEXT) RETURNS TEXT LANGUAGE sql AS 'SELECT $2'",
                              "CREATE TEMP TABLE whatsmeow_sessions (x INT)"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    attacker.execute(statement)
        result = applier("audit", "--json", "--dsn", dsn)
        assert result.returncode == 1
        assert '"object": "whatsmeow_every_tenant()"' in result.stdout


@pytest.mark.parametrize("route", ["applier", "psql"])
def test_a_fresh_install_into_a_planted_database_is_refused_unchanged(new_database, psql, route):
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as admin:
        assert carry_over_and_plant(admin, dsn) > 1000
        if route == "applier":
            result = applier("upgrade", "--dsn", dsn)
            assert result.returncode == 2 and "refusing to run" in result.stderr
        else:
            result = run_psql(psql, dsn, "-f", str(ROOT / "schema" / "latest.sql"))
            assert result.returncode == 3 and "refusing to run" in result.stderr
        assert admin.execute("SELECT to_regclass('whatsmeow_version')").fetchone()[0] is None
        assert planted_calls(admin) == 0 and not attacker_is_superuser(admin)


@pytest.mark.parametrize("route", ["offline", "online", "psql"])
def test_converting_a_planted_upstream_store_is_refused_unchanged(new_database, psql, route):
    dsn = new_database()
    make_store(dsn, UPSTREAM_VERSION)
    with psycopg.connect(dsn, autocommit=True) as admin:
        assert carry_over_and_plant(admin, dsn) > 1000
        if route == "psql":
            result = run_psql(psql, dsn, "-v", "business_id=acme", "-f", str(ROOT / "schema" / "adopt.sql"))
            assert result.returncode == 3 and "refusing to run" in result.stderr
        else:
            flags = ["--online"] if route == "online" else []
            result = applier("upgrade", "--adopt-business-id", ACME, *flags, "--dsn", dsn)
            assert result.returncode == 2 and "refusing to run" in result.stderr
        assert admin.execute("SELECT version FROM whatsmeow_version").fetchone()[0] == UPSTREAM_VERSION
        assert admin.execute(
            "SELECT count(*) FROM pg_attribute WHERE attname = 'business_id' AND attrelid::regclass::text LIKE 'whatsmeow%%'"
        ).fetchone()[0] == 0
        assert planted_calls(admin) == 0 and not attacker_is_superuser(admin)


def test_the_planted_set_covers_the_calls_of_the_package(planted, admin):
    # The look-alikes are only as good as the list of names: the ones the attacks used must be on it.
    names = set(called_builtins(admin))
    assert {"format", "quote_ident", "current_setting", "set_config", "current_schema", "to_json"} <= names
