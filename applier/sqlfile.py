"""Running the package's SQL files and reporting their failures, the same way for every command.

The files in rls/ and audits/ carry their own BEGIN/COMMIT for psql; the applier
blanks those two lines and supplies the transaction itself, so several files
apply together or not at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from applier.errors import ApplierError
from applier.steps import PACKAGE_ROOT, VERSION_TABLE_SQL, load_steps

# What to do about the failures people hit most, by SQLSTATE.
HINTS = {
    "42501": "connect as the role that owns the whatsmeow tables (for a fresh install: one that may create tables)",
    "55P03": "another session holds a lock on a whatsmeow table; retry when it is idle",
    "22023": "pass a valid business_id",
}


def read_wrapped(path: Path, label: str) -> str:
    """A psql file's text with its own BEGIN;/COMMIT; lines blanked (the caller supplies the
    transaction), so that line numbers in errors still match the file."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise ApplierError(f"cannot read {path}: {exc.strerror}") from exc
    statements = [i for i, line in enumerate(lines) if line.strip() and not line.startswith("--")]
    if not statements or lines[statements[0]] != "BEGIN;" or lines[statements[-1]] != "COMMIT;":
        raise ApplierError(f"{label}: expected the file to open with BEGIN; and end with COMMIT;")
    lines[statements[0]] = lines[statements[-1]] = ""
    return "\n".join(lines)


def sql_error(where: str, text: str | None, exc: psycopg.Error) -> ApplierError:
    """Name the file, line:column and SQLSTATE of a failed statement, and what to do about it."""
    position = exc.diag.statement_position
    if position and text:
        before = text[: int(position) - 1]
        where += f":{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"
    message = exc.diag.message_primary or str(exc).strip()
    if exc.diag.message_detail:
        message += ": " + "; ".join(exc.diag.message_detail.splitlines())
    detail = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
    todo = HINTS.get(exc.sqlstate or "")
    return ApplierError(f"{where}: {message}{detail} (SQLSTATE {exc.sqlstate})" + (f"; {todo}" if todo else ""))


def run_files(conn: psycopg.Connection, paths: list[Path], settings: dict[str, str] | None = None) -> None:
    """Run wrapped files in order inside one transaction (a savepoint if one is already open), after
    setting each of `settings` for that transaction, as psql users do with PGOPTIONS."""
    with conn.transaction():
        for setting, value in (settings or {}).items():
            conn.execute("SELECT set_config(%s, %s, TRUE)", (setting, value))
        for path in paths:
            label = path.relative_to(PACKAGE_ROOT).as_posix()
            text = read_wrapped(path, label)
            try:
                conn.execute(text)
            except psycopg.Error as exc:
                raise sql_error(label, text, exc) from exc


@contextmanager
def fresh_install_scratch(conn: psycopg.Connection, purpose: str) -> Iterator[str]:
    """The package's fresh install (the version table, then the v0 step, as dbutil runs them) in a
    schema of its own, first on the search_path, inside a transaction that is always rolled back: a
    reference to read, of which nothing stays. Yields the schema's name."""
    name = f"whatsmeow_{purpose}_{os.getpid()}"
    with conn.transaction(force_rollback=True):
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.Identifier(name)))
        conn.execute(VERSION_TABLE_SQL.read_text(encoding="utf-8"))
        conn.execute(load_steps()[0].sql)
        yield name
