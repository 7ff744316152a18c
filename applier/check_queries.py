"""Prove that queries written against the store keep to one tenant, as the package proves its catalogue.

The store is built in a scratch schema inside one transaction that is always rolled back, on the
database the caller gives: the package's fresh install, two tenants seeded through the catalogue
with every natural key shared, and the package's two roles under names of its own (never
committed, so no other session sees them). Each query then runs for each tenant in a savepoint that
is rolled back:

- as the owner role, which row-level security does not bind here, beside the other tenant;
- the same after the other tenant's rows are deleted: any difference in what it returns or leaves
  in the tenant's own rows came from the other tenant, and any change to the other tenant's rows
  is a write that reached it;
- as the application role with the tenant named by whatsmeow_set_tenant, under the policy, where
  it must answer as the tenant does alone.

Then, with 300 tenants of statistics, each plan must start every scan of a store table from
business_id (applier.plans), with and without row-level security. On a Citus coordinator whose
store is distributed, each query is also planned (EXPLAIN, in a transaction that is rolled back)
against that store, and must run on one shard. A query that is not exactly one
SELECT, INSERT, UPDATE, DELETE or WITH statement, or names a parameter the seed has no value for,
is refused without being run: it is only parsed (a protocol-level Parse, which executes nothing).
"""

from __future__ import annotations

import json
import re
import secrets
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from applier import rls
from applier.errors import ApplierError
from applier.plans import plan_problems
from applier.queries import Query
from applier.seed import TENANT_TABLES, load_bulk, params, seed
from applier.sqlfile import fresh_install_scratch

TENANTS = ("tenant-a", "tenant_b")
STATEMENT_TIMEOUT = "10s"
# Many small tenants: each is a small share of every table, so a scan that does not start from
# business_id reads other tenants' rows (the package's plan tests use the same shape).
BULK_TENANTS = [f"bulk-{n:04d}" for n in range(298)]
BULK_ROWS = 20

VERBS = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}
TRANSACTION_WORDS = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE"}
DDL_WORDS = {"CREATE", "ALTER", "DROP", "TRUNCATE", "GRANT", "REVOKE", "COMMENT", "REINDEX", "CLUSTER", "VACUUM",
             "ANALYZE", "REFRESH", "SECURITY", "IMPORT", "REASSIGN"}
_LEADING = re.compile(r"\A(?:\s+|--[^\n]*\n?|/\*.*?\*/|\()*", re.S)


@dataclass
class Finding:
    kind: str
    detail: str


@dataclass
class Result:
    query: Query
    findings: list[Finding] = field(default_factory=list)
    refused: bool = False
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"name": self.query.name, "file": self.query.file, "line": self.query.line,
                "refused": self.refused, "findings": [f.__dict__ for f in self.findings], "notes": self.notes}


def first_word(statement: str) -> str:
    rest = statement[_LEADING.match(statement).end():]
    return rest.split(None, 1)[0].rstrip(";(").upper() if rest.split() else ""


def refusal(query: Query, known: set[str]) -> list[Finding]:
    """Why a query may not run at all, from its text alone."""
    word = first_word(query.sql)
    if word in TRANSACTION_WORDS:
        return [Finding("transaction-statement", f"{word} is a transaction statement; the check runs each query "
                        "in a transaction of its own, so a query file holds no transaction control")]
    if word in DDL_WORDS:
        return [Finding("ddl", f"{word} is DDL; only SELECT, INSERT, UPDATE, DELETE and WITH statements are checked")]
    if word not in VERBS:
        return [Finding("not-a-query", f"{word or 'an empty statement'} is not a SELECT, INSERT, UPDATE, DELETE or "
                        "WITH statement")]
    unknown = [name for name in query.params if name not in known]
    if unknown:
        return [Finding("unknown-parameter",
                        f"line {query.line + 1}: no store column is called {', '.join(unknown)}; name each parameter "
                        "after the column it binds (business_id, our_jid, their_id, …), as schema/queries.sql does")]
    return []


def _error_text(exc: psycopg.Error) -> str:
    return f"{exc.diag.message_primary or str(exc).strip()} (SQLSTATE {exc.sqlstate})"


