"""Tenants on a Citus cluster: where each one lives and how busy it is, isolating one to its own shards, and
moving its shards to another worker (docs/citus.md, "Big tenants").

Citus keeps a tenant's rows in one shard of each table of a colocation group, chosen by the hash of its
business_id, and the shard of every table of the group on the same node. `isolate_tenant_to_new_shard`
splits those shards so that the tenant's hash value gets shards of its own; `citus_move_shard_placement`
moves a shard and its colocated shards to another node. Both copy rows with logical replication when every
worker has wal_level = logical (writes go on until a short final switch), and otherwise block writes to the
shards being copied until the copy is done.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import psycopg
from psycopg import errors

from applier.errors import ApplierError
from applier.tenant import DEVICE_TABLE, count_rows, is_distributed, record_event, tenant_tables

# The default wait for a lock the application or another operation holds: Citus takes SHARE UPDATE EXCLUSIVE on
# every colocated table on the coordinator, which only VACUUM, ANALYZE, index builds and schema changes conflict
# with.
LOCK_TIMEOUT_SECONDS = 10.0
LOGICAL, BLOCK_WRITES = "auto", "block_writes"


@dataclass(frozen=True)
class Group:
    """A tenant's shard in one colocation group."""

    colocation_id: int
    anchor: str  # the table named in Citus calls: whatsmeow_device, or the group's first table
    tables: tuple[str, ...]
    shard_id: int
    node_id: int
    node: str  # host:port
    isolated: bool  # the shard covers this one hash value
    tenants: int  # tenants with rows in the shard, this one included

    def describe(self) -> str:
        return (f"shard {self.shard_id} of {self.anchor} ({len(self.tables)} colocated tables) on {self.node}, "
                + ("isolated" if self.isolated else f"shared by {self.tenants} tenants"))


def require_citus(conn: psycopg.Connection, what: str) -> None:
    if not conn.execute("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')").fetchone()[0]:
        raise ApplierError(f"`tenant {what}` needs Citus: this database is plain PostgreSQL, whose tenants share "
                           "one server; nothing was changed")
    if not is_distributed(conn):
        raise ApplierError(f"`tenant {what}` needs a distributed store: run schema/citus-distribute.sql on the "
                           "coordinator first (docs/citus.md); nothing was changed")
    if not conn.execute("SELECT citus_is_coordinator()").fetchone()[0]:
        raise ApplierError(f"`tenant {what}` runs on the Citus coordinator; this is a worker; nothing was changed")


def owner_login_problem(conn: psycopg.Connection) -> str | None:
    """Why Citus cannot copy shards, or None: it connects to the workers as the tables' owner."""
    owner, can_login = conn.execute(
        "SELECT r.rolname, r.rolcanlogin FROM pg_class AS c JOIN pg_roles AS r ON r.oid = c.relowner "
        "WHERE c.oid = %s::REGCLASS", (DEVICE_TABLE,)).fetchone()
    if can_login:
        return None
    return (f"Citus creates and fills the new shards over connections to the workers as the tables' owner {owner}, "
            f"which cannot log in; for the operation run `ALTER ROLE {owner} LOGIN` on the coordinator (the workers "
            f"must accept {owner} from the other nodes as they accept Citus's own connections) and `ALTER ROLE "
            f"{owner} NOLOGIN` afterwards")


def require_tenant(conn: psycopg.Connection, business_id: str) -> dict[str, int]:
    """The tenant's rows per table; an unknown tenant is refused."""
    rows = count_rows(conn, tenant_tables(conn), business_id)
    if not any(rows.values()):
        raise ApplierError(f"tenant {business_id} does not exist: no table holds a row for it; nothing was changed")
    return rows


