"""`check-queries`: the package's catalogue passes, every deliberate leak of tests/leaking-queries.sql is
reported with its file, line, table and tenants, refused input never runs, and the database given is
left as it was.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import psycopg
import pytest
from scratch import scratch_database
from store import ROOT, seed

from applier import catalog
from applier.cli import main

LEAKING = ROOT / "tests" / "leaking-queries.sql"
CATALOGUE = ROOT / "schema" / "queries.sql"


def check(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check-queries", *args])
    return code, out.getvalue(), err.getvalue()


def state(dsn: str) -> dict:
    """What a run could change: the catalog, every row, the roles and the schemas."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {
            "catalog": catalog.snapshot(conn),
            "rows": conn.execute("SELECT business_id, jid, push_name FROM whatsmeow_device ORDER BY 1").fetchall(),
            "sessions": conn.execute("SELECT * FROM whatsmeow_sessions ORDER BY 1").fetchall(),
            "roles": conn.execute("SELECT rolname FROM pg_roles ORDER BY 1").fetchall(),
            "schemas": conn.execute("SELECT nspname FROM pg_namespace ORDER BY 1").fetchall(),
        }


@pytest.fixture(scope="module")
def store_dsn(pg_cluster, template_db):
    """A store of the user's own, with rows of a tenant that the check's tenants never meet."""
    with scratch_database(pg_cluster, template_db) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            seed(conn, "users-own-tenant")
        yield dsn


@pytest.fixture(scope="module")
def leaking(store_dsn):
    before = state(store_dsn)
    code, out, err = check(str(LEAKING), "--dsn", store_dsn, "--json")
    return {"code": code, "doc": json.loads(out), "err": err, "before": before, "after": state(store_dsn)}


def entry_lines(path: Path) -> dict[str, int]:
    lines = path.read_text().splitlines()
    return {line.split(":", 1)[1].strip(): n for n, line in enumerate(lines, 1) if line.startswith("-- name:")}


def test_the_package_catalogue_keeps_to_its_tenant(store_dsn):
    code, out, err = check(str(CATALOGUE), "--dsn", store_dsn, "--json")
    doc = json.loads(out)
    unsafe = {q["name"]: q["findings"] for q in doc["queries"] if q["findings"]}
    assert (code, unsafe) == (0, {}), err
    assert len(doc["queries"]) == 69 and doc["checked"] == 69 and doc["plan_tenants"] == 300


def test_every_deliberate_leak_is_reported_and_bad_input_refused(leaking):
    kinds = {q["name"]: sorted({f["kind"] for f in q["findings"]}) for q in leaking["doc"]["queries"]}
    plan = "plan-not-proportional"
    assert kinds == {
        "safeSessionQuery": [],
        "sessionWithoutTenant": [plan, "reads-other-tenant"],
        "contactsJoinedOnJidAlone": [plan, "reads-other-tenant"],
        "identityCountBySubSelect": [plan, "reads-other-tenant"],
        "contactsWithAnEscapingOr": [plan, "reads-other-tenant"],
        "deleteSessionOfEveryTenant": [plan, "writes-other-tenant"],
        "renameContactEverywhere": [plan, "writes-other-tenant"],
        "pushNameFromAnyTenant": [plan, "reads-other-tenant"],
        "lidMappingForAFixedTenant": ["fails-under-rls", "writes-other-tenant"],
        "sessionsByLowercaseTenant": [plan],
        "dropSessions": ["ddl"],
        "beginTransaction": ["transaction-statement"],
        "twoStatements": ["not-one-query"],
        "unknownParameter": ["unknown-parameter"],
    }
    refused = sorted(q["name"] for q in leaking["doc"]["queries"] if q["refused"])
    assert refused == ["beginTransaction", "dropSessions", "twoStatements", "unknownParameter"]
    assert leaking["code"] == 2, "refused input is an input error, and wins over findings"


