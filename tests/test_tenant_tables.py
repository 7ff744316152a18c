"""The package's tenant tables are one list, written where a file must run on its own, and every copy agrees.

rls/, the audit, the foreign-object listing of v1003 and the Citus script are psql files that
run alone, so each names the tables itself; the applier's list is applier.upstream_store.TABLES.
Every copy must be that list, and every reader must find exactly those tables on a store where
someone planted look-alikes: a partitioned table keyed by business_id, a foreign table, a table
whose business_id was dropped, and tables that merely share the prefix.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from runners import ROOT
from store import ALLOWED_OBJECTS, EVENT_LOG, TENANT_TABLES

from applier import audit, rls, tenant
from applier.database import read_state
from applier.upstream_store import TABLES

MARKER = "tests/test_tenant_tables.py keeps every copy equal."
PACKAGE_TABLES = {*TABLES, "whatsmeow_version", EVENT_LOG, ALLOWED_OBJECTS}
COPIES = ["rls/enable.sql", "rls/disable.sql", "rls/force.sql", "rls/status.sql", "rls/roles.sql",
          "audits/00-schema.sql"]
LISTERS = ["upgrades/21-foreign-table-objects-and-event-bounds.sql", "upgrades/00-latest-schema.sql"]


def listed_after(text: str, start: int) -> list[str]:
    opening = text.index("IN (", start)
    return re.findall(r"'(whatsmeow_[a-z_]+)'", text[opening:text.index(")", opening)])


def test_the_tests_and_the_applier_name_the_same_tenant_tables():
    assert tuple(TENANT_TABLES) == TABLES and len(TABLES) == 16


@pytest.mark.parametrize("path", COPIES)
def test_every_psql_file_names_exactly_the_packages_tenant_tables(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, f"{path} selects its tables without the marked list"
    assert listed_after(text, text.index(MARKER)) == list(TABLES)


@pytest.mark.parametrize("path", LISTERS)
def test_the_foreign_object_listing_names_the_packages_tables(path):
    text = (ROOT / path).read_text(encoding="utf-8")
    body = text.index("CREATE FUNCTION whatsmeow_foreign_table_objects()")
    assert set(listed_after(text, text.index("c.relname IN", body))) == PACKAGE_TABLES


def test_the_citus_script_distributes_exactly_the_packages_tenant_tables():
    text = (ROOT / "schema" / "citus-distribute.sql").read_text(encoding="utf-8")
    distributed = re.findall(r"create_distributed_table\(\s*'(whatsmeow_[a-z_]+)'", text)
    assert sorted(distributed) == sorted(TABLES)


PLANTED = """
CREATE TABLE whatsmeow_extra_log (business_id TEXT NOT NULL, at BIGINT NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE whatsmeow_extra_log_2026 PARTITION OF whatsmeow_extra_log FOR VALUES FROM (0) TO (10);
CREATE TABLE extra_log_rest PARTITION OF whatsmeow_extra_log DEFAULT;
CREATE FOREIGN DATA WRAPPER planted_fdw;
CREATE SERVER planted_server FOREIGN DATA WRAPPER planted_fdw;
CREATE FOREIGN TABLE whatsmeow_remote (business_id TEXT NOT NULL) SERVER planted_server;
CREATE TABLE whatsmeow_dropped (business_id TEXT, note TEXT);
ALTER TABLE whatsmeow_dropped DROP COLUMN business_id;
CREATE TABLE whatsmeow_notes (note TEXT);
CREATE TABLE whatsmeow_keyed (business_id TEXT NOT NULL PRIMARY KEY);
CREATE TABLE whatsmeowish (business_id TEXT);
"""


def test_every_reader_of_the_store_finds_the_packages_tenant_tables_and_no_planted_one(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(PLANTED)
        rls.create_roles(conn)
        rls.enable(conn)
        policies = {row[0] for row in conn.execute(
            "SELECT tablename FROM pg_policies WHERE policyname = 'whatsmeow_tenant_isolation'")}
        status = {row.table for row in rls.read_status(conn)}
        audit.apply_audits(conn)
        audited = {row[0] for row in conn.execute(
            "SELECT relname FROM whatsmeow_audit.whatsmeow_tables WHERE business_id_attnum IS NOT NULL")}
        foreign = {row[0] for row in conn.execute("SELECT object FROM whatsmeow_audit.foreign_tables")}
        walked = {t.name for t in tenant.tenant_tables(conn)}
        granted = {row[0] for row in conn.execute(
            "SELECT c.relname FROM pg_class AS c WHERE c.relname LIKE 'whatsmeow%%' "
            "AND has_table_privilege('whatsmeow_app', c.oid, 'SELECT')")}
        state = read_state(conn)
    assert policies == status == audited == walked == set(TABLES)
    assert granted == set(TABLES) | {"whatsmeow_version"}
    assert foreign == {"whatsmeow_extra_log", "whatsmeow_remote", "whatsmeow_dropped", "whatsmeow_notes",
                       "whatsmeow_keyed"}
    assert state.keyed_tables == len(TABLES) and state.kind == "multi-tenant"
