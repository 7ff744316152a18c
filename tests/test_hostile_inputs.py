"""What the operator's commands reach but did not create is hostile, and gains nothing.

A customer's database (an import source, an export target) holds look-alikes of every
built-in the package calls, planted by the customer's role, which owns that database; an
uploaded SQLite file holds values PostgreSQL cannot; a relay between the applier and a
source rewrites what it carries; an application login plants a table with a trigger, or
an old owner left one on a store table; an export lands in a folder others may write to.
Each attempt is refused, naming what it found, or comes to nothing: no planted code runs,
no tenant is chosen from outside, and nothing changes.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import threading
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from rls_helpers import APP, OWNER
from runners import applier
from test_planted_objects import (
    ATTACKER, BODY, OWNER_LOGIN, _ensure_login, _login, attacker_is_superuser, called_builtins, plant,
    planted_calls,
)
from test_tenant_io import sqlite_store, whole_store
from upstream import make_store

from applier import rls

CUSTOMER = "customer"


def customer_database(new_database, admin_dsn: str, *, store: bool) -> str:
    """A database the customer's role owns, with look-alikes of every built-in the package calls in its
    schema public (the customer owns it); an upstream v15 store in it if `store`. Returns its DSN."""
    dsn = new_database()
    if store:
        make_store(dsn, 15)
    with psycopg.connect(dsn, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (CUSTOMER,)).fetchone():
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(CUSTOMER)))
        database = admin.execute("SELECT current_database()").fetchone()[0]
        admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database),
                                                                       sql.Identifier(CUSTOMER)))
        admin.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(CUSTOMER)))
        admin.execute("CREATE SEQUENCE public.planted_calls")
        admin.execute("GRANT USAGE, SELECT, UPDATE ON SEQUENCE public.planted_calls TO PUBLIC")
        builtins = called_builtins(admin)
    with psycopg.connect(_login(dsn, CUSTOMER), autocommit=True) as customer:
        assert plant(customer, builtins) > 1000
    return dsn


def customer_is_superuser(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True, options="-c search_path=pg_catalog") as conn:
        return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (CUSTOMER,)).fetchone()[0]


def calls(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True, options="-c search_path=pg_catalog") as conn:
        return planted_calls(conn)


@pytest.fixture
def store_with_owner_login(db, db_dsn):
    """The store with roles, and a login of the owner role: the admin of a managed PostgreSQL."""
    rls.create_roles(db)
    _ensure_login(db, OWNER_LOGIN, OWNER)
    return db_dsn


@pytest.mark.parametrize("login", ["superuser", "managed admin"])
def test_an_import_source_full_of_look_alikes_is_refused_before_any_of_them_runs(
        store_with_owner_login, new_database, login):
    source = customer_database(new_database, store_with_owner_login, store=True)
    store = store_with_owner_login if login == "superuser" else _login(store_with_owner_login, OWNER_LOGIN)
    source = source if login == "superuser" else _login(source, OWNER_LOGIN)
    before = whole_store(store_with_owner_login)
    for dry_run in ([], ["--dry-run"]):
        result = applier("tenant", "import", "--business-id", "acme", "--from", source, *dry_run, "--dsn", store)
        assert result.returncode == 2, result.stderr
        [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert "the source" in line and "refusing to run" in line
        assert "public.quote_ident(name) owned by customer" in line and "operator public.=(oid,regclass)" in line
    assert calls(source.removesuffix(f" user={OWNER_LOGIN}")) == 0
    assert not customer_is_superuser(source.removesuffix(f" user={OWNER_LOGIN}"))
    assert whole_store(store_with_owner_login) == before


@pytest.mark.parametrize("login", ["superuser", "managed admin"])
def test_an_export_target_full_of_look_alikes_is_refused_and_left_as_it_was(
        store_with_owner_login, new_database, login, db):
    db.execute("INSERT INTO whatsmeow_device (business_id, jid, registration_id, noise_key, identity_key, "
               "signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, "
               "adv_account_sig_key, adv_device_sig) VALUES ('acme', '1:1@s.whatsapp.net', 1, "
               "decode(repeat('aa', 32), 'hex'), decode(repeat('bb', 32), 'hex'), decode(repeat('cc', 32), 'hex'), "
               "1, decode(repeat('dd', 64), 'hex'), decode(repeat('ee', 32), 'hex'), '\\x01', "
               "decode(repeat('ff', 64), 'hex'), decode(repeat('11', 32), 'hex'), decode(repeat('22', 64), 'hex'))")
    target = customer_database(new_database, store_with_owner_login, store=False)
    store = store_with_owner_login if login == "superuser" else _login(store_with_owner_login, OWNER_LOGIN)
    reached = target if login == "superuser" else _login(target, OWNER_LOGIN)
    result = applier("tenant", "export", "--business-id", "acme", "--to", reached, "--dsn", store)
    assert result.returncode == 2, result.stderr
    assert "the target" in result.stderr and "refusing to run" in result.stderr
    assert "operator public.=(oid,regclass) owned by customer" in result.stderr
    assert calls(target) == 0 and not customer_is_superuser(target)
    with psycopg.connect(target, autocommit=True, options="-c search_path=pg_catalog") as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'whatsmeow%%'").fetchone() == (0,)


def test_a_source_that_is_not_plain_tables_of_upstreams_types_is_refused_before_a_value_is_read(
        db_dsn, new_database):
    source = new_database()
    make_store(source, 15)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("ALTER TABLE whatsmeow_contacts RENAME TO whatsmeow_contacts_real")
        conn.execute("CREATE VIEW whatsmeow_contacts AS SELECT * FROM whatsmeow_contacts_real")
    result = applier("tenant", "import", "--business-id", "acme", "--from", source, "--dsn", db_dsn)
    assert result.returncode == 2 and "whatsmeow_contacts (a view)" in result.stderr

    typed = new_database()
    make_store(typed, 15)
    with psycopg.connect(typed, autocommit=True) as conn:
        # A type of the source's own: its output function would run on every value read.
        conn.execute("CREATE DOMAIN public.text AS pg_catalog.text")
        conn.execute("ALTER TABLE whatsmeow_device ALTER COLUMN platform TYPE public.text")
    result = applier("tenant", "import", "--business-id", "acme", "--from", typed, "--dsn", db_dsn)
    assert result.returncode == 2
    assert "column whatsmeow_device.platform is public.text, upstream's is text" in result.stderr


class Relay:
    """A socket between the applier and a source server that rewrites every occurrence of one tenant's name
    into another's, both ways (same length, so the protocol stays well formed)."""

    def __init__(self, upstream_socket: Path, folder: Path, swap: tuple[bytes, bytes]):
        self.upstream, self.swap = upstream_socket, swap
        self.path = folder / upstream_socket.name
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.path))
        self.server.listen()
        self.rewritten = self.carried = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            backend.connect(str(self.upstream))
            threading.Thread(target=self._pump, args=(client, backend), daemon=True).start()
            threading.Thread(target=self._pump, args=(backend, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket):
        try:
            while data := source.recv(65536):
                self.carried += len(data)
                if self.swap[0] in data:
                    self.rewritten += 1
                    data = data.replace(*self.swap)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.server.close()


def test_a_relay_that_rewrites_what_it_carries_cannot_choose_the_tenant(db_dsn, new_database, pg_cluster, tmp_path):
    source = new_database()
    make_store(source, 15)
    folder = tmp_path / "relay"
    folder.mkdir()
    os.chmod(folder, 0o777)
    relay = Relay(Path(pg_cluster.socketdir) / ".s.PGSQL.5432", folder, (b"relayco", b"globex1"))
    try:
        relayed = psycopg.conninfo.make_conninfo(source, host=str(folder))
        result = applier("tenant", "import", "--business-id", "relayco", "--from", relayed, "--dsn", db_dsn)
    finally:
        relay.close()
    assert result.returncode == 0, result.stderr
    # Every row came through the relay, and nothing it carried named the tenant: there was nothing to rewrite.
    assert relay.carried > 10_000 and relay.rewritten == 0
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        tenants = dict(conn.execute("SELECT business_id, count(*) FROM whatsmeow_device GROUP BY 1").fetchall())
        events = conn.execute("SELECT tenant FROM whatsmeow_tenant_events WHERE action = 'import'").fetchall()
    assert tenants == {"relayco": 2} and events == [("relayco",)]


def test_sqlite_integers_out_of_a_columns_range_are_refused_with_table_column_and_rowid(db_dsn, tmp_path):
    path = sqlite_store(tmp_path / "crafted.db", 15)
    with sqlite3.connect(path) as db:
        rowid = db.execute("SELECT rowid FROM whatsmeow_device ORDER BY rowid LIMIT 1").fetchone()[0]
        db.execute("PRAGMA ignore_check_constraints = ON")  # a crafted file keeps no promise of upstream's
        db.execute("UPDATE whatsmeow_device SET signed_pre_key_id = 4294967301 WHERE rowid = ?", (rowid,))
    before = whole_store(db_dsn)
    result = applier("tenant", "import", "--business-id", "acme", "--from", str(path), "--dsn", db_dsn)
    assert result.returncode == 2
    assert f"whatsmeow_device.signed_pre_key_id (rowid {rowid}) holds 4294967301, out of the range" in result.stderr
    assert "nothing was imported" in result.stderr
    assert whole_store(db_dsn) == before


def test_a_linked_source_is_named_by_the_file_actually_read(db_dsn, tmp_path):
    real = sqlite_store(tmp_path / "real.db", 15)
    link = tmp_path / "upload.db"
    link.symlink_to(real)
    result = applier("tenant", "import", "--business-id", "acme", "--from", str(link), "--dsn", db_dsn)
    assert result.returncode == 0, result.stderr
    assert f"reading {real} (the link {link} points to it)" in result.stderr
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        [details] = conn.execute("SELECT details FROM whatsmeow_tenant_events WHERE action = 'import'").fetchone()
    assert details["from"] == str(real)


def test_an_export_into_a_shared_folder_is_created_exclusively_and_readable_by_its_owner_only(db_dsn, tmp_path):
    source = sqlite_store(tmp_path / "source.db", 15)
    assert applier("tenant", "import", "--business-id", "acme", "--from", str(source), "--dsn", db_dsn).returncode == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    nobody = 65534
    # Another user prepares what the export could be tricked into writing through.
    planted = [shared / f".acme.db.{pid}.partial" for pid in range(os.getpid(), os.getpid() + 64)]
    for path in planted:
        path.write_bytes(b"")
        os.chmod(path, 0o666)
        os.chown(path, nobody, nobody)
    (shared / "taken.db").symlink_to(tmp_path / "elsewhere.db")
    result = applier("tenant", "export", "--business-id", "acme", "--to", str(shared / "taken.db"), "--dsn", db_dsn)
    assert result.returncode == 2 and "exists" in result.stderr
    assert not (tmp_path / "elsewhere.db").exists()

    result = applier("tenant", "export", "--business-id", "acme", "--to", str(shared / "acme.db"), "--dsn", db_dsn)
    assert result.returncode == 0, result.stderr
    info = (shared / "acme.db").lstat()
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.getuid()
    assert all(path.stat().st_size == 0 and path.stat().st_uid == nobody for path in planted)
    assert sorted(p.name for p in shared.iterdir()) == sorted(["acme.db", "taken.db", *(p.name for p in planted)])


# ---------------------------------------------------------------------------------------------
# Objects on the store's tables that the package did not create
# ---------------------------------------------------------------------------------------------

# A trigger function that counts its calls and tries to take over, as the planted look-alikes do.
ESCALATE = "CREATE FUNCTION public.{name}() RETURNS TRIGGER LANGUAGE plpgsql AS $$" + BODY + "$$"


@pytest.fixture
def carried_over(db, db_dsn):
    """A two-tenant store carried over from PostgreSQL 12-14 (PUBLIC may CREATE in public), with roles, and
    the attacker, a login of the application role."""
    for tenant in ("acme", "globex"):
        db.execute("INSERT INTO whatsmeow_lid_map (business_id, lid, pn) VALUES (%s, '1@lid', '1@s')", (tenant,))
    rls.create_roles(db)
    db.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
    db.execute("CREATE SEQUENCE public.planted_calls")
    db.execute("GRANT USAGE, SELECT, UPDATE ON SEQUENCE public.planted_calls TO PUBLIC")
    _ensure_login(db, ATTACKER, APP)
    yield db_dsn
    db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    assert planted_calls(db) == 0, "a planted trigger fired"
    assert not attacker_is_superuser(db)


def test_a_planted_table_with_a_trigger_is_never_adopted_granted_or_fired(db, carried_over):
    with psycopg.connect(_login(carried_over, ATTACKER), autocommit=True) as attacker:
        attacker.execute("CREATE TABLE public.whatsmeow_zz_notes (business_id TEXT NOT NULL, note TEXT)")
        attacker.execute(ESCALATE.format(name="zz_escalate"))
        attacker.execute("CREATE TRIGGER zz_escalate AFTER DELETE ON public.whatsmeow_zz_notes "
                         "FOR EACH ROW EXECUTE FUNCTION public.zz_escalate()")
        attacker.execute("INSERT INTO public.whatsmeow_zz_notes VALUES ('acme', 'note')")
    for command in (("rls", "roles"), ("rls", "enable")):
        result = applier(*command, "--dsn", carried_over)
        assert result.returncode == 0, result.stderr
    assert "16 of 16 tenant tables" in result.stderr
    owner = db.execute("SELECT relowner::regrole::text FROM pg_class WHERE relname = 'whatsmeow_zz_notes'").fetchone()
    assert owner == (ATTACKER,)
    assert not db.execute("SELECT has_table_privilege(%s, 'whatsmeow_zz_notes', 'DELETE')", (APP,)).fetchone()[0]
    result = applier("tenant", "purge", "--business-id", "acme", "--yes", "--dsn", carried_over)
    assert result.returncode == 0, result.stderr
    assert db.execute("SELECT count(*) FROM whatsmeow_zz_notes").fetchone() == (1,)
    assert not attacker_is_superuser(db)
    doc = json.loads(applier("audit", "--json", "--dsn", carried_over).stdout)
    found = {c["check"]: [f["object"] for f in c["findings"]] for c in doc["checks"]}
    assert found["foreign_tables"] == ["whatsmeow_zz_notes"]


def test_an_old_owners_trigger_on_a_store_table_stops_every_command_until_dropped_or_allowed(db, carried_over):
    db.execute(sql.SQL("ALTER TABLE whatsmeow_lid_map OWNER TO {}").format(sql.Identifier(ATTACKER)))
    with psycopg.connect(_login(carried_over, ATTACKER), autocommit=True) as attacker:
        attacker.execute(ESCALATE.format(name="lid_escalate"))
        attacker.execute("CREATE TRIGGER lid_audit AFTER DELETE ON whatsmeow_lid_map "
                         "FOR EACH ROW EXECUTE FUNCTION public.lid_escalate()")
    named = "trigger lid_audit on whatsmeow_lid_map (owned by mallory): runs lid_escalate()"
    for command in (("rls", "roles"), ("rls", "enable"), ("prune",),
                    ("tenant", "purge", "--business-id", "acme", "--yes")):
        result = applier(*command, "--dsn", carried_over)
        assert result.returncode == 2, (command, result.stderr)
        assert "refusing to run" in result.stderr and named in result.stderr, result.stderr
        assert "whatsmeow_allowed_table_objects" in result.stderr
    audit = applier("audit", "--dsn", carried_over)
    assert audit.returncode == 1 and f"trigger lid_audit on whatsmeow_lid_map: owned by {ATTACKER}" in audit.stdout
    assert db.execute("SELECT count(*) FROM whatsmeow_lid_map").fetchone() == (2,)
    assert not attacker_is_superuser(db)

    # An operator's own change-capture trigger, allowed by name, lets the commands run and shows in the audit.
    db.execute("DROP TRIGGER lid_audit ON whatsmeow_lid_map")
    db.execute("ALTER TABLE whatsmeow_lid_map OWNER TO whatsmeow_owner")
    db.execute("CREATE FUNCTION public.capture() RETURNS TRIGGER LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'")
    db.execute("CREATE TRIGGER capture AFTER DELETE ON whatsmeow_lid_map FOR EACH ROW "
               "EXECUTE FUNCTION public.capture()")
    assert applier("tenant", "purge", "--business-id", "acme", "--yes", "--dsn", carried_over).returncode == 2
    db.execute("INSERT INTO whatsmeow_allowed_table_objects (table_name, kind, object_name, reason) "
               "VALUES ('whatsmeow_lid_map', 'trigger', 'capture', 'change capture for the warehouse')")
    result = applier("tenant", "purge", "--business-id", "acme", "--yes", "--dsn", carried_over)
    assert result.returncode == 0, result.stderr
    audit = applier("audit", "--dsn", carried_over)
    assert "allowed by the owner: trigger capture on whatsmeow_lid_map" in audit.stdout


def test_the_application_cannot_allow_its_own_objects(db, carried_over):
    with psycopg.connect(_login(carried_over, ATTACKER), autocommit=True) as attacker:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            attacker.execute("INSERT INTO whatsmeow_allowed_table_objects (table_name, kind, object_name, reason) "
                             "VALUES ('whatsmeow_lid_map', 'trigger', 'x', 'y')")


# ---------------------------------------------------------------------------------------------
# The event log: moved devices, bounded text, pruning
# ---------------------------------------------------------------------------------------------

def test_a_device_moved_in_place_is_logged_with_both_jids_and_copied_text_is_bounded(db):
    db.execute("INSERT INTO whatsmeow_device (business_id, jid, lid, registration_id, noise_key, identity_key, "
               "signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, "
               "adv_account_sig_key, adv_device_sig) VALUES ('acme', '1:1@s.whatsapp.net', repeat('x', 2000000), "
               "1, decode(repeat('aa', 32), 'hex'), decode(repeat('bb', 32), 'hex'), decode(repeat('cc', 32), 'hex'), "
               "1, decode(repeat('dd', 64), 'hex'), decode(repeat('ee', 32), 'hex'), '\\x01', "
               "decode(repeat('ff', 64), 'hex'), decode(repeat('11', 32), 'hex'), decode(repeat('22', 64), 'hex'))")
    db.execute("UPDATE whatsmeow_device SET jid = '2:1@s.whatsapp.net' WHERE business_id = 'acme'")
    rows = db.execute("SELECT action, details, pg_column_size(details) FROM whatsmeow_tenant_events "
                      "WHERE tenant = 'acme' ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["device_added", "device_moved"]
    moved = rows[1][1]
    assert (moved["from_jid"], moved["jid"], moved["from_business_id"]) == (
        "1:1@s.whatsapp.net", "2:1@s.whatsapp.net", "acme")
    assert moved["lid"].startswith("x" * 128) and moved["lid"].endswith("(cut from 2000000 characters)")
    assert max(r[2] for r in rows) < 1000


def test_old_events_are_pruned_in_batches_and_new_ones_stay(db):
    for _ in range(5):
        db.execute("SELECT whatsmeow_record_tenant_event('acme', 'purge', '{}')")
    db.execute("UPDATE whatsmeow_tenant_events SET logged_at = now() - INTERVAL '100 days' WHERE id IN "
               "(SELECT id FROM whatsmeow_tenant_events ORDER BY id LIMIT 3)")
    assert db.execute("SELECT whatsmeow_prune_tenant_events('90 days', 2)").fetchone() == (2,)
    assert db.execute("SELECT whatsmeow_prune_tenant_events('90 days', 2)").fetchone() == (1,)
    assert db.execute("SELECT whatsmeow_prune_tenant_events('90 days', 2)").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM whatsmeow_tenant_events").fetchone() == (2,)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SELECT whatsmeow_prune_tenant_events('0 days', 2)")


def test_prune_removes_old_events_when_asked_and_counts_them_in_a_dry_run(db, db_dsn):
    for _ in range(4):
        db.execute("SELECT whatsmeow_record_tenant_event('acme', 'purge', '{}')")
    db.execute("UPDATE whatsmeow_tenant_events SET logged_at = now() - INTERVAL '40 days' WHERE id IN "
               "(SELECT id FROM whatsmeow_tenant_events ORDER BY id LIMIT 3)")
    result = applier("prune", "--events-older-than", "30d", "--dry-run", "--json", "--dsn", db_dsn)
    assert result.returncode == 0, result.stderr
    assert {"business_id": None, "table": "whatsmeow_tenant_events", "prunable": 3, "total": None} in json.loads(
        result.stdout)
    assert db.execute("SELECT count(*) FROM whatsmeow_tenant_events").fetchone() == (4,)
    assert applier("prune", "--dsn", db_dsn).returncode == 0
    assert db.execute("SELECT count(*) FROM whatsmeow_tenant_events").fetchone() == (4,)
    result = applier("prune", "--events-older-than", "30d", "--batch-size", "2", "--json", "--dsn", db_dsn)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["removed"]["whatsmeow_tenant_events"] == 3
    assert db.execute("SELECT count(*) FROM whatsmeow_tenant_events").fetchone() == (1,)
    result = applier("prune", "--events-older-than", "0d", "--dsn", db_dsn)
    assert result.returncode == 2 and "error: invalid age '0d'" in result.stderr
