"""The docs state what the code does: every version they name is one the steps in upgrades/ define
(read by the applier's own loader), the README's status example is what a fresh install prints,
every relative link and anchor resolves, and the fork guidance keeps a fork's steps off the
package's version line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from applier.cli import version_text
from applier.steps import (
    HEADER, MULTI_TENANT_SINCE, VERSION_TABLE_SQL, known_versions, latest_compat, latest_version, load_steps,
)
from applier.tenancy import event_log_since, event_pruning_since, oldest_upstream, retention_since
from runners import ROOT, applier

STEPS = load_steps()
LATEST, COMPAT = latest_version(STEPS), latest_compat(STEPS)
UPSTREAM_LATEST = MULTI_TENANT_SINCE - 1
# Every version the steps define: where a step starts and where it ends.
DEFINED = {v for step in STEPS.values() for v in (step.from_version, step.to_version)}

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
LINKED = [*DOCS, ROOT / "CHANGELOG.md"]
FENCE = re.compile(r"^```[^\n]*\n.*?^```$", re.M | re.S)


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def prose(path: Path) -> str:
    """The page without its fenced code blocks."""
    return FENCE.sub("", text(path))


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text(path), re.M | re.S)


def where(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# ---------------------------------------------------------------------------------------------
# versions
# ---------------------------------------------------------------------------------------------

def test_every_step_the_docs_name_is_a_step_of_upgrades():
    wrong = []
    for path in DOCS:
        for start, end, compat in re.findall(r"\bv(\d+) -> v(\d+)(?: \(compatible with v(\d+)\+\))?", text(path)):
            step = STEPS.get(int(start))
            if step is None or step.to_version != int(end) or (compat and step.compat != int(compat)):
                wrong.append(f"{where(path)}: v{start} -> v{end}" + (f" (compatible with v{compat}+)" if compat else ""))
    assert wrong == []


def test_a_step_file_and_the_versions_beside_it_agree():
    by_name = {step.name: step for step in STEPS.values()}
    wrong = []
    for path in DOCS:
        for name, start, end in re.findall(r"`(\d\d-[a-z0-9-]+\.sql)` \| `v(\d+) -> v(\d+)`", text(path)):
            step = by_name.get(name)
            if step is None or (step.from_version, step.to_version) != (int(start), int(end)):
                wrong.append(f"{where(path)}: {name} as v{start} -> v{end}")
        for version, name in re.findall(r"\bv(\d+) \(`(?:upgrades/)?(\d\d-[a-z0-9-]+\.sql)`\)", text(path)):
            if name not in by_name or by_name[name].to_version != int(version):
                wrong.append(f"{where(path)}: {name} as v{version}")
    assert wrong == []


def test_every_version_of_the_package_line_the_docs_name_is_defined_by_a_step():
    """Upstream's versions (below the conversion) are upstream's; from the conversion on, each is ours."""
    unknown = sorted({f"{where(path)}: v{n}" for path in DOCS for n in re.findall(r"\bv(\d+)\b", text(path))
                      if int(n) >= MULTI_TENANT_SINCE and int(n) not in DEFINED})
    assert unknown == []


def test_the_compat_the_docs_give_the_multi_tenant_line_is_the_steps_compat():
    wrong = []
    for path in DOCS:
        for found in re.findall(r"\bcompat\**\s+\**(\d+)|compatible with v(\d+)\+", text(path)):
            value = int(found[0] or found[1])
            if value >= 1000 and value != COMPAT:
                wrong.append(f"{where(path)}: compat {value}")
    assert wrong == []


def test_version_output_quoted_in_the_docs_is_what_version_prints():
    quoted = [(path, m) for path in DOCS for m in re.findall(r"whatsmeow-tenancy \S+ \(schema v\d+[^)]*\)", text(path))]
    expected = re.search(r"\(schema .*\)", version_text())[0]
    assert [(where(p), m) for p, m in quoted if not m.endswith(expected)] == []


def test_versions_in_json_examples_are_the_newest():
    wrong = []
    for path in DOCS:
        for block in blocks(path, "json"):
            for key, value in re.findall(r'"(version|latest_version|compat)": (\d+)', block):
                if int(value) != (COMPAT if key == "compat" else LATEST):
                    wrong.append(f"{where(path)}: {key} {value}")
    assert wrong == []


# Prose that says which version is the newest: the store or schema "is vN", "the latest version
# (vN)", a store that "is upgraded to vN".
NEWEST = re.compile(r"\b(?:store|schema)\s+is\s+\**v(\d+)|\b(?:latest|newest)\s+version\s+\(?v(\d+)"
                    r"|\bis\s+upgraded\s+to\s+v(\d+)")


def test_prose_that_names_the_newest_version_names_the_steps_newest():
    wrong = [f"{where(path)}: {m.group(0)}" for path in DOCS for m in NEWEST.finditer(text(path))
             if int(next(g for g in m.groups() if g)) != LATEST]
    assert wrong == []


def test_the_versions_a_go_program_knows_are_dbutils_count_for_the_steps():
    """dbutil's table has a slot per version a step starts from, up to the highest."""
    found = [int(n) for path in DOCS for n in re.findall(r"\b(\d+) slots\b", text(path))]
    assert set(found) <= {known_versions(STEPS)}


