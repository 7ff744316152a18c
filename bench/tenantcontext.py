"""What binding the tenant to its transaction costs, against the policy it replaced.

Two figures, each measured inside the server so that no round trip blurs them,
in alternating rounds on the run's RLS-forced database, as its application login:
  - per statement: a primary-key lookup of a session, run in a PL/pgSQL loop,
    under the policy `business_id = whatsmeow_current_tenant()` (the transaction
    stamp) and under the earlier `business_id = NULLIF(current_setting(...), '')`;
  - per transaction: `whatsmeow_set_tenant` as a transaction's only work, in a
    procedure that commits after every call, against the earlier function (one
    SET LOCAL, no stamp, search_path not pinned) and an empty transaction.
"""

from __future__ import annotations

import statistics
import time

import psycopg
from psycopg import sql

from data import BID, JID, PN

EARLIER_POLICY = "business_id = NULLIF(current_setting('app.current_business_id', TRUE), '')"
CURRENT_POLICY = "business_id = whatsmeow_current_tenant()"
EARLIER_FUNCTION = """
CREATE OR REPLACE FUNCTION bench_set_tenant_earlier(business_id TEXT) RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    IF whatsmeow_business_id_is_valid(business_id) IS NOT TRUE THEN
        RAISE EXCEPTION 'invalid business_id';
    END IF;
    EXECUTE format('SET LOCAL app.current_business_id = %L', business_id);
END
$$
"""
LOOKUPS = """
DO $$
DECLARE
    started TIMESTAMPTZ;
    found BYTEA;
BEGIN
    PERFORM whatsmeow_set_tenant({bid});
    started := clock_timestamp();
    FOR i IN 1..{count} LOOP
        SELECT s.session INTO found FROM whatsmeow_sessions AS s
        WHERE s.business_id = {bid} AND s.our_jid = {jid} AND s.their_id = {pn} || ':0';
    END LOOP;
    PERFORM set_config('bench.elapsed_us', (extract(EPOCH FROM clock_timestamp() - started) * 1e6)::TEXT, TRUE);
    IF found IS NULL THEN
        RAISE EXCEPTION 'the lookup found nothing: the policy hid the tenant''s own row';
    END IF;
END
$$;
SELECT current_setting('bench.elapsed_us')::FLOAT8;
"""
CALLS = """
CREATE OR REPLACE PROCEDURE bench_tenant_calls(how TEXT, count INTEGER) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..count LOOP
        IF how = 'current' THEN
            PERFORM whatsmeow_set_tenant({bid});
        ELSIF how = 'earlier' THEN
            PERFORM bench_set_tenant_earlier({bid});
        END IF;
        COMMIT;
    END LOOP;
END
$$
"""


def _policy(conn: psycopg.Connection, expression: str) -> None:
    conn.execute("DROP POLICY whatsmeow_tenant_isolation ON whatsmeow_sessions")
    conn.execute(sql.SQL("CREATE POLICY whatsmeow_tenant_isolation ON whatsmeow_sessions USING ({0}) "
                         "WITH CHECK ({0})").format(sql.SQL(expression)))


def measure(admin_conn, app_conn, rounds: int = 5, lookups: int = 20000, calls: int = 5000) -> dict:
    """µs per statement under each policy and µs per tenant call; `admin_conn` owns the schema."""
    keys = {"bid": BID.format(t=1), "jid": JID.format(g=1), "pn": PN.format(t=1, p=1)}
    lookup_sql = LOOKUPS.format(count=lookups, **keys)
    admin_conn.execute(EARLIER_FUNCTION)
    admin_conn.execute("GRANT EXECUTE ON FUNCTION bench_set_tenant_earlier(TEXT) TO PUBLIC")
    admin_conn.execute(CALLS.format(**keys))
    admin_conn.execute("GRANT EXECUTE ON PROCEDURE bench_tenant_calls(TEXT, INTEGER) TO PUBLIC")
    per_statement: dict[str, list[float]] = {"earlier": [], "current": []}
    per_call: dict[str, list[float]] = {"none": [], "earlier": [], "current": []}
    try:
        for _ in range(rounds):
            for name, expression in (("earlier", EARLIER_POLICY), ("current", CURRENT_POLICY)):
                _policy(admin_conn, expression)
                with app_conn.transaction():
                    cursor = app_conn.execute(lookup_sql)
                    cursor.nextset()
                    per_statement[name].append(cursor.fetchone()[0] / lookups)
            for how in per_call:
                started = time.perf_counter()
                app_conn.execute("CALL bench_tenant_calls(%s, %s)", (how, calls))
                per_call[how].append((time.perf_counter() - started) * 1e6 / calls)
    finally:
        _policy(admin_conn, CURRENT_POLICY)
        admin_conn.execute("DROP PROCEDURE bench_tenant_calls(TEXT, INTEGER)")
        admin_conn.execute("DROP FUNCTION bench_set_tenant_earlier(TEXT)")
    statement = {name: statistics.median(values) for name, values in per_statement.items()}
    call = {name: statistics.median(values) for name, values in per_call.items()}
    return {
        "statement_us": statement,
        "statement_extra_us": statement["current"] - statement["earlier"],
        "call_us": {"earlier": call["earlier"] - call["none"], "current": call["current"] - call["none"]},
        "empty_transaction_us": call["none"],
        "rounds": rounds,
    }
