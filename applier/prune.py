"""Retention: what `prune` may remove, and removing it, through the store's own routines.

The SQL is the one definition (upgrades/19-retention.sql): whatsmeow_prune_candidates
counts, the procedure whatsmeow_prune removes in committed batches. This module
only checks the store, names the tenant where row-level security is forced, and
relays the procedure's progress.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from applier.database import StoreState, require_store
from applier.errors import ApplierError
from applier.tenancy import event_pruning_since, name_tenant, retention_since

HORIZON = re.compile(r"^\s*(\d+)\s*(h|hours?|d|days?|w|weeks?)\s*$")
UNIT = {"h": "hours", "d": "days", "w": "weeks"}


def parse_horizon(text: str) -> timedelta:
    """`90d`, `12h`, `2w` (or spelled out): a positive age."""
    match = HORIZON.match(text)
    if not match or int(match[1]) == 0:
        raise ApplierError(f"invalid age {text!r}: write a positive whole number of hours, days or weeks, "
                           "such as 90d, 36h or 12w")
    return timedelta(**{UNIT[match[2][0]]: int(match[1])})


@dataclass
class Candidate:
    business_id: str
    table: str
    prunable: int
    total: int


def check_store(state: StoreState) -> None:
    require_store(state, retention_since(), "prune", "the retention routines")


def candidates(conn: psycopg.Connection, business_id: str | None,
               message_secrets_older_than: timedelta | None) -> list[Candidate]:
    with conn.transaction():
        name_tenant(conn, business_id)
        rows = conn.execute(
            "SELECT * FROM whatsmeow_prune_candidates(%s, %s)", (business_id, message_secrets_older_than)
        ).fetchall()
    return [Candidate(*row) for row in rows]


def prune(conn: psycopg.Connection, business_id: str | None, message_secrets_older_than: timedelta | None,
          batch_size: int, quiet: bool) -> dict[str, int]:
    """CALL whatsmeow_prune on an autocommit connection; returns rows removed per table."""
    removed: dict[str, int] = {}

    def relay(notice: psycopg.errors.Diagnostic) -> None:
        message = notice.message_primary or ""
        total = re.fullmatch(r"prune: (whatsmeow_\w+): (\d+) removed", message)
        if total:
            removed[total[1]] = int(total[2])
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    conn.add_notice_handler(relay)
    started = time.monotonic()
    try:
        conn.execute("CALL whatsmeow_prune(%s, %s, %s)", (business_id, message_secrets_older_than, batch_size))
    except KeyboardInterrupt:
        raise ApplierError("interrupted: the batches already committed stay removed; run prune again to "
                           "finish") from None
    except psycopg.errors.InsufficientPrivilege as exc:
        hint = f"; {exc.diag.message_hint}" if exc.diag.message_hint else ""
        raise ApplierError(f"{exc.diag.message_primary}{hint}") from exc
    except psycopg.errors.InvalidParameterValue as exc:
        raise ApplierError(exc.diag.message_primary or str(exc)) from exc
    finally:
        conn.remove_notice_handler(relay)
    if not quiet:
        print(f"pruned {sum(removed.values())} rows in {time.monotonic() - started:.2f}s", file=sys.stderr)
    return removed


def old_events(conn: psycopg.Connection, older_than: timedelta) -> int:
    """How many tenant events were logged longer ago than `older_than`."""
    return conn.execute("SELECT count(*) FROM whatsmeow_tenant_events WHERE logged_at < now() - %s",
                        (older_than,)).fetchone()[0]


def prune_events(conn: psycopg.Connection, older_than: timedelta, batch_size: int, quiet: bool) -> int:
    """Remove every tenant's events older than `older_than`, a committed batch at a time; returns how many."""
    since = event_pruning_since()
    if not conn.execute("SELECT to_regprocedure('whatsmeow_prune_tenant_events(interval,integer)')").fetchone()[0]:
        raise ApplierError(f"prune --events-older-than: the store needs v{since} (whatsmeow_prune_tenant_events): "
                           "run `upgrade` first")
    removed = 0
    started = time.monotonic()
    try:
        while batch := conn.execute("SELECT whatsmeow_prune_tenant_events(%s, %s)",
                                    (older_than, batch_size)).fetchone()[0]:
            removed += batch
    except KeyboardInterrupt:
        raise ApplierError("interrupted: the batches already committed stay removed; run prune again to "
                           "finish") from None
    if not quiet:
        print(f"prune: whatsmeow_tenant_events: {removed} removed in {time.monotonic() - started:.2f}s",
              file=sys.stderr, flush=True)
    return removed
