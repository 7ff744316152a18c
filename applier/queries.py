"""The query catalogue, schema/queries.sql: whatsmeow's store queries as they run on this schema.

Each entry is `-- name: NAME`, `-- params: a, b, …` (the names of $1, $2, …, possibly
continued on `--  ` lines) and the statement. The tests prove isolation and plans with
these texts and the benchmark times them, so both read them from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg

from applier.steps import PACKAGE_ROOT

QUERIES_SQL = PACKAGE_ROOT / "schema" / "queries.sql"
ENTRY = re.compile(r"^-- name: (\S+)\n-- params: ((?:.+\n)(?:--  +.+\n)*)((?:(?!--).*\n?)+?)(?=\n|\Z)", re.M)


@dataclass(frozen=True)
class Query:
    name: str
    params: tuple[str, ...]
    sql: str

    @property
    def verb(self) -> str:
        return self.sql.lstrip().split(None, 1)[0].upper()

    def run(self, conn: psycopg.Connection, values: dict) -> psycopg.RawCursor:
        """Execute with $n bound to values[params[n-1]], exactly as a Go driver sends it."""
        cur = psycopg.RawCursor(conn)
        cur.execute(self.sql, [values[name] for name in self.params])
        return cur


def load_queries() -> dict[str, Query]:
    text = QUERIES_SQL.read_text(encoding="utf-8")
    queries = {}
    for match in ENTRY.finditer(text):
        names = tuple(p.strip() for p in match[2].replace("--", "").replace("\n", ",").split(",") if p.strip())
        queries[match[1]] = Query(match[1], names, match[3].strip())
    return queries
