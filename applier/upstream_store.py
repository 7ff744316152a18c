"""Upstream single-tenant stores, as `tenant import` reads them and `tenant export` writes them.

Upstream's shapes are not written down here a second time. v15 is upstream's own
definition, schema/upstream-v15.sql (its 00-latest-schema.sql, byte for byte); an older
store at vN has the v2 shape, schema/upstream-v2.sql, followed by upstream's own steps
03..N of upgrades/. Both are built in temporary tables inside the caller's transaction,
where they are read and, for older stores, filled and stepped to v15.

Sources are opened read-only: PostgreSQL in a READ ONLY, REPEATABLE READ transaction
(one snapshot of every table), SQLite through a `mode=ro` URI in one read transaction.
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
from applier.steps import PACKAGE_ROOT, load_steps

UPSTREAM_V15_SQL = PACKAGE_ROOT / "schema" / "upstream-v15.sql"
UPSTREAM_V2_SQL = PACKAGE_ROOT / "schema" / "upstream-v2.sql"
UPSTREAM_VERSION, UPSTREAM_COMPAT = 15, 8
OLDEST_IMPORTABLE = 2  # as for the in-place conversion
# go.mau.fi/util dbutil (upgrades.go) creates the version table with exactly this statement, on
# both dialects; SQLite keeps the text in sqlite_master, so it is kept verbatim.
DBUTIL_VERSION_TABLE = "CREATE TABLE whatsmeow_version (version INTEGER, compat INTEGER)"

# Parents before children, so every foreign key finds its row.
TABLES = (
    "whatsmeow_device", "whatsmeow_identity_keys", "whatsmeow_pre_keys", "whatsmeow_sessions",
    "whatsmeow_sender_keys", "whatsmeow_app_state_sync_keys", "whatsmeow_app_state_version",
    "whatsmeow_app_state_mutation_macs", "whatsmeow_contacts", "whatsmeow_chat_settings",
    "whatsmeow_message_secrets", "whatsmeow_privacy_tokens", "whatsmeow_nct_salt", "whatsmeow_lid_map",
    "whatsmeow_event_buffer", "whatsmeow_retry_buffer",
)
SQLITE_HEADER = b"SQLite format 3\x00"

Shape = dict[str, list[tuple[str, str]]]  # table -> [(column, type)], in column order


def upstream_v15_text() -> str:
    return UPSTREAM_V15_SQL.read_text(encoding="utf-8")


def upstream_v15_script() -> str:
    """A fresh upstream v15 store as dbutil makes it: the version table, upstream's definition, the row."""
    return (f"{DBUTIL_VERSION_TABLE};\n{upstream_v15_text()}\nDELETE FROM whatsmeow_version;\n"
            f"INSERT INTO whatsmeow_version (version, compat) VALUES ({UPSTREAM_VERSION}, {UPSTREAM_COMPAT});\n")


def _in_temp(conn: psycopg.Connection, statements: list[str]) -> None:
    """Run upstream's text with only the temporary schema on the path: its unqualified CREATE TABLEs
    make temporary tables, and its REFERENCES find them."""
    path, user = conn.execute("SELECT current_setting('search_path'), current_user").fetchone()
    conn.execute("SET LOCAL search_path = pg_temp")
    try:
        for text in statements:
            conn.execute(text)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ApplierError(
            f"{exc.diag.message_primary}: tenant import builds upstream's tables as temporary tables, so the role "
            f"needs TEMPORARY on the database (`rls roles` takes it from PUBLIC): GRANT TEMPORARY ON DATABASE "
            f"<database> TO {user}, or import as the database's owner; nothing was imported") from exc
    conn.execute("SELECT set_config('search_path', %s, TRUE)", (path,))


def build_shape(conn: psycopg.Connection, version: int) -> Shape:
    """Upstream's tables at `version`, empty, as temporary tables of this transaction."""
    if version == UPSTREAM_VERSION:
        texts = [upstream_v15_text()]
    else:
        steps = load_steps()
        texts = [UPSTREAM_V2_SQL.read_text(encoding="utf-8"), *(steps[v].sql for v in range(2, version))]
        texts.append("DROP TABLE whatsmeow_version")  # the v2 file records its version; not needed here
    _in_temp(conn, texts)
    return temp_shape(conn)


def step_to_v15(conn: psycopg.Connection, version: int) -> None:
    """Upstream's own steps vN+1..v15 over the temporary tables, rows included."""
    steps = load_steps()
    _in_temp(conn, [steps[v].sql for v in range(version, UPSTREAM_VERSION)])


def temp_shape(conn: psycopg.Connection) -> Shape:
    shape: Shape = {}
    for table, column, type_ in conn.execute(
        """
        SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod)
        FROM pg_class AS c JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'r' AND c.relname LIKE 'whatsmeow\\_%'
        ORDER BY c.relname, a.attnum
        """
    ):
        shape.setdefault(table, []).append((column, type_))
    return shape


def drop_temp(conn: psycopg.Connection, shape: Shape) -> None:
    conn.execute(sql.SQL("DROP TABLE {}").format(
        sql.SQL(", ").join(sql.Identifier("pg_temp", table) for table in shape)))


def shape_problems(expected: Shape, actual: Shape, version: int) -> list[str]:
    """Where a source differs from upstream's shape at its version: rows could not be read faithfully."""
    problems = [f"table {t} is missing" for t in expected if t not in actual]
    problems += [f"table {t} is not upstream's (v{version} has no such table)" for t in actual if t not in expected]
    for table in (t for t in expected if t in actual):
        theirs, ours = dict(actual[table]), dict(expected[table])
        problems += [f"column {table}.{c} is missing" for c in ours if c not in theirs]
        problems += [f"column {table}.{c} is not upstream's" for c in theirs if c not in ours]
        problems += [f"column {table}.{c} is {theirs[c]}, upstream's is {ours[c]}"
                     for c in ours if c in theirs and theirs[c] != ours[c]]
    return problems


def check_version(version: int, compat: int, where: str) -> None:
    if version < OLDEST_IMPORTABLE:
        raise ApplierError(f"{where} holds an upstream store at v{version}, older than v{OLDEST_IMPORTABLE}; "
                           "open it with whatsmeow once to upgrade it, then import it")
    if version > UPSTREAM_VERSION or compat > UPSTREAM_VERSION:
        raise ApplierError(f"{where} holds an upstream store at v{version} (compatible with v{compat}+), newer "
                           f"than upstream v{UPSTREAM_VERSION}, the newest this package knows")


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
        check_version(self.version, self.compat, f"the source {self.label}")

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
                header = file.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise ApplierError(f"cannot read the source {path}: {exc.strerror}") from exc
        if header != SQLITE_HEADER:
            raise ApplierError(f"the source {path} is not an SQLite database (nor a PostgreSQL connection string)")
        uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
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
        check_version(self.version, self.compat, f"the source {path}")

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
