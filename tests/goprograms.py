"""The Go programs of tests/go/ as `bash .ci/go` builds them: where they are, and whether they fit
this checkout. Without them the tests that run them are skipped, unless WHATSMEOW_TENANCY_REQUIRE_GO=1
(as in CI), where their absence fails the run."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("upstream-check", "fork-store", "fork-store-tenantdb")


def bin_dir() -> Path:
    if os.environ.get("WHATSMEOW_TENANCY_GO_CACHE"):
        return Path(os.environ["WHATSMEOW_TENANCY_GO_CACHE"]) / "bin"
    if os.geteuid() == 0:
        return Path("/var/cache/whatsmeow-tenancy/go/bin")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "whatsmeow-tenancy/go/bin"


def sources_digest() -> str:
    """The digest .ci/go records of the files the programs are built from."""
    files = sorted(str(path.relative_to(ROOT)) for folder in ("upgrades", "tests/go")
                   for path in (ROOT / folder).rglob("*") if path.is_file())
    return hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in files)).hexdigest()


def unavailable() -> str | None:
    """Why the programs cannot run against this checkout, or None."""
    folder = bin_dir()
    missing = [name for name in PROGRAMS if not (folder / name).is_file()]
    if missing:
        return f"the Go programs are not built ({', '.join(missing)} missing from {folder}); run: bash .ci/go"
    stamp = folder / "sources.sha256"
    if not stamp.is_file() or stamp.read_text().strip() != sources_digest():
        return f"the Go programs in {folder} were built from other upgrades/ or tests/go/; run: bash .ci/go"
    return None


def require(*, module: bool = False) -> Path:
    """The programs' folder; skips (or fails, where required) when they cannot run."""
    reason = unavailable()
    if reason:
        if os.environ.get("WHATSMEOW_TENANCY_REQUIRE_GO") == "1":
            pytest.fail(f"WHATSMEOW_TENANCY_REQUIRE_GO=1, but {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=module)
    return bin_dir()
