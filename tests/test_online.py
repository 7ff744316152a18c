"""The online conversion: same result as the offline one, writers keep going, and any kill is recoverable."""

from __future__ import annotations

import signal
import threading
import time

import psycopg
import pytest
from runners import applier, start_applier
from store import LATEST_COMPAT, LATEST_VERSION, UPSTREAM_VERSION
from upstream import DEVICES, PEERS, digests, make_store, upstream_columns

from applier import catalog
from applier.database import APPLICATION_NAME
from applier.upgrade import upgrade


def assert_converted(dsn, fresh_catalog, before_digests, columns):
    with psycopg.connect(dsn) as conn:
        assert catalog.differences(fresh_catalog, catalog.snapshot(conn)) == []
        assert digests(conn, columns) == before_digests
        assert conn.execute("SELECT version, compat FROM whatsmeow_version").fetchall() == [(LATEST_VERSION, LATEST_COMPAT)]
        assert conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0] == 0


def store(dsn, version=UPSTREAM_VERSION):
    make_store(dsn, version)
    with psycopg.connect(dsn) as conn:
        columns = upstream_columns(conn)
        return columns, digests(conn, columns)


@pytest.mark.parametrize("version", [UPSTREAM_VERSION, 8])
def test_online_conversion_reaches_the_fresh_install_schema_with_every_row(empty_dsn, fresh_catalog, version):
    columns, before = store(empty_dsn, version)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        upgrade(conn, adopt_business_id="acme", online=True, quiet=True)
    assert_converted(empty_dsn, fresh_catalog, before, columns)


def test_a_writer_keeps_committing_throughout_the_online_conversion(empty_dsn, fresh_catalog):
    store(empty_dsn)
    done, errors, commits = threading.Event(), [], []

    def writer():
        with psycopg.connect(empty_dsn, autocommit=True) as conn:
            n = 0
            while not done.is_set():
                n += 1
                started = time.monotonic()
                try:
                    with conn.transaction():
                        conn.execute("UPDATE whatsmeow_sessions SET session = %s WHERE our_jid = %s AND their_id = %s",
                                     (str(n).encode(), DEVICES[0], PEERS[1]))
                        conn.execute("UPDATE whatsmeow_device SET push_name = %s WHERE jid = %s",
                                     (f"writer {n}", DEVICES[1]))
                    commits.append(time.monotonic() - started)
                except psycopg.Error as exc:  # any failure is a finding
                    errors.append(repr(exc))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.2)
        with psycopg.connect(empty_dsn, autocommit=True) as conn:
            upgrade(conn, adopt_business_id="acme", online=True, quiet=True)
        time.sleep(0.2)
    finally:
        done.set()
        thread.join(timeout=30)
    assert errors == []
    assert len(commits) > 10
    with psycopg.connect(empty_dsn) as conn:
        last = conn.execute("SELECT session FROM whatsmeow_sessions WHERE our_jid = %s AND their_id = %s",
                            (DEVICES[0], PEERS[1])).fetchone()[0]
        assert last == str(len(commits)).encode()
        assert catalog.differences(fresh_catalog, catalog.snapshot(conn)) == []


def _kill_at(dsn, marker):
    proc = start_applier("upgrade", "--online", "--adopt-business-id", "acme", "--dsn", dsn)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert any(marker in line for line in seen), "".join(seen)
    _wait_until_gone(dsn)


