"""The embedded default database: a local PostgreSQL cluster the applier owns.

It is used when no DSN is given. The cluster lives in one folder, listens only on
a Unix socket inside that folder, trusts local connections and is reused by
later runs. PostgreSQL refuses to run as root, so when the applier runs as root
the cluster is initialised and started as an unprivileged OS user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from applier.errors import ApplierError

DATABASE = "whatsmeow"
SUPERUSER = "postgres"
PORT = 5432


def default_home() -> Path:
    """Where the embedded cluster lives unless WHATSMEOW_TENANCY_HOME says otherwise."""
    if os.environ.get("WHATSMEOW_TENANCY_HOME"):
        return Path(os.environ["WHATSMEOW_TENANCY_HOME"])
    if os.geteuid() == 0:
        # root's home is closed to the unprivileged user that runs the server.
        return Path("/var/lib/whatsmeow-tenancy")
    return Path.home() / ".local" / "share" / "whatsmeow-tenancy"


def find_bindir() -> Path:
    """The PostgreSQL server binaries: WHATSMEOW_TENANCY_PG_BINDIR, pg_config, or the newest installed."""
    candidates = []
    if os.environ.get("WHATSMEOW_TENANCY_PG_BINDIR"):
        candidates.append(os.environ["WHATSMEOW_TENANCY_PG_BINDIR"])
    else:
        pg_config = shutil.which("pg_config")
        if pg_config:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
            candidates.append(out.stdout.strip())
        installed = glob.glob("/usr/lib/postgresql/*/bin")
        candidates += sorted(installed, key=lambda p: int(Path(p).parent.name), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise ApplierError(
        "no PostgreSQL server binaries found for the embedded database; install PostgreSQL "
        "(for example `apt-get install postgresql`), set WHATSMEOW_TENANCY_PG_BINDIR, or pass --dsn"
    )


def server_user() -> str | None:
    """The OS user to run the server as: None for the current user, else an unprivileged one."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("WHATSMEOW_TENANCY_OS_USER", "postgres")
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ApplierError(
            f"running as root, and OS user {name!r} does not exist; PostgreSQL refuses to run as root: "
            f"create it (`useradd --system {name}`) or set WHATSMEOW_TENANCY_OS_USER to an unprivileged user"
        ) from None
    return name


@dataclass
class Cluster:
    """A PostgreSQL cluster in `home`: data in home/data, socket in home/run, log in home/server.log."""

    home: Path
    bindir: Path
    os_user: str | None
    # Extra server settings written at initdb time, e.g. durability off for throwaway test clusters.
    settings: dict[str, str] = field(default_factory=dict)

    @classmethod
    def default(cls) -> Cluster:
        return cls(default_home(), find_bindir(), server_user())

    @property
    def datadir(self) -> Path:
        return self.home / "data"

    @property
    def socketdir(self) -> Path:
        return self.home / "run"

    @property
    def logfile(self) -> Path:
        return self.home / "server.log"

    def dsn(self, dbname: str = DATABASE) -> str:
        return f"host={self.socketdir} port={PORT} user={SUPERUSER} dbname={dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            user=self.os_user,
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )

    def _prepare_home(self) -> None:
        for folder in (self.home, self.socketdir):
            folder.mkdir(parents=True, exist_ok=True)
            if self.os_user:
                shutil.chown(folder, self.os_user, self.os_user)

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").is_file()

    def init(self) -> None:
        self._prepare_home()
        result = self._run(
            "initdb",
            "--pgdata",
            str(self.datadir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C.UTF-8",
        )
        if result.returncode != 0:
            raise ApplierError(f"initdb failed in {self.datadir}: {result.stderr.strip() or result.stdout.strip()}")
        # Reachable only through the socket in the cluster's own folder.
        with open(self.datadir / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
            conf.write(f"listen_addresses = ''\nunix_socket_directories = '{self.socketdir}'\nport = {PORT}\n")
            conf.writelines(f"{name} = '{value}'\n" for name, value in self.settings.items())

    def running(self) -> bool:
        return self._run("pg_ctl", "status", "--pgdata", str(self.datadir)).returncode == 0

    def start(self) -> None:
        result = self._run(
            "pg_ctl", "start", "--wait", "--pgdata", str(self.datadir), "--log", str(self.logfile), "--silent"
        )
        if result.returncode != 0:
            raise ApplierError(
                f"the embedded PostgreSQL in {self.datadir} did not start (see {self.logfile}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "--wait", "--mode", "fast", "--pgdata", str(self.datadir), "--silent")

    def ensure_running(self) -> None:
        if not self.initialised():
            self.init()
        self._prepare_home()
        if not self.running():
            self.start()

    def ensure_database(self, dbname: str = DATABASE) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def default_dsn() -> str:
    """Start (initialising on first use) the embedded cluster and return the DSN of its database."""
    cluster = Cluster.default()
    cluster.ensure_running()
    cluster.ensure_database()
    return cluster.dsn()