def test_each_query_is_reported_with_its_file_and_line(leaking):
    lines = entry_lines(LEAKING)
    reported = {q["name"]: (q["file"], q["line"]) for q in leaking["doc"]["queries"]}
    assert reported == {name: (str(LEAKING), line) for name, line in lines.items()}


def _details(leaking, name: str) -> str:
    (query,) = [q for q in leaking["doc"]["queries"] if q["name"] == name]
    return "\n".join(f["detail"] for f in query["findings"] if f["kind"] != "plan-not-proportional")


def test_a_leak_names_the_table_the_other_tenant_and_the_leaking_rows(leaking):
    escaping_or = _details(leaking, "contactsWithAnEscapingOr")
    assert "Push name of tenant_b" in escaping_or and "tenant_b's rows read in whatsmeow_contacts" in escaping_or
    assert "Push name of tenant-a" in escaping_or, "run for tenant_b, tenant-a's row leaks too"
    assert "tenant_b's rows read in whatsmeow_lid_map" in _details(leaking, "contactsJoinedOnJidAlone")
    assert "tenant_b's rows read in whatsmeow_identity_keys" in _details(leaking, "identityCountBySubSelect")
    assert "whatsmeow_sessions: tenant_b's 1 row became 0" in _details(leaking, "deleteSessionOfEveryTenant")
    assert "whatsmeow_contacts: tenant_b's 1 row changed" in _details(leaking, "renameContactEverywhere")
    fixed = _details(leaking, "lidMappingForAFixedTenant")
    assert "whatsmeow_lid_map: tenant_b's 1 row became 2" in fixed and "SQLSTATE 42501" in fixed


def test_refusals_name_the_line_at_fault(leaking):
    lines = entry_lines(LEAKING)
    assert f"line {lines['unknownParameter'] + 1}: no store column is called device_jid" in _details(
        leaking, "unknownParameter")
    # PostgreSQL gives no position for a second statement: the line is where the statement starts.
    assert f"line {lines['twoStatements'] + 2}: cannot insert multiple commands" in _details(leaking, "twoStatements")


def test_the_database_given_is_left_unchanged(leaking):
    assert leaking["after"] == leaking["before"]
    assert "the database is unchanged" in leaking["err"]


# Sequences outside the scratch store: nextval() is never rolled back, so they show whether a statement ran.
PROBE_ENTRIES = """\
-- name: runs
-- params: business_id
SELECT jid FROM whatsmeow_device WHERE business_id = $1 AND nextval('public.probe_ran') > 0;

-- name: ddl
-- params:
CREATE TABLE probe_copy AS SELECT nextval('public.probe_refused') AS n;

-- name: transaction
-- params:
COMMIT;

-- name: twoStatements
-- params: business_id
SELECT nextval('public.probe_refused'), $1;
SELECT nextval('public.probe_refused');

-- name: unknownParameter
-- params: business_id, shoe_size
SELECT nextval('public.probe_refused'), $1, $2;

-- name: syntax
-- params: business_id
SELECT nextval('public.probe_refused')
FROM whatsmeow_device WHERE business_id = $1 ORDER;

-- name: unusedParameter
-- params: business_id, our_jid
SELECT nextval('public.probe_refused'), jid FROM whatsmeow_device WHERE business_id = $1;
"""


def test_refused_statements_are_never_run(store_dsn, tmp_path):
    path = tmp_path / "probe.sql"
    path.write_text(PROBE_ENTRIES)
    with psycopg.connect(store_dsn, autocommit=True) as conn:
        for name in ("probe_ran", "probe_refused"):
            conn.execute(f"CREATE SEQUENCE public.{name}")
            conn.execute(f"GRANT USAGE, UPDATE ON SEQUENCE public.{name} TO PUBLIC")
        try:
            code, out, _ = check(str(path), "--dsn", store_dsn, "--json", "--no-plans")
            called = conn.execute("SELECT (SELECT is_called FROM public.probe_ran), "
                                  "(SELECT is_called FROM public.probe_refused)").fetchone()
        finally:
            conn.execute("DROP SEQUENCE public.probe_ran, public.probe_refused")
    refused = {q["name"]: q["findings"][0]["kind"] for q in json.loads(out)["queries"] if q["refused"]}
    assert refused == {"ddl": "ddl", "transaction": "transaction-statement", "twoStatements": "not-one-query",
                       "unknownParameter": "unknown-parameter", "syntax": "parse-error",
                       "unusedParameter": "parameter-mismatch"}
    assert (code, called) == (2, (True, False)), "the accepted query ran, no refused one did"


