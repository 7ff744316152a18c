"""The upgrade line: the dbutil-format files in upgrades/ and the plan to run them.

The header of each file is the truth about its versions, exactly as
go.mau.fi/util/dbutil reads it, so a Go caller that embeds upgrades/ and this
applier agree on every step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from applier.errors import ApplierError, DatabaseNewerError



def _sql_root() -> Path:
    """The folder holding schema/, upgrades/, rls/ and audits/: inside an installed wheel, applier/sql;
    in a checkout (or an editable install), the repository itself, where psql and Go forks find them too."""
    packaged = resources.files("applier") / "sql"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent


PACKAGE_ROOT = _sql_root()
UPGRADES_DIR = PACKAGE_ROOT / "upgrades"
VERSION_TABLE_SQL = PACKAGE_ROOT / "schema" / "version-table.sql"

# The first multi-tenant version; everything below it is upstream's single-tenant line. The
# multi-tenant line was renumbered from v17 to v1000 (18-multi-tenant-version-line.sql).
MULTI_TENANT_SINCE = 16

HEADER = re.compile(r"^-- (?:v(\d+) -> )?v(\d+)(?: \(compatible with v(\d+)\+\))?: (.+)$")
TRANSACTION = re.compile(r"^-- transaction: ([a-z-]*)")
FILE_NAME = re.compile(r"^(\d\d)-[a-z0-9]+(?:-[a-z0-9]+)*\.sql$")


@dataclass(frozen=True)
class Step:
    path: Path
    from_version: int
    to_version: int
    compat: int
    message: str
    transaction: bool
    sql: str

    @property
    def name(self) -> str:
        return self.path.name

    def describe(self) -> str:
        return f"v{self.from_version} -> v{self.to_version} (compat v{self.compat}): {self.message} [{self.name}]"


def parse_step(path: Path) -> Step:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    match = HEADER.match(lines[0])
    if not match:
        raise ApplierError(f"{path.name}:1: not a dbutil upgrade header: {lines[0]!r}")
    to_version = int(match[2])
    from_version = int(match[1]) if match[1] else to_version - 1
    compat = int(match[3]) if match[3] else to_version
    transaction = True
    txn = TRANSACTION.match(lines[1]) if len(lines) > 1 else None
    if txn:
        if txn[1] not in ("on", "off"):
            raise ApplierError(f"{path.name}:2: invalid transaction mode {txn[1]!r}")
        transaction = txn[1] == "on"
    return Step(path, from_version, to_version, compat, match[4], transaction, text)


def load_steps(folder: Path = UPGRADES_DIR) -> dict[int, Step]:
    """All upgrade steps keyed by the version they start from."""
    steps: dict[int, Step] = {}
    for path in sorted(folder.glob("*.sql")):
        if not FILE_NAME.match(path.name):
            raise ApplierError(f"{path.name}: upgrade files are named NN-kebab-summary.sql")
        step = parse_step(path)
        if step.from_version in steps:
            raise ApplierError(f"{path.name} and {steps[step.from_version].name} both upgrade from v{step.from_version}")
        steps[step.from_version] = step
    if not steps:
        raise ApplierError(f"no upgrade files in {folder}")
    return steps


def latest_version(steps: dict[int, Step]) -> int:
    return max(step.to_version for step in steps.values())


def latest_compat(steps: dict[int, Step]) -> int:
    return max(steps.values(), key=lambda step: step.to_version).compat


def known_versions(steps: dict[int, Step]) -> int:
    """How many versions dbutil counts for these files: its table holds one slot per version a step
    starts from, up to the highest, so a jump such as v999 -> v1000 makes it 1000. A database whose
    compat is above this count is refused, by dbutil and by this package alike."""
    return max(steps) + 1


def refuse_unknown_compat(version: int, compat: int, steps: dict[int, Step]) -> None:
    """Exit 3, before any change, for a database whose compat is above what these steps know."""
    if compat > known_versions(steps):
        raise DatabaseNewerError(
            f"the database is at v{version} (compatible down to v{compat}), newer than this package, "
            f"which knows up to v{latest_version(steps)}; refusing to change it: upgrade the package instead"
        )


def plan(version: int, compat: int, steps: dict[int, Step]) -> list[Step]:
    """The steps that bring a database at `version` to the latest, the way dbutil walks them: a version
    that no step starts from is stepped over (the multi-tenant line jumps from v17 to v999 -> v1000)."""
    refuse_unknown_compat(version, compat, steps)
    latest = latest_version(steps)
    path = []
    while version < latest:
        step = steps.get(version)
        if step is None:
            version += 1
            continue
        path.append(step)
        version = step.to_version
    return path