def _short(value) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        return f"\\x{value[:6].hex()}…" if len(value) > 6 else f"\\x{value.hex()}"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _rows_text(rows: list[tuple], limit: int = 3) -> str:
    shown = "; ".join("(" + ", ".join(_short(v) for v in row) + ")" for row in rows[:limit])
    return shown + (f"; … {len(rows) - limit} more" if len(rows) > limit else "")


def _comparable(value):
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


@dataclass
class Outcome:
    rows: list[tuple] | None  # what the statement returned, in a comparable order
    rowcount: int
    own: dict[str, tuple]  # the tenant's own rows afterwards: {table: (count, digest)}
    others: dict[tuple[str, str], tuple]  # every other tenant's rows: {(table, business_id): (count, digest)}
    error: psycopg.Error | None = None
    acting: str = ""  # the role in effect after the statement


class Checker:
    """A scratch store on `conn` (autocommit, no transaction open) for as long as the context lasts."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        conn.prepare_threshold = None  # the check names its own prepared statements; psycopg's would collide
        suffix = secrets.token_hex(4)
        self.app = f"whatsmeow_check_app_{suffix}"
        self.owner = f"whatsmeow_check_owner_{suffix}"
        self.schema = ""
        self.known = set(params(TENANTS[0]))
        self._base: dict | None = None

    @contextmanager
    def store(self) -> Iterator[Checker]:
        with self.conn.transaction(force_rollback=True):
            # On a Citus coordinator the scratch store stays on the coordinator: no schema, function or
            # role of it is sent to the workers.
            for setting in ("citus.enable_ddl_propagation", "citus.enable_create_role_propagation"):
                if self.conn.execute("SELECT current_setting(%s, TRUE)", (setting,)).fetchone()[0] is not None:
                    self.conn.execute("SELECT set_config(%s, 'off', TRUE)", (setting,))
            built = False
            try:
                with fresh_install_scratch(self.conn, "check") as schema:
                    self._build(schema)
                    built = True
                    yield self
            except (psycopg.Error, ApplierError) as exc:
                if built:
                    raise
                reason = _error_text(exc) if isinstance(exc, psycopg.Error) else str(exc)
                raise ApplierError(f"cannot build the scratch store: {reason}; it is built in a schema that is "
                                   "rolled back, and needs CREATE on the database and CREATEROLE (a superuser, "
                                   "or the owner of a managed database)") from exc

    def _build(self, schema: str) -> None:
        self.schema = schema
        self.conn.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.Identifier(schema)))
        for tenant in TENANTS:
            seed(self.conn, tenant)
        rls.create_roles(self.conn, app_role=self.app, owner_role=self.owner)
        rls.enable(self.conn)
        self.conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(STATEMENT_TIMEOUT)))
        self._role(self.owner)
        self._base = self._snapshot()

    # -- running -----------------------------------------------------------------------------

    def _role(self, role: str) -> None:
        self.conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        self.conn.execute(sql.SQL("SET LOCAL search_path = {}").format(sql.Identifier(self.schema)))

    def _snapshot(self) -> dict[tuple[str, str], tuple]:
        """Every tenant's rows per table, as (count, digest); read as the owner, which the policy does not bind."""
        parts = [
            sql.SQL("SELECT {}::TEXT, t.business_id, count(*), md5(string_agg(t::TEXT, ',' ORDER BY t::TEXT)) "
                    "FROM {} AS t GROUP BY t.business_id").format(sql.Literal(table), sql.Identifier(table))
            for table in TENANT_TABLES
        ]
        rows = self.conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall()
        return {(table, business_id): (count, digest) for table, business_id, count, digest in rows}

    def values(self, query: Query, tenant: str) -> dict:
        # Inserts bring new payloads (and fresh ids) for the seeded natural keys; the rest aim at the seeded rows.
        return params(tenant) if first_word(query.sql) in ("SELECT", "UPDATE", "DELETE") else params(tenant, 1)

    def _run(self, query: Query, tenant: str, *, as_app: bool, alone: bool = False) -> Outcome:
        with self.conn.transaction(force_rollback=True):
            self._role(self.owner)
            if alone:
                for table in ("whatsmeow_device", "whatsmeow_lid_map"):
                    self.conn.execute(sql.SQL("DELETE FROM {} WHERE business_id <> %s").format(sql.Identifier(table)),
                                      (tenant,))
            if as_app:
                self._role(self.app)
                self.conn.execute("SELECT whatsmeow_set_tenant(%s)", (tenant,))
            rows, rowcount, error = None, -1, None
            try:
                with self.conn.transaction():
                    cur = query.run(self.conn, self.values(query, tenant))
                    rowcount = cur.rowcount
                    if cur.description:
                        rows = sorted((tuple(_comparable(v) for v in row) for row in cur.fetchall()), key=repr)
            except psycopg.Error as exc:
                error = exc
            acting = self.conn.execute("SELECT current_user").fetchone()[0]
            self._role(self.owner)
            after = self._snapshot()
        own = {table: state for (table, business_id), state in after.items() if business_id == tenant}
        others = {key: state for key, state in after.items() if key[1] != tenant}
        return Outcome(rows, rowcount, own, others, error, acting)

    def _blame(self, query: Query, tenant: str, leaked: Outcome) -> list[str]:
        """The tables whose other-tenant rows change the answer: each one's other rows deleted in turn."""
        tables = []
        for table in [t for t in TENANT_TABLES if t != "whatsmeow_device"] + ["whatsmeow_device"]:
            if table == "whatsmeow_device" and tables:
                break  # deleting devices cascades to every table already tried
            with self.conn.transaction(force_rollback=True):
                self._role(self.owner)
                self.conn.execute(sql.SQL("DELETE FROM {} WHERE business_id <> %s").format(sql.Identifier(table)),
                                  (tenant,))
                try:
                    with self.conn.transaction():
                        cur = query.run(self.conn, self.values(query, tenant))
                        rows = (sorted((tuple(_comparable(v) for v in row) for row in cur.fetchall()), key=repr)
                                if cur.description else None)
                except psycopg.Error:
                    rows = None
                self._role(self.owner)
                own = {t: s for (t, b), s in self._snapshot().items() if b == tenant}
            if (rows, own) != (leaked.rows, leaked.own):
                tables.append(table)
        return tables

    # -- checking ----------------------------------------------------------------------------

    def parse(self, query: Query) -> list[Finding]:
        """Parse and describe the statement at the protocol level (nothing runs): exactly one statement,
        and as many parameters as `-- params:` names."""
        name = b"whatsmeow_check_parse"
        with self.conn.transaction(force_rollback=True):
            self._role(self.app)
            prepared = self.conn.pgconn.prepare(name, query.sql.encode())
            if prepared.status != psycopg.pq.ExecStatus.COMMAND_OK:
                detail = _result_error(query, prepared)
                kind = "not-one-query" if "multiple commands" in detail else "parse-error"
                return [Finding(kind, detail)]
            try:
                described = self.conn.pgconn.describe_prepared(name)
            finally:
                self.conn.execute("DEALLOCATE whatsmeow_check_parse")
        if described.nparams != len(query.params):
            return [Finding("parameter-mismatch", f"line {query.line + 1}: the statement's parameters go up to "
                            f"${described.nparams}, but `-- params:` names {len(query.params)}")]
        return []

    def check(self, query: Query) -> Result:
        result = Result(query)
        result.findings = refusal(query, self.known)
        if not result.findings:
            result.findings = self.parse(query)
        if result.findings:
            result.refused = True
            return result
        touched = False
        for tenant in TENANTS:
            others = [t for t in TENANTS if t != tenant]
            off = self._run(query, tenant, as_app=False)
            if off.acting != self.owner:
                result.findings.append(Finding("changes-role", f"it leaves the session acting as {off.acting}, not "
                                               "as the role it ran as; the check cannot vouch for such a statement"))
                continue
            if off.error is not None:
                result.findings.append(Finding("error", f"for {tenant} the statement fails: {_error_text(off.error)}"))
                continue
            base_others = {k: v for k, v in self._base.items() if k[1] != tenant}
            changed = sorted(set(base_others) | set(off.others))
            changed = [k for k in changed if base_others.get(k) != off.others.get(k)]
            if changed:
                where = "; ".join(_change(key, base_others.get(key), off.others.get(key)) for key in changed)
                result.findings.append(Finding("writes-other-tenant", f"run for {tenant}, it changes {where}"))
            alone = self._run(query, tenant, as_app=False, alone=True)
            touched = touched or bool(alone.rows) or alone.own != {k[0]: v for k, v in self._base.items()
                                                                     if k[1] == tenant}
            if (off.rows, off.own) != (alone.rows, alone.own):
                result.findings.append(Finding("reads-other-tenant", self._read_detail(query, tenant, others, off,
                                                                                       alone)))
            on = self._run(query, tenant, as_app=True)
            if on.error is not None:
                why = (": the application role may not reach another tenant's rows, nor a table it has no "
                       "privilege on" if on.error.sqlstate == "42501" else "")
                result.findings.append(Finding("fails-under-rls", f"as the application role with row-level security "
                                               f"on, for {tenant}, it fails: {_error_text(on.error)}{why}"))
            elif (on.rows, on.own) != (alone.rows, alone.own):
                result.findings.append(Finding(
                    "differs-under-rls", f"as the application role with row-level security on, {tenant} gets "
                    f"{_count(on)} instead of the {_count(alone)} it gets in a store of its own"))
        if not touched and not result.findings:
            result.notes.append("found or changed no row of either tenant, so the check proves little: name the "
                                "parameters after the columns they bind, so that they bind the seeded keys")
        return result

    def _read_detail(self, query: Query, tenant: str, others: list[str], off: Outcome, alone: Outcome) -> str:
        tables = self._blame(query, tenant, off)
        whose = ", ".join(others)
        parts = []
        if off.rows is not None and alone.rows is not None:
            extra = list((Counter(off.rows) - Counter(alone.rows)).elements())
            missing = list((Counter(alone.rows) - Counter(off.rows)).elements())
            parts.append(f"run for {tenant} it returns {_rows(len(off.rows))} beside {whose}, {len(alone.rows)} alone")
            if extra:
                parts.append(f"rows there only because of {whose}: {_rows_text(extra)}")
            if missing:
                parts.append(f"rows missing because of {whose}: {_rows_text(missing)}")
        if off.own != alone.own:
            changed = sorted(t for t in set(off.own) | set(alone.own) if off.own.get(t) != alone.own.get(t))
            parts.append(f"{tenant}'s rows it writes in {', '.join(changed)} depend on {whose}'s rows")
        if tables:
            parts.append(f"{whose}'s rows read in {', '.join(tables)}")
        return "; ".join(parts)

    # -- plans -------------------------------------------------------------------------------

    @contextmanager
    def many_tenants(self) -> Iterator[None]:
        """BULK_TENANTS more tenants of BULK_ROWS rows per table, analysed; rolled back afterwards."""
        with self.conn.transaction(force_rollback=True):
            self._role(self.owner)
            load_bulk(self.conn, list(TENANTS) + BULK_TENANTS, BULK_ROWS)
            yield

    def plan_findings(self, query: Query) -> list[Finding]:
        """Plans that read other tenants' rows: every scan of a store table must start from business_id."""
        verb = first_word(query.sql)
        if verb == "INSERT" and not re.search(r"\bSELECT\b", query.sql, re.I):
            return []  # an INSERT ... VALUES scans nothing
        findings = []
        tenant = TENANTS[0]
        values = self.values(query, tenant)
        for as_app in (True, False):
            for mode in ("force_custom_plan", "force_generic_plan"):
                with self.conn.transaction(force_rollback=True):
                    self._role(self.app if as_app else self.owner)
                    if as_app:
                        self.conn.execute("SELECT whatsmeow_set_tenant(%s)", (tenant,))
                    self.conn.execute(sql.SQL("SET LOCAL plan_cache_mode = {}").format(sql.SQL(mode)))
                    self.conn.pgconn.prepare(b"whatsmeow_check_plan", query.sql.encode())
                    args = sql.SQL(", ").join(sql.Literal(values[p]) for p in query.params)
                    statement = sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE whatsmeow_check_plan{}").format(
                        sql.SQL("({})").format(args) if query.params else sql.SQL(""))
                    try:
                        with self.conn.transaction():
                            plan = self.conn.execute(statement).fetchone()[0][0]["Plan"]
                    except psycopg.Error as exc:
                        return findings + [Finding("error", f"cannot plan it: {_error_text(exc)}")]
                    finally:
                        self.conn.execute("DEALLOCATE whatsmeow_check_plan")
                problems, _ = plan_problems(plan)
                if problems:
                    how = ("as the application role under row-level security" if as_app
                           else "with row-level security off")
                    plan_kind = "custom" if mode == "force_custom_plan" else "generic"
                    findings.append(Finding("plan-not-proportional",
                                            f"{how} ({plan_kind} plan, 300 tenants): {'; '.join(problems)}: it reads "
                                            "other tenants' rows, so its cost grows with the whole store"))
        return findings


