"""All SQL in the package passes sqlfluff under the repository's configuration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_all_sql_is_lint_clean():
    result = subprocess.run(
        [sys.executable, "-m", "sqlfluff", "lint", "--format", "json", "--nofail", "."],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    files = json.loads(result.stdout)
    linted = {Path(f["filepath"]).parts[0] for f in files}
    assert {"schema", "upgrades"} <= linted
    violations = [
        f"{f['filepath']}:{v['start_line_no']}:{v['start_line_pos']}: {v['code']} {v['description']}"
        for f in files for v in f["violations"]
    ]
    assert violations == []
