"""The query catalogue in both forms: tenant (schema/queries.sql) and upstream's single-tenant original.

Upstream's form is the tenant form without business_id: the `business_id = $1`
filters, the business_id column of inserts and conflict targets go, and the
parameters shift back by one. Where the catalogue rewrote a query so that a
prepared statement keeps one plan, UPSTREAM_SPELLING puts upstream's text back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from applier.queries import Query, load_queries

# The catalogue's plan-caching forms (see schema/queries.sql) back to upstream's own text.
UPSTREAM_SPELLING = (
    (r"any\(array\(SELECT unnest\((\$\d+)::TEXT\[\]\)\)\)", r"any(\1)"),
    (r"\(SELECT (\$\d+)\) LIKE", r"\1 LIKE"),
    # getMsgSecret and getPrivacyToken: upstream's CASE stands in the OR itself, not in a sub-select.
    (r"(?s)= \(\s*SELECT\s+CASE\b(.*?)\bEND\s*\)", r"= (CASE\1END)"),
    (r"\s+AND starts_with\(\w+, substring\([^\n]*? FROM '\^\[\^%_\\\\\]\*'\)\)", ""),
)


@dataclass(frozen=True)
class Form(Query):
    """A catalogue query in one of its two forms."""

    def pgbench(self) -> str:
        """The statement with :param variables in place of $n, for a pgbench script."""
        return re.sub(r"\$(\d+)", lambda m: ":" + self.params[int(m[1]) - 1], self.sql).rstrip(";") + ";"


def upstream_sql(sql: str) -> str:
    out = sql
    out = re.sub(r"\s*\bWHERE business_id = \$1;", ";", out)
    out = re.sub(r"\b(?:lm\.)?business_id = \$1\s+AND\s+", "", out)
    out = re.sub(r"\((\s*)business_id,\s*", r"(\1", out)
    out = re.sub(r"\(\$1,\s*", "(", out)
    out = re.sub(r"SELECT\n(\s*)business_id,\n\s*", r"SELECT\n\1", out)
    for pattern, upstream in UPSTREAM_SPELLING:
        out = re.sub(pattern, upstream, out)
    out = re.sub(r"\$(\d+)", lambda m: f"${int(m[1]) - 1}", out)
    if "business_id" in out or "$0" in out:
        raise ValueError(f"cannot derive the upstream form of:\n{sql}")
    return out


def forms() -> tuple[dict[str, Form], dict[str, Form]]:
    """(tenant forms, upstream forms) of every catalogue query, by name."""
    tenant, upstream = {}, {}
    for name, query in load_queries().items():
        tenant[name] = Form(name, query.params, query.sql)
        upstream[name] = Form(name, query.params[1:], upstream_sql(query.sql))
    return tenant, upstream