def _result_error(query: Query, result) -> str:
    """A failed Parse's message, with the line of the file it points at."""
    def text(code) -> str:
        value = result.error_field(code)
        return value.decode(errors="replace") if value else ""

    fields = psycopg.pq.DiagnosticField
    line = query.sql_line
    position = text(fields.STATEMENT_POSITION)
    if position.isdigit():
        line += query.sql[: int(position) - 1].count("\n")
    message = text(fields.MESSAGE_PRIMARY) or "cannot parse the statement"
    return f"line {line}: {message} (SQLSTATE {text(fields.SQLSTATE)})"


def _change(key: tuple[str, str], before: tuple | None, after: tuple | None) -> str:
    table, business_id = key
    was, now = (before or (0,))[0], (after or (0,))[0]
    return f"{table}: {business_id}'s {_rows(was)} " + ("changed" if was == now else f"became {now}")


def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


def _count(outcome: Outcome) -> str:
    if outcome.rows is not None:
        return _rows(len(outcome.rows))
    return f"{_rows(outcome.rowcount)} changed"


def distributed_store(conn: psycopg.Connection) -> bool:
    """Whether the database is a Citus coordinator whose store, on the search_path, is distributed."""
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone():
        return False
    return bool(conn.execute("SELECT 1 FROM pg_dist_partition WHERE logicalrelid = to_regclass('whatsmeow_sessions') "
                             "AND partmethod = 'h'").fetchone())