def groups(conn: psycopg.Connection, business_id: str) -> list[Group]:
    """The tenant's shard in each colocation group of the tenant tables, device table's group first."""
    names = [t.name for t in tenant_tables(conn)]
    rows = conn.execute(
        """
        SELECT p.colocationid,
               array_agg(p.logicalrelid::TEXT ORDER BY p.logicalrelid::TEXT <> %s, p.logicalrelid::TEXT)
        FROM pg_dist_partition AS p
        WHERE p.logicalrelid::TEXT = ANY(%s) AND p.partmethod = 'h'
        GROUP BY p.colocationid
        ORDER BY bool_or(p.logicalrelid::TEXT = %s) DESC, p.colocationid
        """,
        (DEVICE_TABLE, names, DEVICE_TABLE),
    ).fetchall()
    found = []
    for colocation_id, tables in rows:
        anchor = tables[0]
        shard_id, node_id, node, isolated, low, high = conn.execute(
            """
            SELECT s.shardid, n.nodeid, n.nodename || ':' || n.nodeport, s.shardminvalue = s.shardmaxvalue,
                   s.shardminvalue::INT, s.shardmaxvalue::INT
            FROM pg_dist_shard AS s
            JOIN pg_dist_placement AS pl ON pl.shardid = s.shardid
            JOIN pg_dist_node AS n ON n.groupid = pl.groupid AND n.noderole = 'primary'
            WHERE s.shardid = get_shard_id_for_distribution_column(%s::REGCLASS, %s::TEXT)
            """,
            (anchor, business_id),
        ).fetchone()
        # Tenants in the shard's hash range, across the group's tables (a tenant may have rows in some only).
        tenants = conn.execute(
            "SELECT count(DISTINCT business_id) FROM ("
            + " UNION ".join(f"SELECT business_id FROM {t} WHERE worker_hash(business_id) BETWEEN %s AND %s"
                             for t in tables)
            + ") AS t",
            [v for _ in tables for v in (low, high)],
        ).fetchone()[0]
        found.append(Group(colocation_id, anchor, tuple(tables), shard_id, node_id, node, isolated, tenants))
    return found


def transfer_mode(conn: psycopg.Connection, *, split: bool = False) -> tuple[str, str]:
    """The shard transfer mode Citus is given, and why: logical replication when the tables have no row-level
    security and every worker allows it. A split decodes the changes with Citus's own output plugin, which
    PostgreSQL 15.19 and later (and the other majors' releases of that date) accept only when
    `output_plugin_libraries` names it; a move decodes with pgoutput."""
    rows = conn.execute(
        "SELECT w.nodename || ':' || w.nodeport, w.result, p.result FROM run_command_on_workers('SHOW wal_level') AS w "
        "JOIN run_command_on_workers($$SELECT coalesce(current_setting('output_plugin_libraries', TRUE), 'citus')$$) "
        "AS p USING (nodename, nodeport)"
    ).fetchall()
    secured = conn.execute("SELECT count(*) FROM pg_class WHERE oid = ANY(%s::REGCLASS[]) AND relrowsecurity",
                           ([t.name for t in tenant_tables(conn)],)).fetchone()[0]
    if secured:
        # PostgreSQL's apply worker refuses every change to a table with row-level security on ("cannot replicate
        # into relation with row-level security enabled") for the role Citus subscribes as; a change made during
        # the copy would then stall the operation until citus.logical_replication_timeout.
        return BLOCK_WRITES, ("block_writes (row-level security is on, and logical replication cannot apply "
                              "changes to its tables: writes to the shards being copied wait until the copy is "
                              "done)")
    lacking = [node for node, level, _ in rows if level != "logical"]
    if lacking:
        return BLOCK_WRITES, (f"block_writes (wal_level is not logical on {', '.join(lacking)}: writes to the "
                              "shards being copied wait until the copy is done)")
    untrusted = [node for node, _, plugins in rows if "citus" not in [p.strip() for p in plugins.split(",")]]
    if split and untrusted:
        return BLOCK_WRITES, (f"block_writes (output_plugin_libraries does not name citus on {', '.join(untrusted)}: "
                              "writes to the shards being split wait until the copy is done)")
    return LOGICAL, "logical replication (writes go on until a short final switch)"


def _set_lock_timeout(conn: psycopg.Connection, seconds: float) -> None:
    conn.execute("SELECT set_config('lock_timeout', %s, FALSE)", (f"{int(seconds * 1000)}ms",))