def test_a_parse_error_points_at_the_line_of_the_file(tmp_path, store_dsn):
    path = tmp_path / "broken.sql"
    path.write_text("-- a header comment\n\n"
                    "-- name: fine\n-- params: business_id\n"
                    "SELECT jid FROM whatsmeow_device WHERE business_id = $1;\n\n"
                    "-- name: syntax\n-- params: business_id\nSELECT jid\nFROM whatsmeow_device\nWHERE ORDER;\n\n"
                    "-- name: noParams\nSELECT 1;\n\n"
                    "SELECT 'outside any entry';\n")
    code, out, _ = check(str(path), "--dsn", store_dsn, "--json", "--no-plans")
    text = path.read_text().splitlines()
    found = {(q["name"], q["line"], f["kind"], f["detail"].split(":")[0])
             for q in json.loads(out)["queries"] for f in q["findings"]}
    outside = text.index("SELECT 'outside any entry';") + 1
    assert found == {
        ("syntax", text.index("-- name: syntax") + 1, "parse-error", f"line {text.index('WHERE ORDER;') + 1}"),
        ("noParams", text.index("-- name: noParams") + 1, "parse-error",
         f"line {text.index('-- name: noParams') + 1}"),
        ("(none)", outside, "parse-error", f"line {outside}"),
    }
    assert code == 2


def test_findings_alone_exit_1_and_a_safe_file_exits_0(tmp_path, store_dsn):
    leak = tmp_path / "leak.sql"
    leak.write_text("-- name: leak\n-- params: our_jid\nSELECT jid FROM whatsmeow_device WHERE jid = $1;\n")
    safe = tmp_path / "safe.sql"
    safe.write_text("-- name: safe\n-- params: business_id, our_jid\n"
                    "SELECT jid FROM whatsmeow_device WHERE business_id = $1 AND jid = $2;\n")
    assert check(str(leak), "--dsn", store_dsn, "--no-plans", "--quiet")[0] == 1
    code, out, _ = check(str(safe), "--dsn", store_dsn, "--quiet")
    assert code == 0
    assert re.search(r"safe\.sql:1: safe: ok\n", out)
    assert out.splitlines()[-1].startswith("result: 1 queries, 0 with findings, 0 refused unrun")


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    ("-- only a comment\n", "holds no query"),
])
def test_a_file_that_cannot_be_checked_is_one_error_line(tmp_path, store_dsn, content, message):
    path = tmp_path / "queries.sql"
    if content is not None:
        path.write_text(content)
    code, out, err = check(str(path), "--dsn", store_dsn)
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err


def test_the_testing_page_shows_the_plugin_test_file_as_it_is():
    page = (ROOT / "docs" / "testing-with-pytest.md").read_text()
    shown = page.split("```python\n", 1)[1].split("```\n", 1)[0]
    assert shown == (ROOT / "tests" / "test_pytest_plugin.py").read_text()


def test_a_login_that_may_not_build_the_scratch_store_gets_one_error_line(store_dsn):
    with psycopg.connect(store_dsn, autocommit=True) as conn:
        conn.execute("CREATE ROLE check_queries_nobody LOGIN")
        try:
            nobody = store_dsn.replace("user=postgres", "user=check_queries_nobody")
            code, out, err = check(str(CATALOGUE), "--dsn", nobody)
        finally:
            conn.execute("DROP ROLE check_queries_nobody")
    assert (code, out) == (2, "")
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "cannot build the scratch store" in line and "CREATEROLE" in line
