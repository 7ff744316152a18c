"""The receive/send hot path as pgbench scripts, in every configuration, with tps and latency percentiles.

One pgbench transaction is one message handled by the store, one of four kinds
drawn by weight. Each script starts with one table-less SELECT that draws the
keys (\\gset), the same in every configuration, then runs the catalogue's queries
verbatim: the tenant form, or upstream's form with business_id taken out.

Shapes, i.e. how the message's statements are grouped into transactions:
  op         every statement on its own, autocommitted (how upstream whatsmeow runs them)
  op-tx      every statement in its own BEGIN … COMMIT (the same transactions as op-rls, without RLS)
  op-rls     every statement in its own transaction that first sets the tenant:
             BEGIN; SELECT whatsmeow_set_tenant(…); statement; COMMIT  (context per transaction)
  batch      the whole message in one transaction
  batch-rls  the whole message in one transaction that sets the tenant once (context per checkout:
             the connection is taken from the pool for the message, the tenant set, all its
             statements run, the connection given back)

The shapes above send every statement, BEGIN, COMMIT and tenant call included, as its own
round trip. The pipelined shapes send the statements around the tenant call in the same
round trip, as a Go client does with a pgx Batch or libpq pipeline mode (pgbench's
\\startpipeline … \\endpipeline, pgbench 14+ with -M prepared; results read at the end):
  op-tx-pipe      op-tx, each BEGIN; statement; COMMIT in one round trip (upstream's like-for-like
                  for op-rls-pipe)
  op-rls-pipe     op-rls, each BEGIN; set tenant; statement; COMMIT in one round trip,
                  as many round trips as upstream's autocommitted op
  batch-pipe      batch, BEGIN sent with the first statement (upstream's like-for-like for batch-rls-pipe)
  batch-rls-pipe  batch-rls, BEGIN and the tenant call sent with the first statement: the same
                  round trips as batch-pipe
The key-drawing SELECT stays outside any pipeline: its \\gset needs its result at once.
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from catalogue import Form
from data import BID, GROUP, JID, LID, MSG_ID, NOW_MS, NOW_S, PN, Shape

RANDOM_BYTES = {
    "session": "decode(repeat(md5(random()::TEXT), 50), 'hex')",
    "sender_key": "substring(decode(repeat(md5(random()::TEXT), 19), 'hex') FROM 1 FOR 300)",
    "plaintext": "substring(decode(repeat(md5(random()::TEXT), 13), 'hex') FROM 1 FOR 200)",
    "identity": "decode(md5(random()::TEXT) || md5(random()::TEXT), 'hex')",
    "key": "decode(md5(random()::TEXT) || md5(random()::TEXT), 'hex')",
    "ciphertext_hash": "sha256(random()::TEXT::BYTEA)",
}

# The four kinds of message: weight, the variables its statements use, and the catalogue queries it runs.
MESSAGES = {
    # A 1:1 message arrives: dedupe against the decrypted-event buffer, resolve the sender's
    # phone number, decrypt (session and identity read, session written back), buffer the
    # plaintext, look the contact up for its push name.
    "receive": (5, ("business_id", "our_jid", "their_id", "lid", "their_jid", "ciphertext_hash", "session",
                    "plaintext", "server_timestamp", "insert_timestamp"),
                ("getBufferedEventQuery", "getPNForLIDQuery", "getSessionQuery", "getIdentityQuery",
                 "putSessionQuery", "putBufferedEventQuery", "getContactQuery")),
    # A 1:1 message is sent: the peer's LID, the sessions of all its devices at once, the
    # identity, the session written back, the privacy token (asked by LID, stored by phone
    # number, so found through the LID map), and the message secret stored.
    "send": (3, ("business_id", "our_jid", "pn", "their_ids", "their_id", "session", "their_jid", "chat_jid",
                 "sender_jid", "message_id", "key"),
             ("getLIDForPNQuery", "getManySessionQueryPostgres", "getIdentityQuery", "putSessionQuery",
              "getPrivacyToken", "putMsgSecret")),
    # A group message arrives: sender key read and written back, a reaction's original
    # message secret looked up by the sender's LID (found through the LID map), the contact.
    "group": (2, ("business_id", "our_jid", "chat_id", "sender_id", "sender_key", "chat_jid", "sender_jid",
                  "message_id", "their_jid"),
              ("getSenderKeyQuery", "putSenderKeyQuery", "getMsgSecret", "getContactQuery")),
    # A first message from a new peer device (pkmsg): the one-time pre-key read and deleted,
    # identity and session stored, and a fresh pre-key stored in its place (the periodic
    # upload, one key per key used, which keeps the table's size steady).
    "prekey": (1, ("business_id", "jid", "our_jid", "key_id", "key", "uploaded", "their_id", "identity",
                   "session"),
               ("getPreKeyQuery", "deletePreKeyQuery", "putIdentityQuery", "putSessionQuery",
                "insertPreKeyQuery")),
}


def variables(shape: Shape, message: str) -> str:
    """The SELECT list that draws one message's keys from :t, :g and :p."""
    t, g, p = "(:t)::INT", "(:g)::INT", "(:p)::INT"
    pn, lid = PN.format(t=t, p=p), LID.format(t=t, p=p)
    group = GROUP.format(t=t, k=f"(:p)::INT % {shape.groups}")
    exprs = {
        "business_id": BID.format(t=t),
        "our_jid": JID.format(g=g),
        "jid": JID.format(g=g),
        "pn": pn,
        "lid": lid,
        "their_id": f"{pn} || ':0'",
        "their_ids": f"'{{' || {pn} || ':0,' || {pn} || ':1,' || {pn} || ':2}}'",
        "sender_id": f"{pn} || ':0'",
        "chat_id": group,
        "server_timestamp": NOW_S,
        "insert_timestamp": NOW_MS,
        "uploaded": "TRUE",
        "key_id": "(:k)::INT",
        **RANDOM_BYTES,
    }
    if message == "receive":
        exprs["their_jid"] = f"{pn} || '@s.whatsapp.net'"
    elif message == "send":
        # Asked by LID; the token is stored under the phone number.
        exprs["their_jid"] = f"{lid} || '@lid'"
        exprs["chat_jid"] = f"{pn} || '@s.whatsapp.net'"
        exprs["sender_jid"] = JID.format(g=g).replace(":1@", "@")
        exprs["message_id"] = "'3EB0' || upper(left(md5(random()::TEXT), 16))"
    elif message == "group":
        exprs["their_jid"] = f"{pn} || '@s.whatsapp.net'"
        exprs["chat_jid"] = group
        exprs["sender_jid"] = f"{lid} || '@lid'"
        exprs["message_id"] = MSG_ID.format(g=g, p=p)
    names = MESSAGES[message][1]
    return ",\n    ".join(f"{exprs[name]} AS {name}" for name in names)


