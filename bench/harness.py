"""What every benchmark shares: its own PostgreSQL in a temporary folder, progress lines, and the
header of its results page (the date, the PostgreSQL version and the machine).

Each benchmark is a script run from the repository's root (`.venv/bin/python bench/NAME.py`);
Python puts bench/ on the import path for it, and the applier comes from the installed package.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from applier.embedded import Cluster, find_bindir, server_user

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"

STARTED = time.monotonic()


def progress(message: str, *, name: str | None = None) -> None:
    """One progress line to stderr: the clock, the seconds since the start, and the message."""
    elapsed = time.monotonic() - STARTED
    label = f"[{name}] " if name else ""
    print(f"[{time.strftime('%H:%M:%S')} +{elapsed:5.0f}s] {label}{message}", file=sys.stderr, flush=True)


def start_cluster(home: Path, settings: dict[str, str] | None = None, *, defaults: bool = True,
                  profile: bool = False) -> Cluster:
    """A new PostgreSQL in home/pg, started.

    With `defaults`, tuned for throughput benchmarks: commits do not wait for the disk, so a benchmark is
    bound by the queries themselves, which is what differs between the configurations it compares.
    `profile` loads pg_stat_statements, counting nothing until a benchmark sets pg_stat_statements.track.
    `settings` come last and win.
    """
    conf: dict[str, str] = {}
    if defaults:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        conf |= {
            "shared_buffers": f"{max(128, min(4096, memory // 4 // 2**20))}MB",
            "synchronous_commit": "off",
            "max_wal_size": "8GB",
            "checkpoint_timeout": "30min",
            "max_connections": "50",
        }
    if profile:
        conf |= {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "none",
                 "pg_stat_statements.track_planning": "on"}
    conf |= settings or {}
    cluster = Cluster(home / "pg", find_bindir(), server_user(), conf)
    cluster.ensure_running()
    return cluster


def new_cluster(name: str, settings: dict[str, str] | None = None, *, defaults: bool = True,
                profile: bool = False) -> tuple[Cluster, Path]:
    """A started cluster in a new scratch folder; give both to remove_cluster at the end."""
    workdir = Path(tempfile.mkdtemp(prefix=f"whatsmeow-tenancy-{name}-"))
    workdir.chmod(0o755)  # the server may run as another OS user
    try:
        return start_cluster(workdir, settings, defaults=defaults, profile=profile), workdir
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def remove_cluster(cluster: Cluster, workdir: Path) -> None:
    cluster.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def temporary_cluster(name: str, settings: dict[str, str] | None = None, *, defaults: bool = True,
                      profile: bool = False) -> Iterator[tuple[Cluster, Path]]:
    """A started cluster and its scratch folder, both removed at the end."""
    cluster, workdir = new_cluster(name, settings, defaults=defaults, profile=profile)
    try:
        yield cluster, workdir
    finally:
        remove_cluster(cluster, workdir)


def admin(cluster: Cluster, dbname: str = "postgres") -> psycopg.Connection:
    """An autocommit connection as the cluster's superuser."""
    return psycopg.connect(cluster.dsn(dbname), autocommit=True)


# pg_stat_statements counts planning from PostgreSQL 13 on.
PLANNING_COUNTED_FROM = 130000


def statement_stats(conn: psycopg.Connection) -> str:
    """pg_stat_statements as a subquery with the same columns on every major: dbid, userid, query,
    calls, plans, total_exec_time, total_plan_time and toplevel. Where planning is not counted, plans
    is NULL and total_plan_time 0; where toplevel is missing, every row is top level, which is what
    track = 'top' records."""
    version = int(conn.execute("SHOW server_version_num").fetchone()[0])
    if version >= PLANNING_COUNTED_FROM:
        planning = "plans, total_exec_time, total_plan_time"
    else:
        planning = "NULL::BIGINT AS plans, total_time AS total_exec_time, 0 AS total_plan_time"
    toplevel = "toplevel" if version >= 140000 else "TRUE AS toplevel"
    return f"(SELECT dbid, userid, query, calls, {planning}, {toplevel} FROM pg_stat_statements)"


def postmaster_pid(cluster: Cluster) -> int:
    return int((cluster.datadir / "postmaster.pid").read_text().split()[0])


def machine(cluster: Cluster) -> dict:
    """The PostgreSQL version and settings, the CPU, the memory, and the date of the run."""
    with admin(cluster) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        version_num = int(conn.execute("SHOW server_version_num").fetchone()[0])
        # From the catalog: PostgreSQL 16 dropped the lc_collate setting.
        collate = conn.execute("SELECT datcollate FROM pg_database WHERE datname = current_database()").fetchone()[0]
        settings = dict(conn.execute("SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
                                     "('shared_buffers', 'synchronous_commit', 'max_wal_size')").fetchall())
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": memory / 2**30, "postgres": version,
            "version_num": version_num,
            "collate": collate, "settings": settings,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def header(title: str, m: dict, command: str, *notes: str) -> list[str]:
    """The top of a results page: title, when and where it was measured (`m`, from machine()), and the
    command that measures it again."""
    return [
        f"# {title}",
        "",
        f"{m['date']} · PostgreSQL {m['postgres'].split()[0]} · {platform.machine()}, {m['nproc']} CPUs "
        f"({m['cpu']}), {m['memory_gib']:.0f} GiB · `{command}`",
        *([""] + list(notes) if notes else []),
        "",
    ]
