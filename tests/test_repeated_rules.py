"""Rules that psql files running on their own must each write out, kept equal to their one definition.

The routine list: rls/roles.sql re-owns the package's routines and the audit's foreign_objects
tells them from foreign ones; both name them, and both must name exactly what an install creates.
The business_id rule: the SQL functions that refuse an invalid id word it as applier.tenancy does.
(The tenant tables' list has its own module, tests/test_tenant_tables.py.)
"""

from __future__ import annotations

import re

from runners import ROOT

from applier import rls
from applier.tenancy import VALIDITY_RULE

ROUTINE_LISTS = ["rls/roles.sql", "audits/50-privileges.sql"]


def listed_routines(path: str) -> set[str]:
    text = (ROOT / path).read_text(encoding="utf-8")
    return set(re.findall(r"'(whatsmeow_[a-z_]+\([a-z, ]*\))'", text))


def test_roles_and_the_audit_name_the_same_routines():
    roles, audit = (listed_routines(path) for path in ROUTINE_LISTS)
    assert roles == audit and len(roles) > 10


def test_the_routine_list_is_what_an_install_with_the_tenant_context_creates(db):
    rls.create_roles(db)  # rls/tenant-context.sql, then roles.sql
    installed = {row[0] for row in db.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p "
        "WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'whatsmeow\\_%%'")}
    assert listed_routines("rls/roles.sql") == installed


def test_every_sql_refusal_of_an_invalid_business_id_words_the_rule_as_the_applier_does():
    copies = {}
    for path in [*(ROOT / "upgrades").glob("*.sql"), *(ROOT / "rls").glob("*.sql")]:
        for rule in re.findall(r"invalid business_id %s?: (must be [^']*)'", path.read_text(encoding="utf-8")):
            copies.setdefault(rule, []).append(path.name)
    assert list(copies) == [VALIDITY_RULE], copies
    assert sum(len(files) for files in copies.values()) >= 5