def _log(conn: psycopg.Connection, business_id: str, action: str, details: dict, quiet: bool) -> bool:
    """Record the operation; a log whose CHECK does not yet know the action (an older store) is reported."""
    try:
        with conn.transaction():
            record_event(conn, business_id, action, details)
        return True
    except errors.CheckViolation:
        if not quiet:
            print(f"{action}: not recorded: the tenant event log of this schema version does not accept "
                  f"'{action}' events (a later schema version does)", file=sys.stderr)
        return False


def _interrupted(operation: str) -> ApplierError:
    return ApplierError(f"interrupted: Citus rolled the {operation} back and the tenant's placement is unchanged; "
                        "shards it had begun to copy are dropped by Citus's cleanup; run the command again")


def _failed(operation: str, exc: psycopg.Error) -> ApplierError:
    reason = exc.diag.message_primary or str(exc)
    if isinstance(exc, errors.LockNotAvailable):
        reason += " (the application or another operation holds a lock on a colocated table; raise --lock-timeout " \
                  "or try again)"
    return ApplierError(f"{operation} failed and was rolled back, the tenant's placement is unchanged: {reason} "
                        f"(SQLSTATE {exc.sqlstate})")


# ---------------------------------------------------------------------------------------------
# isolate
# ---------------------------------------------------------------------------------------------

def isolate(conn: psycopg.Connection, business_id: str, lock_timeout: float, quiet: bool) -> dict:
    """Split the tenant's shard in each colocation group that it still shares, cascading to every colocated
    table, one call per group; log the event. Returns what was done."""
    mode, why = transfer_mode(conn, split=True)
    _set_lock_timeout(conn, lock_timeout)
    started = time.monotonic()
    done = []
    for group in groups(conn, business_id):
        if group.isolated:
            continue
        if not quiet:
            print(f"isolate: splitting {group.describe()}, {why} ...", file=sys.stderr, flush=True)
        began = time.monotonic()
        try:
            new_shard = conn.execute(
                "SELECT isolate_tenant_to_new_shard(%s::REGCLASS, %s::TEXT, 'CASCADE', "
                "%s::citus.shard_transfer_mode)", (group.anchor, business_id, mode)).fetchone()[0]
        except KeyboardInterrupt:
            raise _interrupted("split") from None
        except psycopg.Error as exc:
            raise _failed(f"isolating tenant {business_id}", exc) from exc
        seconds = round(time.monotonic() - began, 3)
        if not quiet:
            print(f"isolate: shard {new_shard} holds tenant {business_id} in {len(group.tables)} tables "
                  f"({seconds}s)", file=sys.stderr, flush=True)
        done.append({"colocation_id": group.colocation_id, "split_shard": group.shard_id, "shard": new_shard,
                     "node": group.node, "tables": len(group.tables), "seconds": seconds})
    result = {"business_id": business_id, "transfer": "logical" if mode == LOGICAL else mode, "groups": done,
              "seconds": round(time.monotonic() - started, 3)}
    if done:
        result["logged"] = _log(conn, business_id, "isolate", result, quiet)
    return result


# ---------------------------------------------------------------------------------------------
# move
# ---------------------------------------------------------------------------------------------