def script(shape: Shape, clients: int, message: str, forms: dict[str, Form], kind: str) -> str:
    queries = [forms[name] for name in MESSAGES[message][2]]
    pre_keys_per_client = shape.pre_keys // clients
    lines = [
        f"-- {message}: {kind}",
        f"\\set t random(1, {shape.tenants})",
        f"\\set g (:t - 1) * {shape.devices} + random(1, {shape.devices})",
        f"\\set p random(1, {shape.peers})",
        # Each client owns its own pre-key ids, so no two clients consume the same key.
        f"\\set k 1 + :client_id + {clients} * random(0, {pre_keys_per_client - 1})",
        "SELECT\n    " + variables(shape, message),
        "\\gset",
    ]
    set_tenant = "SELECT whatsmeow_set_tenant(:business_id);"
    statements = [q.pgbench() for q in queries]
    if kind == "op":
        lines += statements
    elif kind == "op-tx":
        for s in statements:
            lines += ["BEGIN;", s, "COMMIT;"]
    elif kind == "op-rls":
        for s in statements:
            lines += ["BEGIN;", set_tenant, s, "COMMIT;"]
    elif kind == "batch":
        lines += ["BEGIN;", *statements, "COMMIT;"]
    elif kind == "batch-rls":
        lines += ["BEGIN;", set_tenant, *statements, "COMMIT;"]
    elif kind == "op-tx-pipe":
        for s in statements:
            lines += ["\\startpipeline", "BEGIN;", s, "COMMIT;", "\\endpipeline"]
    elif kind == "op-rls-pipe":
        for s in statements:
            lines += ["\\startpipeline", "BEGIN;", set_tenant, s, "COMMIT;", "\\endpipeline"]
    elif kind == "batch-pipe":
        lines += ["\\startpipeline", "BEGIN;", statements[0], "\\endpipeline", *statements[1:], "COMMIT;"]
    elif kind == "batch-rls-pipe":
        lines += ["\\startpipeline", "BEGIN;", set_tenant, statements[0], "\\endpipeline", *statements[1:],
                  "COMMIT;"]
    else:
        raise ValueError(kind)
    return "\n".join(lines) + "\n"


