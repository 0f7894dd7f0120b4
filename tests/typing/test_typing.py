"""mypy --strict accepts correct use of the generated API and rejects misuse precisely."""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
EXPECTED = re.compile(r"^\s*#\s*E:\s*(?P<message>.+)$")


def _mypy(path: Path) -> list[str]:
    stdout, _stderr, _status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--no-incremental",
            "--show-error-codes",
            "--hide-error-context",
            "--no-error-summary",
            "--hide-error-codes",
            str(path),
        ]
    )
    return [line for line in stdout.splitlines() if ": error: " in line]


def test_correct_application_passes_strict_mypy() -> None:
    assert _mypy(HERE / "app_ok.py") == []


def test_misuse_fails_with_the_expected_errors() -> None:
    path = HERE / "app_bad.py"
    expected = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = EXPECTED.search(line)
        if match:
            expected[number + 1] = match["message"].strip()  # applies to the next line
    assert len(expected) == 8
    found: dict[int, list[str]] = {}
    for line in _mypy(path):
        _file, lineno, _kind, message = line.split(":", 3)
        found.setdefault(int(lineno), []).append(message.strip().removeprefix("error: ").strip())
    assert sorted(found) == sorted(expected), found
    for lineno, message in expected.items():
        assert any(message in f for f in found[lineno]), (lineno, found[lineno])
