"""`demo`: show, in a transaction that is rolled back, that two tenants sharing a JID stay apart."""

from __future__ import annotations

import psycopg

from applier.commands.options import Shared
from applier.database import open_database, read_state
from applier.errors import ApplierError

# A companion device's JID as whatsmeow writes it (user:device@server), and peers' Signal addresses.
JID = "15550001111:1@s.whatsapp.net"
DEVICE = """
INSERT INTO whatsmeow_device (business_id, jid, registration_id, noise_key, identity_key, signed_pre_key,
    signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key, adv_device_sig)
VALUES (%(b)s, %(jid)s, 1, %(k32)s, %(k32)s, %(k32)s, 1, %(k64)s, %(k32)s, '\\x00', %(k64)s, %(k32)s, %(k64)s)
"""
SESSION = "INSERT INTO whatsmeow_sessions (business_id, our_jid, their_id, session) VALUES (%s, %s, %s, %s)"


class Rollback(Exception):
    pass


def run(args) -> int:
    with open_database(args.dsn, quiet=args.quiet) as conn:
        if read_state(conn).kind != "multi-tenant":
            raise ApplierError("the database has no multi-tenant store yet; run `upgrade` first")
        try:
            with conn.transaction():
                show(conn)
                raise Rollback
        except Rollback:
            print("(rolled back: the database is unchanged)")
    return 0


def demo_tenants(conn: psycopg.Connection) -> tuple[str, str, str]:
    """acme, globex and initech, or the first numbered trio none of which has a device yet, so that the demo
    never collides with real tenants (it is rolled back either way)."""
    for suffix in ("", *(f"-demo{n}" for n in range(1, 100))):
        names = (f"acme{suffix}", f"globex{suffix}", f"initech{suffix}")
        if not conn.execute("SELECT 1 FROM whatsmeow_device WHERE business_id = ANY(%s) LIMIT 1",
                            (list(names),)).fetchone():
            return names
    raise ApplierError("every name the demo would use for its tenants already has devices here")


def show(conn: psycopg.Connection) -> None:
    keys = {"jid": JID, "k32": b"\x01" * 32, "k64": b"\x02" * 64}
    acme, globex, initech = demo_tenants(conn)
    for tenant, peer in ((acme, "15550002222"), (globex, "15550003333")):
        conn.execute(DEVICE, {**keys, "b": tenant})
        conn.execute(SESSION, (tenant, JID, f"{peer}:0", peer.encode()))
    print(f"two tenants, {acme} and {globex}, each own a device with JID {JID}")
    for tenant in (acme, globex):
        rows = conn.execute(
            "SELECT their_id FROM whatsmeow_sessions WHERE business_id = %s AND our_jid = %s", (tenant, JID)
        ).fetchall()
        print(f"  {tenant} sees sessions: {[row[0] for row in rows]}")
    try:
        with conn.transaction():
            conn.execute(SESSION, (initech, JID, "15550004444:0", b"x"))
    except psycopg.errors.ForeignKeyViolation:
        print(f"  a session for tenant {initech} on that JID is refused: {initech} has no such device")
    conn.execute("DELETE FROM whatsmeow_device WHERE business_id = %s AND jid = %s", (acme, JID))
    left = conn.execute("SELECT business_id, their_id FROM whatsmeow_sessions WHERE our_jid = %s AND business_id = ANY(%s)",
                        (JID, [acme, globex])).fetchall()
    print(f"  after deleting {acme}'s device, the sessions left for that JID: {left}")


def add_parser(commands, shared: Shared) -> None:
    shared.command(commands, "demo", "show that two tenants sharing a device JID stay apart (rolled back, changes "
                   "nothing)", "demo").set_defaults(run=run)