@dataclass
class Config:
    label: str
    title: str
    database: str
    user: str
    form: str  # "tenant" or "upstream"
    kind: str
    tps: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # µs of server + client CPU per message
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)


def write_scripts(folder: Path, shape: Shape, clients: int, config: Config, forms: dict[str, Form]) -> list[str]:
    """pgbench -f arguments (path@weight) for one configuration."""
    args = []
    for message, (weight, _, _) in MESSAGES.items():
        path = folder / f"{config.label}-{message}.pgbench"
        path.write_text(script(shape, clients, message, forms, config.kind))
        args += ["-f", f"{path}@{weight}"]
    return args


@dataclass
class Run:
    tps: float
    transactions: int
    server_cpu: float  # seconds of CPU the server's backends used
    client_cpu: float  # seconds of CPU pgbench used
    latencies: list[int]  # µs per transaction

    @property
    def cpu_per_message(self) -> float:
        """Server and client CPU per transaction, in µs."""
        return (self.server_cpu + self.client_cpu) / max(1, self.transactions) * 1e6


def children_cpu(postmaster_pid: int) -> float:
    """CPU seconds of the postmaster's exited children: every backend once its connection closed."""
    fields = Path(f"/proc/{postmaster_pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def run_pgbench(bindir: Path, host: Path, config: Config, scripts: list[str], clients: int, duration: int,
                log_prefix: Path | None, postmaster_pid: int | None = None) -> Run:
    """One pgbench run: tps, CPU used by server and client, and per-transaction latencies (µs)."""
    cmd = [str(bindir / "pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(duration),
           "-h", str(host), "-U", config.user, *scripts]
    if log_prefix:
        cmd += ["-l", f"--log-prefix={log_prefix}"]
    cmd.append(config.database)
    server_before = children_cpu(postmaster_pid) if postmaster_pid else 0.0
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = server_before
    if postmaster_pid:
        # The backends exit as pgbench disconnects: wait until the postmaster has reaped them all.
        stable = 0
        for _ in range(100):
            time.sleep(0.02)
            now = children_cpu(postmaster_pid)
            stable = stable + 1 if now == server_after else 0
            server_after = now
            if stable >= 3:
                break
    out = result.stdout + result.stderr
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if result.returncode != 0 or not match or "aborted" in out or (failed and int(failed[1])):
        raise RuntimeError(f"pgbench failed for {config.label}:\n{out[-3000:]}")
    latencies = []
    if log_prefix:
        for log in log_prefix.parent.glob(log_prefix.name + ".*"):
            for line in log.read_text().splitlines():
                latencies.append(int(line.split()[2]))
            log.unlink()
    client = (usage_after.ru_utime + usage_after.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)
    return Run(float(match[1]), int(processed[1]), server_after - server_before, client, latencies)


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _normalized(sql: str) -> str:
    """Parameters and constants as `$`, as pg_stat_statements shows them, whitespace collapsed."""
    text = re.sub(r"\$\d+|'[^']*'|\b\d+\b|\b(?:TRUE|FALSE|NULL)\b", "$", sql, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", text).strip().rstrip(";").strip()


def statement_name(query: str) -> str:
    """The catalogue name of a statement as pg_stat_statements shows it."""
    from catalogue import forms

    wanted = _normalized(query)
    for family in forms():
        for name, form in family.items():
            if _normalized(form.sql) == wanted:
                return name
    return wanted[:40]