def _wait_until_gone(dsn):
    with psycopg.connect(dsn, autocommit=True) as watcher:
        deadline = time.monotonic() + 30
        while watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                              (APPLICATION_NAME,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed applier's backend is still there"
            time.sleep(0.05)


@pytest.mark.parametrize("marker", [
    "added business_id to whatsmeow_sessions",
    "validated whatsmeow_contacts_business_id_check",
    "built whatsmeow_sessions_pkey_online",
    "swapped every table",
    "validated whatsmeow_contacts_business_id_our_jid_fkey",
])
def test_online_conversion_killed_at_any_point_is_finished_by_the_next_run(empty_dsn, fresh_catalog, marker):
    columns, before = store(empty_dsn)
    _kill_at(empty_dsn, marker)
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT version FROM whatsmeow_version").fetchone()[0] == UPSTREAM_VERSION
    result = applier("upgrade", "--dsn", empty_dsn)
    assert result.returncode == 2 and "--online" in result.stderr, "a plain upgrade must not touch a half-converted store"
    result = applier("upgrade", "--online", "--adopt-business-id", "other", "--dsn", empty_dsn)
    assert result.returncode == 2 and "'acme'" in result.stderr, "resuming under another tenant is refused"
    result = applier("upgrade", "--online", "--adopt-business-id", "acme", "--dsn", empty_dsn)
    assert result.returncode == 0, result.stderr
    assert_converted(empty_dsn, fresh_catalog, before, columns)


def test_an_interrupted_concurrent_index_build_is_cleaned_up_by_the_next_run(empty_dsn, fresh_catalog):
    columns, before = store(empty_dsn)
    with psycopg.connect(empty_dsn, autocommit=True) as old, psycopg.connect(empty_dsn, autocommit=True) as watcher:
        # An old open transaction makes the concurrent build wait; then the build dies with its client.
        old.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        old.execute("SELECT count(*) FROM whatsmeow_version")  # holds its snapshot until the end
        proc = start_applier("upgrade", "--online", "--adopt-business-id", "acme", "--dsn", empty_dsn)
        deadline = time.monotonic() + 30
        while not (pid := watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'CREATE UNIQUE INDEX "
                "CONCURRENTLY%%' AND wait_event_type = 'Lock'", (APPLICATION_NAME,)).fetchone()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.kill()
        watcher.execute("SELECT pg_terminate_backend(%s)", pid)
        old.execute("ROLLBACK")
    _wait_until_gone(empty_dsn)
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0] == 1
    result = applier("upgrade", "--online", "--adopt-business-id", "acme", "--dsn", empty_dsn)
    assert result.returncode == 0, result.stderr
    assert "dropped the invalid index" in result.stderr
    assert_converted(empty_dsn, fresh_catalog, before, columns)


def test_online_conversion_refuses_an_invalid_business_id_and_changes_nothing(empty_dsn):
    columns, before = store(empty_dsn, 8)
    with psycopg.connect(empty_dsn) as conn:
        snapshot = catalog.snapshot(conn)
    result = applier("upgrade", "--online", "--adopt-business-id", "bad id", "--dsn", empty_dsn)
    assert result.returncode == 2 and "invalid business_id 'bad id'" in result.stderr
    with psycopg.connect(empty_dsn) as conn:
        assert catalog.snapshot(conn) == snapshot
        assert digests(conn, columns) == before


def test_the_swap_keeps_the_prebuilt_keys_of_the_columns_it_recollates(empty_dsn, fresh_catalog, monkeypatch):
    """The peer ids change collation inside the swap; were their keys rebuilt there, writers would wait for it."""
    from applier.online import Converter

    store(empty_dsn)
    tables = ("whatsmeow_identity_keys", "whatsmeow_sessions", "whatsmeow_sender_keys")
    prebuilt = {}
    swap = Converter.swap

    def recording_swap(self):
        for table in tables:
            prebuilt[table] = self.one("SELECT pg_relation_filenode(%s)", (f"{table}_pkey_online",))
        swap(self)

    monkeypatch.setattr(Converter, "swap", recording_swap)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        upgrade(conn, adopt_business_id="acme", online=True, quiet=True)
        kept = {table: conn.execute("SELECT pg_relation_filenode(%s)", (f"{table}_pkey",)).fetchone()[0]
                for table in tables}
    assert all(prebuilt.values()) and kept == prebuilt