def route_findings(conn: psycopg.Connection, query: Query) -> list[Finding]:
    """On a Citus coordinator: the query, planned against the distributed store, must run on one shard."""
    values = params(TENANTS[0]) if first_word(query.sql) in ("SELECT", "UPDATE", "DELETE") else params(TENANTS[0], 1)
    with conn.transaction(force_rollback=True):
        conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(STATEMENT_TIMEOUT)))
        try:
            with conn.transaction():
                cur = psycopg.RawCursor(conn)
                cur.execute("EXPLAIN (COSTS OFF) " + query.sql, [values[name] for name in query.params])
                plan = "\n".join(row[0] for row in cur.fetchall())
        except psycopg.Error as exc:
            return [Finding("error", f"cannot plan it on this Citus coordinator: {_error_text(exc)}")]
    counts = [int(n) for n in re.findall(r"Task Count: (\d+)", plan)]
    if any(count != 1 for count in counts):
        return [Finding("not-one-shard", f"on this Citus coordinator it runs on {max(counts)} shards (task counts "
                        f"{counts}): only business_id = $1 on every distributed table routes it to one")]
    return []


def check_queries(conn: psycopg.Connection, queries: list[Query], *, plans: bool = True,
                  progress=None) -> list[Result]:
    """Check every query on a scratch store built on `conn` (autocommit, nothing left behind)."""
    checker = Checker(conn)
    results = []
    citus = distributed_store(conn)
    with checker.store():
        if progress:
            progress(f"scratch store ready in schema {checker.schema} (rolled back at the end)")
        for query in queries:
            results.append(checker.check(query))
        if plans:
            with checker.many_tenants():
                if progress:
                    progress(f"{len(BULK_TENANTS) + len(TENANTS)} tenants loaded for the plans")
                for result in results:
                    if not result.refused:
                        result.findings.extend(checker.plan_findings(result.query))
    if citus:
        if progress:
            progress("Citus coordinator: each query planned against the distributed store")
        for result in results:
            if not result.refused:
                result.findings.extend(route_findings(conn, result.query))
    return results
