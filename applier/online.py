"""`upgrade --online --adopt-business-id ID`: convert a live upstream store without long locks.

The target is not written down a second time: it is read from the fresh-install
step, installed into a scratch schema inside a transaction that is rolled back.
Every phase checks the catalog before acting, so a run killed at any point is
finished by the next one. Exclusive locks are taken only for metadata changes,
with a short lock_timeout and bounded retries, so writers queue behind the
converter for at most about that long.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from applier.errors import ApplierError
from applier.sqlfile import fresh_install_scratch
from applier.steps import Step
from applier.tenancy import (
    EVENT_LOG_ROUTINE, EVENT_PRUNE_ROUTINE, VALIDITY_FUNCTION, ensure_validity_function, step_creating,
)

TEMP_SUFFIX = "_online"
# The package's tables without business_id (the tenant event log, the owner's allow-list of table
# objects) are not converted from upstream tables: the steps that created them run as they are, after
# the conversion, with their routines, oldest first.
EVENT_LOG = "whatsmeow_tenant_events"
ALLOWED_OBJECTS = "whatsmeow_allowed_table_objects"
# Each table, with a routine the step that created it creates too.
OWN_TABLES = {EVENT_LOG: EVENT_LOG_ROUTINE, ALLOWED_OBJECTS: EVENT_PRUNE_ROUTINE}


def own_steps() -> list[tuple[str, Step]]:
    """Each of the package's own tables with the step that created it, in step order."""
    return sorted(((table, step_creating(routine)) for table, routine in OWN_TABLES.items()),
                  key=lambda pair: pair[1].to_version)


def own_routines() -> set[str]:
    return {name for _, step in own_steps() for name in re.findall(r"^CREATE FUNCTION (\w+)\(", step.sql, re.M)}


@dataclass
class Target:
    """What the fresh install creates, per table, in creation order (parents first)."""

    version_comment: str | None = None
    # The other routines, as CREATE OR REPLACE statements, and whether PUBLIC loses EXECUTE.
    routines: list[tuple[str, str, bool]] = field(default_factory=list)  # signature, definition, revoke from PUBLIC
    tables: list[str] = field(default_factory=list)
    checks: dict[str, tuple[str, str]] = field(default_factory=dict)  # table -> (name, definition)
    keys: list[tuple[str, str, str, list[str]]] = field(default_factory=list)  # table, name, p/u, columns
    foreign_keys: list[tuple[str, str, str]] = field(default_factory=list)  # table, name, definition
    indexes: list[tuple[str, str, list[str], str | None]] = field(default_factory=list)  # table, name, columns, WHERE
    collations: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (table, column) -> type, collation
    # Columns the multi-tenant line added after upstream's, such as message secrets' stored_at.
    added_columns: list[tuple[str, str, str, bool, str | None]] = field(default_factory=list)  # table, name, type,
    # NOT NULL, default

    def column(self, table: str, name: str) -> sql.Composable:
        """A key column as an index expression, in the collation the column will have."""
        if (table, name) in self.collations:
            return sql.SQL("{} COLLATE {}").format(sql.Identifier(name), sql.Identifier(self.collations[table, name][1]))
        return sql.Identifier(name)


