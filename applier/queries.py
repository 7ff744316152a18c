"""The query catalogue, schema/queries.sql: whatsmeow's store queries as they run on this schema.

Each entry is `-- name: NAME`, `-- params: a, b, …` (the names of $1, $2, …, possibly
continued on `--  ` lines) and the statement, which ends at a blank line. The tests prove
isolation and plans with these texts and the benchmark times them, so both read them from
here; `check-queries` reads users' files of the same format with `parse_entries`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from applier.steps import PACKAGE_ROOT

QUERIES_SQL = PACKAGE_ROOT / "schema" / "queries.sql"
NAME = "-- name:"
PARAMS = "-- params:"


@dataclass(frozen=True)
class Query:
    name: str
    params: tuple[str, ...]
    sql: str
    # Where the entry starts (its `-- name:` line), and the line its statement starts on.
    file: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)
    sql_line: int = field(default=0, compare=False)

    @property
    def verb(self) -> str:
        return self.sql.lstrip().split(None, 1)[0].upper()

    def run(self, conn: psycopg.Connection, values: dict) -> psycopg.RawCursor:
        """Execute with $n bound to values[params[n-1]], exactly as a Go driver sends it."""
        cur = psycopg.RawCursor(conn)
        cur.execute(self.sql, [values[name] for name in self.params])
        return cur


@dataclass(frozen=True)
class EntryError:
    """An entry, or text outside any entry, that is not in the catalogue's format."""

    name: str | None
    file: str
    line: int
    message: str


def parse_entries(text: str, file: str = "") -> tuple[list[Query], list[EntryError]]:
    """Every entry of a file in the catalogue's format, in order, and what does not parse.

    Comment lines outside entries (headers, banners) are allowed; any other text outside an
    entry is an error, and so is an entry without a `-- params:` line or without a statement.
    """
    lines = text.splitlines()
    queries: list[Query] = []
    errors: list[EntryError] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith(NAME):
            if line.strip() and not line.lstrip().startswith("--"):
                errors.append(EntryError(None, file, i + 1, "text outside an entry: every statement follows its "
                                         "`-- name:` and `-- params:` lines"))
                while i < len(lines) and lines[i].strip():
                    i += 1
            i += 1
            continue
        start = i
        name = line[len(NAME):].strip()
        i += 1
        if not name or len(name.split()) != 1:
            errors.append(EntryError(name or None, file, start + 1, "`-- name:` needs one name without spaces"))
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
        if i >= len(lines) or not lines[i].startswith(PARAMS):
            errors.append(EntryError(name, file, start + 1, "`-- name:` must be followed by a `-- params:` line "
                                     "(empty when the statement takes no parameters)"))
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
        param_text = lines[i][len(PARAMS):]
        i += 1
        while i < len(lines) and lines[i].startswith("--  "):
            param_text += "," + lines[i][2:]
            i += 1
        names = tuple(p.strip() for p in param_text.split(",") if p.strip())
        sql_start = i
        while i < len(lines) and lines[i].strip():
            i += 1
        statement = "\n".join(lines[sql_start:i]).strip()
        if not statement:
            errors.append(EntryError(name, file, start + 1, "the entry has no statement after its `-- params:` line"))
            continue
        queries.append(Query(name, names, statement, file, start + 1, sql_start + 1))
    return queries, errors


def load_queries(path: Path = QUERIES_SQL) -> dict[str, Query]:
    queries, errors = parse_entries(path.read_text(encoding="utf-8"), str(path))
    if errors:
        raise ValueError(f"{errors[0].file}:{errors[0].line}: {errors[0].message}")
    return {query.name: query for query in queries}
