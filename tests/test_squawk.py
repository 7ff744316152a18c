"""Every upgrade step passes squawk, the PostgreSQL migration linter, under .squawk.toml.

A step runs in one transaction unless its header says `-- transaction: off`, so
squawk is told the same per file. The config skips only the steps released
before squawk joined the suite, each for a reason it states; a new step is
linted by every rule.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest itself depends on tomli there.
    import tomli as tomllib

from applier.steps import UPGRADES_DIR, parse_step

ROOT = UPGRADES_DIR.parent
CONFIG = ROOT / ".squawk.toml"
# The newest step released before squawk ran in CI; later steps may not be skipped.
LAST_STEP_RELEASED_UNLINTED = 16


def _squawk_binary() -> str:
    beside_python = Path(sys.executable).with_name("squawk")
    found = str(beside_python) if beside_python.is_file() else shutil.which("squawk")
    assert found, "squawk is not installed: pip install -e '.[test]' (squawk-cli)"
    return found


def _options(transaction: bool) -> list[str]:
    return [] if transaction else ["--no-assume-in-transaction"]


def _squawk(*args: str, stdin: str | None = None) -> list[str]:
    result = subprocess.run(
        [_squawk_binary(), "--config", str(CONFIG), "--reporter", "json", "--no-error-on-unmatched-pattern", *args],
        input=stdin, capture_output=True, text=True, cwd=ROOT, check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    violations = json.loads(result.stdout or "[]")
    assert (result.returncode == 1) == bool(violations), result.stderr
    return [f"{v['file']}:{v['line'] + 1}: {v['rule_name']}: {v['message']}" for v in violations]


def _probe(tmp_path: Path, text: str, transaction_header: bool | None = None) -> list[str]:
    """Lints text as if it were the next upgrade file, the way the suite lints real ones."""
    probe = tmp_path / "18-probe.sql"
    probe.write_text(text, encoding="utf-8")
    transaction = parse_step(probe).transaction if transaction_header is None else transaction_header
    return _squawk(*_options(transaction), "--stdin-filepath", "upgrades/18-probe.sql", stdin=text)


def test_every_upgrade_step_passes_squawk():
    steps = [parse_step(path) for path in sorted(UPGRADES_DIR.glob("*.sql"))]
    assert steps
    violations = []
    for transaction in (True, False):
        paths = [str(s.path.relative_to(ROOT)) for s in steps if s.transaction == transaction]
        if paths:
            violations += _squawk(*_options(transaction), *paths)
    assert violations == []


def test_the_config_skips_only_named_steps_released_before_squawk():
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    assert config.get("assume_in_transaction") is True
    problems = []
    for entry in config.get("excluded_paths", []):
        path = ROOT / entry
        if any(c in entry for c in "*?[") or not path.is_file() or path.parent != UPGRADES_DIR:
            problems.append(f"{entry}: not one existing file of upgrades/")
        # The fresh install runs into an empty database, so it may stay skipped as it grows.
        elif parse_step(path).from_version > 0 and parse_step(path).to_version > LAST_STEP_RELEASED_UNLINTED:
            problems.append(f"{entry}: a step after v{LAST_STEP_RELEASED_UNLINTED} must pass squawk, not be skipped")
    assert problems == []


def test_a_new_step_that_builds_an_index_under_a_write_lock_is_flagged(tmp_path):
    found = _probe(tmp_path, (
        "-- v1000 -> v1001 (compatible with v1000+): Probe\n"
        "SET LOCAL lock_timeout = '5s';\n"
        "SET LOCAL statement_timeout = 0;\n"
        "CREATE INDEX whatsmeow_device_lid_idx ON whatsmeow_device (business_id, lid);\n"
    ))
    assert [v.split(": ")[1] for v in found] == ["require-concurrent-index-creation"]


def test_a_transaction_off_step_may_build_an_index_concurrently(tmp_path):
    text = (
        "-- v1000 -> v1001 (compatible with v1000+): Probe\n"
        "-- transaction: off\n"
        "SET lock_timeout = '5s';\n"
        "SET statement_timeout = 0;\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS whatsmeow_device_lid_idx ON whatsmeow_device (business_id, lid);\n"
    )
    assert _probe(tmp_path, text) == []
    # Linted as if in a transaction, the same file is wrong: the header is what decides.
    in_transaction = _probe(tmp_path, text, transaction_header=True)
    assert [v.split(": ")[1] for v in in_transaction] == ["ban-concurrent-index-creation-in-transaction"]