def read_target(conn: psycopg.Connection) -> Target:
    target = Target()
    with fresh_install_scratch(conn, "reference") as scratch:
        target.version_comment = conn.execute("SELECT obj_description('whatsmeow_version'::regclass)").fetchone()[0]
        target.routines = [
            (signature.removeprefix(f"{scratch}."), definition.replace(f"CREATE OR REPLACE {kind} {scratch}.", f"CREATE OR REPLACE {kind} "),
             revoke)
            for signature, definition, kind, revoke in conn.execute(
                """
                SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid),
                       CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                       p.proacl IS NOT NULL AND NOT EXISTS (SELECT FROM aclexplode(p.proacl) AS g WHERE g.grantee = 0)
                FROM pg_proc AS p
                WHERE p.pronamespace = quote_ident(current_schema())::regnamespace
                  AND p.proname <> %s AND NOT p.proname = ANY(%s)
                ORDER BY p.oid
                """, (VALIDITY_FUNCTION, sorted(own_routines())))]
        target.tables = [r[0] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = quote_ident(current_schema())::regnamespace "
            "AND relkind = 'r' AND relname <> 'whatsmeow_version' AND NOT relname = ANY(%s) ORDER BY oid",
            (list(OWN_TABLES),))]
        for table, name, kind, definition, columns in conn.execute(
            """
            SELECT c.conrelid::regclass::text, c.conname, c.contype::text, pg_get_constraintdef(c.oid),
                   ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, o)
                         JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o)
            FROM pg_constraint AS c WHERE c.connamespace = quote_ident(current_schema())::regnamespace ORDER BY c.oid
            """
        ):
            if kind == "c" and columns == ["business_id"]:
                target.checks[table] = (name, definition)
            elif kind in ("p", "u"):
                target.keys.append((table, name, kind, columns))
            elif kind == "f":
                target.foreign_keys.append((table, name, definition))
        target.indexes = [tuple(r) for r in conn.execute(
            """
            SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text,
                   ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o)
                         JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o),
                   pg_get_expr(i.indpred, i.indrelid)
            FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid
            WHERE c.relnamespace = quote_ident(current_schema())::regnamespace
              AND NOT EXISTS (SELECT FROM pg_constraint AS con WHERE con.conindid = i.indexrelid)
            ORDER BY i.indexrelid
            """
        )]
        # Columns whose collation is not the database default, such as the C-collated peer ids.
        target.collations = {(table, column): (type_, collation) for table, column, type_, collation in conn.execute(
            """
            SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), coll.collname::text
            FROM pg_attribute AS a
            JOIN pg_class AS c ON c.oid = a.attrelid
            JOIN pg_collation AS coll ON coll.oid = a.attcollation
            WHERE c.relnamespace = quote_ident(current_schema())::regnamespace AND c.relkind = 'r'
              AND a.attnum > 0 AND NOT a.attisdropped AND a.attcollation <> 100  -- the database default
            """)}
        target.added_columns = [tuple(r) for r in conn.execute(
            """
            SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   pg_get_expr(d.adbin, d.adrelid)
            FROM pg_attribute AS a
            JOIN pg_class AS c ON c.oid = a.attrelid
            LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE c.relnamespace = quote_ident(current_schema())::regnamespace AND c.relkind = 'r'
              AND c.relname <> 'whatsmeow_version' AND a.attnum > 0 AND NOT a.attisdropped
              AND a.attname <> 'business_id'
            ORDER BY c.oid, a.attnum
            """)]
    # Everything of the package's own tables comes from their own steps.
    target.checks = {t: c for t, c in target.checks.items() if t not in OWN_TABLES}
    target.keys = [k for k in target.keys if k[0] not in OWN_TABLES]
    target.foreign_keys = [f for f in target.foreign_keys if f[0] not in OWN_TABLES]
    target.indexes = [i for i in target.indexes if i[0] not in OWN_TABLES]
    target.collations = {k: v for k, v in target.collations.items() if k[0] not in OWN_TABLES}
    target.added_columns = [c for c in target.added_columns if c[0] not in OWN_TABLES]
    return target


