"""Running the package's two front ends as a user would: the applier's command line and psql."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _default_sigint() -> None:
    # A suite started in the background by a non-interactive shell inherits SIGINT ignored, and so
    # would the applier: give it the disposition a user's Ctrl-C meets.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_applier(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m applier ARGS` started in the background, blind to the caller's DATABASE_URL and PG*."""
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PG")}
    environment.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "applier", *args], cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def applier(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m applier ARGS` run to its end."""
    process = start_applier(*args, env=env)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def psql(psql_path: Path, dsn: str, *args: str, env: dict[str, str] | None = None,
         stdin: str | None = None) -> subprocess.CompletedProcess:
    """psql -X -q -v ON_ERROR_STOP=1 -d DSN ARGS: exit 3 when a script fails."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run([str(psql_path), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, *args],
                          input=stdin, capture_output=True, text=True, check=False, env=environment)