def target_node(conn: psycopg.Connection, address: str) -> tuple[int, str]:
    """The node id of HOST:PORT, which must be an active primary worker that takes shards."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ApplierError(f"invalid --to-node {address!r}: write HOST:PORT as the coordinator's pg_dist_node "
                           "names it")
    row = conn.execute(
        "SELECT nodeid, isactive AND noderole = 'primary' AND shouldhaveshards AND groupid <> 0 "
        "FROM pg_dist_node WHERE nodename = %s AND nodeport = %s", (host, int(port))).fetchone()
    if row is None or not row[1]:
        workers = [f"{h}:{p}" for h, p in conn.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE isactive AND noderole = 'primary' "
            "AND shouldhaveshards AND groupid <> 0 ORDER BY nodeid")]
        state = "is not a node of this cluster" if row is None else "is not an active worker that takes shards"
        raise ApplierError(f"--to-node {address} {state}; the active workers are: {', '.join(workers) or 'none'}; "
                           "nothing was changed")
    return row[0], address


def move(conn: psycopg.Connection, business_id: str, to_node_id: int, to_node: str, lock_timeout: float,
         quiet: bool) -> dict:
    """Move the tenant's shard in each colocation group to the node, with its colocated shards; the tenant
    must be isolated. Log the event."""
    mode, why = transfer_mode(conn)
    _set_lock_timeout(conn, lock_timeout)
    started = time.monotonic()
    done = []
    for group in groups(conn, business_id):
        if not group.isolated:
            raise ApplierError(f"tenant {business_id} shares {group.describe()}; isolate it first; nothing was "
                               "moved")
        if group.node_id == to_node_id:
            continue
        if not quiet:
            print(f"move: {group.describe()} to {to_node}, {why} ...", file=sys.stderr, flush=True)
        began = time.monotonic()
        try:
            conn.execute("SELECT citus_move_shard_placement(%s, %s, %s, %s::citus.shard_transfer_mode)",
                         (group.shard_id, group.node_id, to_node_id, mode))
        except KeyboardInterrupt:
            raise _interrupted("move") from None
        except psycopg.Error as exc:
            raise _failed(f"moving tenant {business_id}", exc) from exc
        seconds = round(time.monotonic() - began, 3)
        if not quiet:
            print(f"move: shard {group.shard_id} and its colocated shards are on {to_node} ({seconds}s)",
                  file=sys.stderr, flush=True)
        done.append({"colocation_id": group.colocation_id, "shard": group.shard_id, "from": group.node,
                     "to": to_node, "tables": len(group.tables), "seconds": seconds})
    result = {"business_id": business_id, "transfer": "logical" if mode == LOGICAL else mode, "groups": done,
              "seconds": round(time.monotonic() - started, 3)}
    if done:
        result["logged"] = _log(conn, business_id, "move", result, quiet)
    return result


# ---------------------------------------------------------------------------------------------
# list: placement and load
# ---------------------------------------------------------------------------------------------

def placement_and_load(conn: psycopg.Connection, tenants: list[dict]) -> bool:
    """Add each tenant's node, shard and whether it is isolated, from the device table's colocation group, and,
    when citus.stat_tenants_track is 'all', its queries and CPU from citus_stat_tenants. Returns whether load was
    tracked."""
    ids = [t["business_id"] for t in tenants]
    where = {b: (shard, node, isolated) for b, shard, node, isolated in conn.execute(
        """
        SELECT t.business_id, s.shardid, n.nodename || ':' || n.nodeport, s.shardminvalue = s.shardmaxvalue
        FROM unnest(%s::TEXT[]) AS t (business_id)
        JOIN pg_dist_shard AS s ON s.shardid = get_shard_id_for_distribution_column(%s::REGCLASS, t.business_id)
        JOIN pg_dist_placement AS pl ON pl.shardid = s.shardid
        JOIN pg_dist_node AS n ON n.groupid = pl.groupid AND n.noderole = 'primary'
        """, (ids, DEVICE_TABLE))}
    tracked = conn.execute("SELECT current_setting('citus.stat_tenants_track') = 'all'").fetchone()[0]
    load = {}
    if tracked:
        load = {row[0]: row[1:] for row in conn.execute(
            """
            SELECT tenant_attribute, sum(query_count_in_this_period)::INT, sum(query_count_in_last_period)::INT,
                   sum(read_count_in_this_period)::INT, sum(cpu_usage_in_this_period),
                   sum(cpu_usage_in_last_period)
            FROM citus_stat_tenants(TRUE)
            WHERE colocation_id = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = %s::REGCLASS)
            GROUP BY tenant_attribute
            """, (DEVICE_TABLE,))}
    for t in tenants:
        shard, node, isolated = where[t["business_id"]]
        t["placement"] = {"node": node, "shard": shard, "isolated": isolated}
        if tracked:
            queries, last_queries, reads, cpu, last_cpu = load.get(t["business_id"], (0, 0, 0, 0.0, 0.0))
            t["load"] = {"queries_this_period": queries, "queries_last_period": last_queries,
                         "reads_this_period": reads, "cpu_seconds_this_period": round(cpu, 6),
                         "cpu_seconds_last_period": round(last_cpu, 6)}
        else:
            t["load"] = None
    return tracked