class Converter:
    def __init__(self, conn: psycopg.Connection, business_id: str, *, lock_timeout_ms: int, retries: int,
                 quiet: bool):
        self.conn, self.business_id, self.quiet = conn, business_id, quiet
        self.lock_timeout_ms, self.retries = lock_timeout_ms, retries
        self.target = read_target(conn)
        self.longest_lock_wait = 0.0

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"online: {message}", file=sys.stderr, flush=True)

    def one(self, query, params=None):
        row = self.conn.execute(query, params).fetchone()
        return row[0] if row else None

    def briefly(self, what: str, *statements) -> None:
        """Run statements in one transaction under a short lock_timeout, retrying when a lock is busy."""
        for attempt in range(1, self.retries + 1):
            started = time.monotonic()
            try:
                with self.conn.transaction():
                    self.conn.execute(f"SET LOCAL lock_timeout = {int(self.lock_timeout_ms)}")
                    for statement in statements:
                        self.conn.execute(statement)
                self.longest_lock_wait = max(self.longest_lock_wait, time.monotonic() - started)
                return
            except psycopg.errors.LockNotAvailable:
                self.say(f"{what}: a lock is busy, retrying ({attempt}/{self.retries})")
                time.sleep(min(0.05 * attempt, 1.0))
        raise ApplierError(f"online conversion: {what}: could not get a lock in {self.retries} tries; "
                           "retry when the database is quieter (the conversion resumes where it stopped)")

    def has_column(self, table: str, column: str = "business_id") -> bool:
        return bool(self.one("SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s "
                             "AND NOT attisdropped", (table, column)))

    def constraint(self, table: str, name: str):
        return self.conn.execute("SELECT contype::text, convalidated FROM pg_constraint "
                                 "WHERE conrelid = %s::regclass AND conname = %s", (table, name)).fetchone()

    def index_valid(self, name: str):
        return self.one("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,))

    def swapped(self) -> bool:
        device, name, _, _ = self.target.keys[0]
        return bool(self.one("SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s "
                             "AND 'business_id' = ANY(SELECT attname FROM pg_attribute WHERE attrelid = conrelid "
                             "AND attnum = ANY(conkey))", (device, name)))

    # ----------------------------------------------------------------------
    def run(self) -> None:
        t = self.target
        self.check_tenant()
        with self.conn.transaction():
            ensure_validity_function(self.conn)
        for table in t.tables:
            if not self.has_column(table):
                self.briefly(f"adding business_id to {table}", sql.SQL(
                    "ALTER TABLE {} ADD COLUMN business_id TEXT NOT NULL DEFAULT {}").format(
                    sql.Identifier(table), sql.Literal(self.business_id)))
                self.say(f"added business_id to {table}")
        for table, column, type_, not_null, default in t.added_columns:
            if not self.has_column(table, column):
                # A default PostgreSQL can store once (now() is evaluated here) rewrites nothing.
                self.briefly(f"adding {column} to {table}", sql.SQL("ALTER TABLE {} ADD COLUMN {} {}{}{}").format(
                    sql.Identifier(table), sql.Identifier(column), sql.SQL(type_),
                    sql.SQL(" NOT NULL" if not_null else ""),
                    sql.SQL(f" DEFAULT {default}" if default is not None else "")))
                self.say(f"added {column} to {table}")
        for table, (name, definition) in t.checks.items():
            if not self.constraint(table, name):
                self.briefly(f"adding {name}", sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID").format(
                    sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)))
            self.validate(table, name)
        if not self.swapped():
            for table, name, columns, unique, where in self.builds():
                self.build(table, name, columns, unique, where)
            self.remove_orphans()
            self.swap()
        self.remove_orphans()
        for table, name, _ in t.foreign_keys:
            self.validate(table, name)
        with self.conn.transaction():
            for signature, definition, revoke in t.routines:
                self.conn.execute(definition)
                if revoke:
                    self.conn.execute(f"REVOKE ALL ON ROUTINE {signature} FROM PUBLIC")
        for table, step in own_steps():
            if not self.one("SELECT to_regclass(%s)", (table,)):
                # Under the converter's short lock_timeout, not the step's own: its triggers lock the devices.
                text = re.sub(r"^SET LOCAL lock_timeout = .*;$", "", step.sql, flags=re.M)
                self.briefly(f"creating {table}", text)
                self.say(f"created {table} (v{step.to_version})")

    def check_tenant(self) -> None:
        """Refuse to resume an interrupted conversion under another tenant."""
        for table in self.target.tables:
            if self.has_column(table):
                existing = self.one(sql.SQL("SELECT business_id FROM {} LIMIT 1").format(sql.Identifier(table)))
                if existing is not None and existing != self.business_id:
                    raise ApplierError(
                        f"an interrupted online conversion to tenant {existing!r} is in progress; "
                        f"finish it with --online --adopt-business-id {existing}")

    def builds(self):
        """Indexes to build concurrently before the swap: every key, and the secondary indexes."""
        for table, name, _, columns in self.target.keys:
            yield table, name + TEMP_SUFFIX, columns, True, None
        for table, name, columns, where in self.target.indexes:
            # Upstream's own index under this name lacks business_id and is replaced at the swap.
            upstream_has_it = bool(self.one(
                "SELECT pg_get_indexdef(to_regclass(%s)) NOT LIKE '%%business_id%%'", (name,)))
            yield table, name + TEMP_SUFFIX if upstream_has_it else name, columns, False, where

    def build(self, table: str, name: str, columns: list[str], unique: bool, where: str | None) -> None:
        valid = self.index_valid(name)
        if valid:
            return
        if valid is False:  # left INVALID by an interrupted concurrent build
            self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY {}").format(sql.Identifier(name)))
            self.say(f"dropped the invalid index {name} an interrupted run left")
        started = time.monotonic()
        self.conn.execute("SET lock_timeout = 0")  # a concurrent build waits for older transactions by design
        # A column that changes collation at the swap gets an index in the new collation
        # now; the swap's ALTER COLUMN then keeps the index instead of rebuilding it.
        self.conn.execute(sql.SQL("CREATE {}INDEX CONCURRENTLY {} ON {} ({}){}").format(
            sql.SQL("UNIQUE " if unique else ""), sql.Identifier(name), sql.Identifier(table),
            sql.SQL(", ").join(self.target.column(table, column) for column in columns),
            sql.SQL(f" WHERE {where}" if where else "")))
        self.say(f"built {name} in {time.monotonic() - started:.2f}s")

    def remove_orphans(self) -> None:
        deleted = self.conn.execute(
            "DELETE FROM whatsmeow_privacy_tokens AS t WHERE NOT EXISTS "
            "(SELECT FROM whatsmeow_device AS d WHERE d.jid = t.our_jid AND d.business_id = t.business_id)"
        ).rowcount
        if deleted:
            self.say(f"removed {deleted} privacy tokens of devices that no longer exist")

    def swap(self) -> None:
        """One short transaction: old keys out, collations set, prebuilt keys in, foreign keys in unvalidated,
        defaults off."""
        t = self.target
        statements = [sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.SQL(", ").join(map(sql.Identifier, t.tables)))]
        for table, name in self.conn.execute(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype IN ('f', 'p', 'u') "
            "AND conrelid = ANY(%s::regclass[]) ORDER BY contype = 'f' DESC, conrelid DESC", (t.tables,)
        ).fetchall():
            statements.append(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)))
        for (table, column), (type_, collation) in t.collations.items():
            statements.append(sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} COLLATE {}").format(
                sql.Identifier(table), sql.Identifier(column), sql.SQL(type_), sql.Identifier(collation)))
        for table, name, kind, _ in t.keys:
            statements.append(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} USING INDEX {}").format(
                sql.Identifier(table), sql.Identifier(name), sql.SQL("PRIMARY KEY" if kind == "p" else "UNIQUE"),
                sql.Identifier(name + TEMP_SUFFIX)))
        for _, name, _, _ in t.indexes:
            if self.index_valid(name + TEMP_SUFFIX):
                statements.append(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
                statements.append(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(name + TEMP_SUFFIX), sql.Identifier(name)))
        for table, name, definition in t.foreign_keys:
            statements.append(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID").format(
                sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)))
        for table in t.tables:
            statements.append(sql.SQL("ALTER TABLE {} ALTER COLUMN business_id DROP DEFAULT").format(
                sql.Identifier(table)))
        started = time.monotonic()
        self.briefly("swapping the keys", *statements)
        self.say(f"swapped every table to its tenant keys in {time.monotonic() - started:.2f}s")

    def validate(self, table: str, name: str) -> None:
        found = self.constraint(table, name)
        if found and not found[1]:
            started = time.monotonic()
            self.conn.execute("SET lock_timeout = 0")  # VALIDATE blocks no reads or writes
            self.conn.execute(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)))
            self.say(f"validated {name} in {time.monotonic() - started:.2f}s")
