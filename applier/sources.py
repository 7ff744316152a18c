"""The upstream stores `tenant import` reads, opened read-only and never changed.

PostgreSQL is read in one READ ONLY, REPEATABLE READ transaction (one snapshot of every
table) and streamed with binary COPY, the bytes as the server sends them. A whatsmeow
SQLite file is opened through a `mode=ro` URI, read in one transaction, and its values
converted the way whatsmeow's Go driver (mattn/go-sqlite3 under database/sql) reads them.
"""

from __future__ import annotations

import sqlite3
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from applier.database import connect_foreign
from applier.errors import ApplierError
from applier.upstream_store import Shape, check_version

SQLITE_HEADER = b"SQLite format 3\x00"


class PostgresSource:
    """An upstream store in a PostgreSQL database, read in one READ ONLY snapshot.

    The database is someone else's (applier.database.connect_foreign): its tables are named by schema
    and read with ONLY (no inheritance child joins in), only ordinary tables are read, and every column's
    type is checked against upstream's before a value is read, so no output function of that database runs.
    """

    kind = "postgresql"

    def __init__(self, dsn: str, quiet: bool = False):
        foreign = connect_foreign(dsn, "source", quiet=quiet)
        self.conn, self.schema, self.label = foreign.conn, foreign.schema, foreign.label
        try:
            self.conn.autocommit = False
            self.conn.read_only = True
            self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self.version, self.compat = self._read_version()
            check_version(self.version, self.compat, f"the source {self.label}")
        except BaseException:
            self.conn.close()
            raise

    def _table(self, table: str) -> sql.Composable:
        return sql.SQL("ONLY {}").format(sql.Identifier(self.schema, table))

    def _read_version(self) -> tuple[int, int]:
        relations = dict(self.conn.execute(
            "SELECT c.relname::text, c.relkind::text FROM pg_class AS c JOIN pg_namespace AS n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname LIKE 'whatsmeow\\_%%' "
            "AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            (self.schema,)).fetchall())
        if not relations:
            raise ApplierError(f"the source {self.label} holds no whatsmeow store (schema {self.schema}); "
                               "import reads upstream single-tenant stores")
        other = sorted(f"{name} ({KINDS.get(kind, kind)})" for name, kind in relations.items() if kind != "r")
        if other:
            raise ApplierError(f"the source {self.label} is not an upstream store: {', '.join(other)} "
                               "where upstream has tables; import reads ordinary tables only")
        columns = dict(self.conn.execute(
            "SELECT a.attname::text, a.atttypid = 'pg_catalog.int4'::pg_catalog.regtype FROM pg_attribute AS a "
            "WHERE a.attrelid = %s::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (sql.Identifier(self.schema, "whatsmeow_version").as_string(self.conn),)).fetchall()
            if "whatsmeow_version" in relations else [])
        if "business_id" in dict(self.conn.execute(
                "SELECT a.attname::text, 1 FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid "
                "JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                "AND c.relname = 'whatsmeow_device' AND NOT a.attisdropped", (self.schema,)).fetchall()):
            raise ApplierError(f"the source {self.label} holds a multi-tenant store (export a tenant instead); "
                               "import reads upstream single-tenant stores")
        if not columns.get("version") or columns.keys() - {"version", "compat"} or columns.get("compat") is False:
            raise ApplierError(f"the source {self.label} has no upstream whatsmeow_version table (version and "
                               "compat INTEGER); import reads upstream single-tenant stores")
        row = self.conn.execute(sql.SQL("SELECT version, {} FROM {} LIMIT 1").format(
            sql.SQL("compat") if "compat" in columns else sql.SQL("NULL::integer"),
            self._table("whatsmeow_version"))).fetchone()
        if row is None:
            raise ApplierError(f"the source {self.label} holds no whatsmeow store (no version row)")
        return row[0] or 0, row[1] or row[0] or 0

    def shape(self) -> Shape:
        shape: Shape = {}
        for table, column, type_ in self.conn.execute(
            """
            SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod)
            FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
            JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname LIKE 'whatsmeow\\_%%'
              AND c.relname <> 'whatsmeow_version'
            ORDER BY c.relname, a.attnum
            """, (self.schema,)
        ):
            # With search_path pinned to pg_catalog, a type of the source's own prints schema-qualified and
            # so never matches upstream's.
            shape.setdefault(table, []).append((column, type_))
        return shape

    def copy_to(self, target: psycopg.Cursor, into: sql.Composable, table: str, columns: list[str],
                types: list[str]) -> int:
        """Stream the rows into `COPY into FROM STDIN` in binary: the bytes PostgreSQL sends, as sent. Nothing
        the package sends there names the tenant: the target adds it."""
        query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT (FORMAT BINARY)").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), self._table(table))
        try:
            with self.conn.cursor().copy(query) as out, target.copy(
                    sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(into)) as sink:
                for block in out:
                    sink.write(block)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise ApplierError(f"cannot read the source's {table}: {exc.diag.message_primary} (row-level "
                               "security there is refused rather than run: import reads stores without it, or "
                               "log in to the source as a role it does not apply to); nothing was imported") from exc
        return target.rowcount

    def close(self) -> None:
        self.conn.rollback()
        self.conn.close()


KINDS = {"v": "a view", "m": "a materialized view", "f": "a foreign table", "p": "a partitioned table",
         "S": "a sequence", "i": "an index", "c": "a composite type", "I": "a partitioned index"}


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


def _integer_within(bits: int):
    """An SQLite integer for a PostgreSQL column of `bits`: one out of its range is refused, never wrapped."""
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def convert(value):
        if type(value) is not int:
            raise TypeError
        if not low <= value <= high:
            raise ValueError(f"{value}, out of the range of PostgreSQL's {bits}-bit integer ({low} to {high})")
        return value

    return convert


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


CONVERTERS = {"text": _text, "bytea": _bytea, "bigint": _integer_within(64), "integer": _integer_within(32),
              "boolean": _boolean,
              "uuid": _uuid}
SQLITE_CLASS = {bytes: "BLOB", str: "TEXT", int: "INTEGER", float: "REAL"}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteSource:
    """A whatsmeow SQLite file, opened read-only (`mode=ro`), read in one transaction."""

    kind = "sqlite"

    def __init__(self, path: Path, quiet: bool = False):
        # The file actually read is the one named everywhere, a link's target included.
        given, path = path, path.resolve()
        self.label = str(path)
        if path != given.absolute() and not quiet:
            print(f"reading {path} (the link {given} points to it)", file=sys.stderr)
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
            # An uploaded file is hostile: nothing in its schema may call a function, and a page that lies
            # about its cells is an error rather than a read out of bounds.
            self.conn.execute("PRAGMA trusted_schema = OFF")
            self.conn.execute("PRAGMA cell_size_check = ON")
            self.conn.execute("PRAGMA mmap_size = 0")
            self.conn.execute("BEGIN")
            virtual = [r[0] for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'whatsmeow\\_%' ESCAPE '\\' "
                "AND sql LIKE 'CREATE VIRTUAL TABLE%'")]
            if virtual:
                raise ApplierError(f"the source {path} is not an upstream store: {', '.join(sorted(virtual))} "
                                   "is a virtual table; import reads ordinary tables only")
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


def open_source(source: str, quiet: bool = False) -> PostgresSource | SqliteSource:
    """A postgres:// or postgresql:// URL, else an existing file (SQLite), else a key=value string."""
    if source.startswith(("postgres://", "postgresql://")):
        return PostgresSource(source, quiet)
    path = Path(source)
    if path.is_file():
        return SqliteSource(path, quiet)
    if "=" in source:
        return PostgresSource(source, quiet)
    raise ApplierError(f"--from {source!r}: no such file, and not a PostgreSQL connection string "
                       "(postgresql://... or key=value pairs)")
