"""Running the package's two front ends as a user would: the applier's command line and psql."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def applier(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m applier ARGS` in a fresh process, blind to the caller's DATABASE_URL and PG* variables."""
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PG")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "applier", *args], capture_output=True, text=True, cwd=ROOT,
                          env=environment, check=False, timeout=120)


def psql(psql_path: Path, dsn: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """psql -X -q -v ON_ERROR_STOP=1 -d DSN ARGS: exit 3 when a script fails."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run([str(psql_path), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, *args],
                          capture_output=True, text=True, check=False, env=environment)
