"""Golden cases: ``tests/golden/<case>/`` holds a project; ``expected/`` the files it must
generate, or ``stderr.txt`` the diagnostics it must print (and then generated/ must be
untouched). ``UPDATE_GOLDEN=1 pytest tests/test_golden.py`` rewrites the expectations.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "sqlc.yaml").exists())
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
SENTINEL = "previous output, must survive a failed run\n"


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, tmp_path: Path) -> None:
    source = GOLDEN / case
    project = tmp_path / case
    shutil.copytree(source, project, ignore=shutil.ignore_patterns("expected", "stderr.txt"))
    out = project / "generated"
    out.mkdir()
    (out / "previous.txt").write_text(SENTINEL)

    proc = subprocess.run(
        [sys.executable, "-m", "codegen", "generate", "--root", str(project)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    expected_dir = source / "expected"
    stderr_file = source / "stderr.txt"
    if UPDATE:
        shutil.rmtree(expected_dir, ignore_errors=True)
        stderr_file.unlink(missing_ok=True)
        if proc.returncode == 0:
            shutil.copytree(out, expected_dir)
        else:
            stderr_file.write_text(proc.stderr)
        return

    if stderr_file.exists():
        assert proc.returncode == 1, proc.stdout
        assert proc.stderr == stderr_file.read_text()
        assert _tree(out) == {"previous.txt": SENTINEL}, "generated/ changed on failure"
    else:
        assert proc.returncode == 0, proc.stderr
        assert _tree(out) == _tree(expected_dir)