def test_the_counts_of_foreign_keys_and_device_triggers_are_the_fresh_installs():
    """docs/citus.md counts what the distribution script rewrites and drops."""
    fresh = STEPS[0].sql
    keys = len(re.findall(r"\bFOREIGN KEY\b", fresh))
    triggers = len(re.findall(r"^CREATE TRIGGER \w+\n[^;]*?\bON whatsmeow_device\n", fresh, re.M))
    page = text(ROOT / "docs" / "citus.md")
    assert {int(n) for n in re.findall(r"\b(\d+) (?:composite |rewritten )?foreign keys", page)} == {keys}
    assert {int(n) for n in re.findall(r"\b(\d+) (?:dropped )?device triggers", page)} == {triggers}


FEATURES = [
    # (page, where it names the version a feature needs, that version)
    ("docs/tenants.md", r"store at v(\d+) or later", event_log_since),
    ("docs/retention.md", r"older than v(\d+) \(run `upgrade`\)", retention_since),
    ("docs/retention.md", r"\(v(\d+) and later\)", retention_since),
    ("docs/retention.md", r"a store from v(\d+) on", event_pruning_since),
    ("docs/auditing.md", r"Stores before v(\d+) have no list", event_pruning_since),
]


@pytest.mark.parametrize(("page", "pattern", "since"), FEATURES, ids=[f[0] + " " + f[1] for f in FEATURES])
def test_the_version_a_feature_needs_is_the_step_that_created_it(page, pattern, since):
    found = re.findall(pattern, text(ROOT / page))
    assert found and {int(v) for v in found} == {since()}


def test_the_upstream_versions_the_docs_accept_are_those_the_steps_replay():
    """`v2 to v15` stores convert and import; upstream's steps here run `v3 to v15`."""
    wrong = []
    for path in DOCS:
        for steps_word, low, high in re.findall(r"(steps )?\bv(\d+) to v(\d+)\b", text(path)):
            expected = (oldest_upstream() + (1 if steps_word else 0), UPSTREAM_LATEST)
            if (int(low), int(high)) != expected:
                wrong.append(f"{where(path)}: {steps_word}v{low} to v{high}")
    assert wrong == []


def test_the_readme_status_example_is_what_a_fresh_install_prints(db_dsn):
    page = text(ROOT / "README.md")
    example = re.search(r"On a fresh install, `status --json` prints:\n\n```json\n(.*?)^```$", page, re.M | re.S)
    assert example, "the README shows `status --json` of a fresh install"
    result = applier("status", "--json", "--dsn", db_dsn)
    assert result.returncode == 0, result.stderr
    assert json.loads(example[1]) == json.loads(result.stdout)


# ---------------------------------------------------------------------------------------------
# links
# ---------------------------------------------------------------------------------------------

def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", prose(path), re.M):
        base = slug(heading)
        found.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return found


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for path in LINKED:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(path)):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path
            if not resolved.exists():
                broken.append(f"{where(path)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{where(path)}: {target} (no such heading)")
    assert broken == []


def test_the_layout_names_every_ci_script():
    row = re.search(r"^\| `\.ci/` \|(.*)$", text(ROOT / "README.md"), re.M)
    assert row
    named = set(re.findall(r"`([\w.-]+)`", row[1]))
    assert {p.name for p in (ROOT / ".ci").iterdir()} - named == set()


# ---------------------------------------------------------------------------------------------
# the fork guidance
# ---------------------------------------------------------------------------------------------

def fork_section() -> str:
    page = text(ROOT / "docs" / "go-fork.md")
    section = re.search(r"^## Schema changes of the fork's own\n(.*?)(?=^## )", page, re.M | re.S)
    assert section, "docs/go-fork.md says how a fork adds steps of its own"
    return section[1]


def test_fork_steps_go_to_a_version_table_of_their_own():
    section = fork_section()
    package_table = re.search(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", text(VERSION_TABLE_SQL))[1]
    tables = re.findall(r'\.Child\("(\w+)", (\w+),', section)
    assert tables, "the guidance runs the fork's table through dbutil's Database.Child"
    for table, _ in tables:
        # dbutil's default version table is `version`; the package's is whatsmeow_version.
        assert table not in (package_table, "version") and not table.startswith("whatsmeow_"), table
    embedded = re.findall(r"//go:embed (\S+)", section)
    assert embedded and all(not pattern.startswith("upgrades/") for pattern in embedded), embedded


def test_the_fork_example_step_is_valid_dbutil_on_its_own_line_from_v0():
    section = fork_section()
    headers = [block.split("\n", 1)[0] for block in re.findall(r"^```sql\n(.*?)^```$", section, re.M | re.S)]
    assert headers, "the guidance shows the first line of a fork step"
    for header in headers:
        match = HEADER.match(header)
        assert match, f"not a dbutil header: {header!r}"
        start = int(match[1]) if match[1] else int(match[2]) - 1
        # The fork's table counts from v0; nothing in it may look like a step of the package's line.
        assert start < MULTI_TENANT_SINCE and int(match[2]) < MULTI_TENANT_SINCE, header


def test_the_page_shows_a_step_header_only_for_the_forks_own_table():
    """The format line aside, a header on the page is a step someone would copy: only the fork's own."""
    page = text(ROOT / "docs" / "go-fork.md").replace(fork_section(), "")
    assert re.findall(r"-- v\d+[^`\n]*", page) == []
