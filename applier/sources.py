"""The upstream stores `tenant import` reads, opened read-only and never changed.

PostgreSQL is read in one READ ONLY, REPEATABLE READ transaction (one snapshot of every
table) and streamed with binary COPY, the bytes as the server sends them. A whatsmeow
SQLite file is opened through a `mode=ro` URI, read in one transaction, and its values
converted the way whatsmeow's Go driver (mattn/go-sqlite3 under database/sql) reads them.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from applier.database import connect, read_state, redact
from applier.errors import ApplierError
from applier.upstream_store import Shape, check_version

SQLITE_HEADER = b"SQLite format 3\x00"


class PostgresSource:
    """An upstream store in a PostgreSQL database, read in one READ ONLY snapshot."""

    kind = "postgresql"

    def __init__(self, dsn: str):
        self.label = redact(dsn)
        self.conn = connect(dsn, autocommit=False)
        self.conn.read_only = True
        self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        state = read_state(self.conn)
        if state.kind != "upstream-single-tenant":
            self.conn.close()
            what = {"empty": "no whatsmeow store", "multi-tenant": "a multi-tenant store (export a tenant instead)",
                    "conversion-in-progress": "a store whose online conversion was interrupted"}[state.kind]
            raise ApplierError(f"the source {self.label} holds {what}; import reads upstream single-tenant stores")
        self.version, self.compat = state.version, state.compat
        self.schema = self.conn.execute("SELECT current_schema()").fetchone()[0]
        try:
            check_version(self.version, self.compat, f"the source {self.label}")
        except ApplierError:
            self.conn.close()
            raise

    def shape(self) -> Shape:
        shape: Shape = {}
        for table, column, type_ in self.conn.execute(
            """
            SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod)
            FROM pg_class AS c JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE c.relnamespace = quote_ident(current_schema())::regnamespace AND c.relkind IN ('r', 'p')
              AND NOT c.relispartition AND c.relname LIKE 'whatsmeow\\_%' AND c.relname <> 'whatsmeow_version'
            ORDER BY c.relname, a.attnum
            """
        ):
            shape.setdefault(table, []).append((column, type_))
        return shape

    def _select(self, table: str, columns: list[str], prefix: str | None, where: str) -> sql.Composable:
        items = [sql.Identifier(c) for c in columns]
        if prefix is not None:
            items.insert(0, sql.SQL("{}::TEXT").format(sql.Literal(prefix)))
        return sql.SQL("SELECT {} FROM {} AS t {}").format(
            sql.SQL(", ").join(items), sql.Identifier(self.schema, table), sql.SQL(where))

    def count(self, table: str, where: str = "") -> int:
        query = sql.SQL("SELECT count(*) FROM {} AS t {}").format(sql.Identifier(self.schema, table), sql.SQL(where))
        return self.conn.execute(query).fetchone()[0]

    def device_jids(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            sql.SQL("SELECT jid FROM {} ORDER BY jid").format(sql.Identifier(self.schema, "whatsmeow_device")))]

    def copy_to(self, target: psycopg.Cursor, into: sql.Composable, table: str, columns: list[str], types: list[str],
                prefix: str | None = None, where: str = "") -> int:
        """Stream the rows into `COPY into FROM STDIN` in binary: the bytes PostgreSQL sends, as sent."""
        query = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(self._select(table, columns, prefix, where))
        with self.conn.cursor().copy(query) as out, target.copy(
                sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(into)) as sink:
            for block in out:
                sink.write(block)
        return target.rowcount

    def close(self) -> None:
        self.conn.rollback()
        self.conn.close()


def _text(value):
    if type(value) is bytes:  # database/sql reads a BLOB into a Go string as its bytes
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("a BLOB that is not UTF-8 text") from None
    if type(value) is not str:
        raise TypeError
    if "\x00" in value:
        raise ValueError("a NUL character, which PostgreSQL text cannot hold")
    return value


def _bytea(value):
    if type(value) is str:  # and a TEXT into []byte as its UTF-8 bytes
        return value.encode("utf-8")
    if type(value) is not bytes:
        raise TypeError
    return value


def _integer(value):
    if type(value) is not int:
        raise TypeError
    return value


def _boolean(value):
    # go-sqlite3 binds a Go bool as the integer 1 or 0 and reads an integer in a BOOLEAN column as val > 0.
    if type(value) is not int:
        raise TypeError
    return value > 0


def _uuid(value):
    # google/uuid writes its canonical text; its Scan takes text in any form Parse accepts, 16 raw bytes, and
    # reads an empty value as no UUID, which whatsmeow writes back as NULL.
    if type(value) is bytes:
        if len(value) == 16:
            return uuid.UUID(bytes=value)
        value = value.decode("utf-8", "replace")
    if type(value) is not str:
        raise TypeError
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        raise ValueError(f"{value[:40]!r}, which is not a UUID") from None


CONVERTERS = {"text": _text, "bytea": _bytea, "bigint": _integer, "integer": _integer, "boolean": _boolean,
              "uuid": _uuid}
SQLITE_CLASS = {bytes: "BLOB", str: "TEXT", int: "INTEGER", float: "REAL"}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteSource:
    """A whatsmeow SQLite file, opened read-only (`mode=ro`), read in one transaction."""

    kind = "sqlite"

    def __init__(self, path: Path):
        self.label = str(path)
        try:
            with open(path, "rb") as file:
                header = file.read(20)
        except OSError as exc:
            raise ApplierError(f"cannot read the source {path}: {exc.strerror}") from exc
        if header[:len(SQLITE_HEADER)] != SQLITE_HEADER:
            raise ApplierError(f"the source {path} is not an SQLite database (nor a PostgreSQL connection string)")
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
        # Even read-only, SQLite creates the -wal and -shm files of a database in WAL mode (header bytes
        # 18-19 are 2). Without a -wal file no connection has it open and every change is in the file
        # itself, so it is opened immutable and nothing appears beside it.
        if header[18:20] == b"\x02\x02" and not path.with_name(path.name + "-wal").exists():
            uri += "&immutable=1"
        self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            self.conn.execute("BEGIN")
            tables = {r[0] for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'whatsmeow\\_%' ESCAPE '\\'")}
            if "whatsmeow_version" not in tables:
                raise ApplierError(f"the source {path} holds no whatsmeow store (no whatsmeow_version table)")
            columns = {r[1] for r in self.conn.execute("PRAGMA table_info(whatsmeow_version)")}
            row = self.conn.execute(
                f"SELECT version, {'compat' if 'compat' in columns else 'NULL'} FROM whatsmeow_version").fetchone()
            if row is None:
                raise ApplierError(f"the source {path} holds no whatsmeow store (no version row)")
            if "business_id" in {r[1] for r in self.conn.execute("PRAGMA table_info(whatsmeow_device)")}:
                raise ApplierError(f"the source {path} is keyed by business_id, not an upstream store")
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise ApplierError(f"cannot read the source {path}: {exc}") from exc
        except ApplierError:
            self.conn.close()
            raise
        self.version, self.compat = row[0] or 0, row[1] or row[0] or 0
        self.tables = tables - {"whatsmeow_version"}
        try:
            check_version(self.version, self.compat, f"the source {path}")
        except ApplierError:
            self.conn.close()
            raise

    def shape(self) -> Shape:
        # upstream's SQL is the same text on both dialects, so a declared type reads as the PostgreSQL type.
        return {t: [(r[1], r[2].lower()) for r in self.conn.execute(f"PRAGMA table_info({_quoted(t)})")]
                for t in self.tables}

    def count(self, table: str, where: str = "") -> int:
        return self.conn.execute(f"SELECT count(*) FROM {_quoted(table)} AS t {where}").fetchone()[0]

    def device_jids(self) -> list[str]:
        return [_text(r[0]) for r in self.conn.execute("SELECT jid FROM whatsmeow_device ORDER BY jid")]

    def rows(self, table: str, columns: list[str], types: list[str], where: str = "") -> Iterator[tuple]:
        """The rows as PostgreSQL values, read the way whatsmeow's Go driver reads them."""
        converters = [CONVERTERS[t] for t in types]
        listed = ", ".join(f'"{c}"' for c in columns)
        try:
            rows = self.conn.execute(f"SELECT rowid, {listed} FROM {_quoted(table)} AS t {where}")
            yield from self._converted(table, columns, types, converters, rows)
        except sqlite3.Error as exc:  # such as text that is not UTF-8
            raise ApplierError(f"cannot read the source's {table}: {exc}; nothing was imported") from exc

    @staticmethod
    def _converted(table, columns, types, converters, rows) -> Iterator[tuple]:
        for row in rows:
            try:
                yield tuple(None if v is None else f(v) for f, v in zip(converters, row[1:]))
            except (TypeError, ValueError) as exc:
                for column, type_, f, value in zip(columns, types, converters, row[1:]):
                    try:
                        None if value is None else f(value)
                    except (TypeError, ValueError) as problem:
                        reason = str(problem) if str(problem) and not isinstance(problem, TypeError) else (
                            f"an SQLite {SQLITE_CLASS.get(type(value), type(value).__name__)} value")
                        raise ApplierError(f"the source's {table}.{column} (rowid {row[0]}) holds {reason}, "
                                           f"which whatsmeow does not write for a {type_} column; nothing was "
                                           "imported") from exc
                raise

    def copy_to(self, target: psycopg.Cursor, into: sql.Composable, table: str, columns: list[str], types: list[str],
                prefix: str | None = None, where: str = "") -> int:
        with target.copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(into)) as sink:
            sink.set_types((["text"] if prefix is not None else []) + types)
            head = (prefix,) if prefix is not None else ()
            for row in self.rows(table, columns, types, where):
                sink.write_row(head + row)
        return target.rowcount

    def close(self) -> None:
        self.conn.close()


def open_source(source: str) -> PostgresSource | SqliteSource:
    """A postgres:// or postgresql:// URL, else an existing file (SQLite), else a key=value string."""
    if source.startswith(("postgres://", "postgresql://")):
        return PostgresSource(source)
    path = Path(source)
    if path.is_file():
        return SqliteSource(path)
    if "=" in source:
        return PostgresSource(source)
    raise ApplierError(f"--from {source!r}: no such file, and not a PostgreSQL connection string "
                       "(postgresql://... or key=value pairs)")
