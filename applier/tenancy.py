"""What every module means by a tenant: the business_id rule and its message, naming the tenant in a
transaction, the tenant event record, and the versions that features need, read from the steps.

The rule itself lives in the database (whatsmeow_business_id_is_valid); Python only asks it.
"""

from __future__ import annotations

import json
import re
import sys
from functools import cache

import psycopg

from applier.errors import ApplierError
from applier.steps import Step, load_steps

VALIDITY_FUNCTION = "whatsmeow_business_id_is_valid"
# The rule in words, for the one error message an invalid business_id gets from Python.
VALIDITY_RULE = "must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -"
RETENTION_ROUTINE = "whatsmeow_prune"
EVENT_LOG_ROUTINE = "whatsmeow_record_tenant_event"
EVENT_PRUNE_ROUTINE = "whatsmeow_prune_tenant_events"


# ---------------------------------------------------------------------------------------------
# versions, from the steps
# ---------------------------------------------------------------------------------------------

def step_creating(routine: str) -> Step:
    """The upgrade step that first creates `routine` (the fresh install, which creates everything, aside)."""
    creates = re.compile(rf"^CREATE (?:FUNCTION|PROCEDURE) {routine}\(", re.M)
    steps = load_steps()
    for start in sorted(steps):
        if start > 0 and creates.search(steps[start].sql):
            return steps[start]
    raise ApplierError(f"no upgrade step creates {routine}")


@cache
def retention_since() -> int:
    """The version whose step created the retention routines."""
    return step_creating(RETENTION_ROUTINE).to_version


@cache
def event_log_since() -> int:
    """The version whose step created the tenant event log."""
    return step_creating(EVENT_LOG_ROUTINE).to_version


@cache
def event_pruning_since() -> int:
    """The version whose step created whatsmeow_prune_tenant_events (and the foreign-object refusal)."""
    return step_creating(EVENT_PRUNE_ROUTINE).to_version


@cache
def oldest_upstream() -> int:
    """The oldest upstream store the package converts or imports: the version upstream's first step here
    starts from (older stores predate the steps this package replays)."""
    return min(start for start in load_steps() if start > 0)


# ---------------------------------------------------------------------------------------------
# business_id
# ---------------------------------------------------------------------------------------------

def invalid_business_id(business_id: str, label: str = "business_id") -> ApplierError:
    """The error for an invalid business_id; `label` names where it came from, such as `--to`."""
    return ApplierError(f"invalid {label} {business_id!r}: {VALIDITY_RULE}")


@cache
def validity_function_sql() -> str:
    """The function's definition, as the fresh install writes it."""
    match = re.search(rf"^CREATE FUNCTION {VALIDITY_FUNCTION}\(.*?^\$\$;$", load_steps()[0].sql, re.M | re.S)
    if not match:
        raise ApplierError(f"the fresh install does not define {VALIDITY_FUNCTION}")
    return match[0]


def ensure_validity_function(conn: psycopg.Connection) -> None:
    """Create the rule's function as the fresh install defines it, in the current transaction, unless the
    store has it (a store being converted does not yet)."""
    if not conn.execute("SELECT to_regprocedure(%s)", (f"{VALIDITY_FUNCTION}(text)",)).fetchone()[0]:
        conn.execute(validity_function_sql())


def check_business_id(conn: psycopg.Connection, business_id: str, label: str = "--business-id") -> None:
    """Ask the database's own rule; where the store lacks the function, it is created for the question
    and rolled back with it, so nothing stays behind."""
    with conn.transaction(force_rollback=True):
        ensure_validity_function(conn)
        valid = conn.execute(f"SELECT {VALIDITY_FUNCTION}(%s)", (business_id,)).fetchone()[0]
    if not valid:
        raise invalid_business_id(business_id, label)


# ---------------------------------------------------------------------------------------------
# the tenant in a transaction, the event log, progress
# ---------------------------------------------------------------------------------------------

def name_tenant(conn: psycopg.Connection, business_id: str | None) -> None:
    """Within the current transaction: the tenant forced row-level security shows the owner."""
    if business_id is not None and conn.execute("SELECT to_regprocedure('whatsmeow_set_tenant(text)')").fetchone()[0]:
        conn.execute("SELECT whatsmeow_set_tenant(%s)", (business_id,))


def record_event(conn: psycopg.Connection, business_id: str, action: str, details: dict) -> int:
    """Log an operation on a tenant in the caller's transaction, with its counts (never key material);
    returns the event's id."""
    return conn.execute(f"SELECT {EVENT_LOG_ROUTINE}(%s, %s, %s::jsonb)",
                        (business_id, action, json.dumps(details))).fetchone()[0]


def say(quiet: bool, message: str) -> None:
    """One line of progress on stderr, unless quiet."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)
