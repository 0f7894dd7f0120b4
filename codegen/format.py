"""Run the pinned ``ruff format`` over rendered Python, so formatting it again is a no-op."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import CodegenError, Problem


def _ruff() -> str:
    local = Path(sys.executable).parent / "ruff"
    return str(local) if local.exists() else (shutil.which("ruff") or "ruff")


def _run(args: list[str], text: str, rel: str) -> str:
    proc = subprocess.run(
        [_ruff(), *args, "--stdin-filename", rel, "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise CodegenError(
            [
                Problem(
                    f"generated/{rel}",
                    1,
                    1,
                    "generated code does not parse (a generator bug): "
                    + (
                        proc.stderr.strip() or proc.stdout.strip() or f"ruff exit {proc.returncode}"
                    ),
                )
            ]
        )
    return proc.stdout


#: Fixed settings: generated output must not depend on the project's own ruff config.
SETTINGS = ["--isolated", "--line-length", "100", "--target-version", "py311"]


def _first_party(packages: Sequence[str]) -> list[str]:
    names = ", ".join(repr(p) for p in ("aragora_repos", *packages))
    return ["--config", f"lint.isort.known-first-party = [{names}]"]


FIXES = ["--select", "I,F401,UP,RUF022,RUF023"]


def format_files(
    files: Mapping[str, str], packages: Sequence[str] = ("aragora_db",)
) -> dict[str, str]:
    """Sort imports and format every Python file, so ``ruff format`` on it is a no-op;
    ``packages`` are the generated packages (first-party for import sorting).

    All files go through one ``ruff check --fix`` and one ``ruff format`` run over a
    scratch directory (two processes, not two per file); if ruff refuses the directory,
    the files are run one by one to name the one it cannot parse."""
    out = dict(files)
    settings = [*SETTINGS, *_first_party(packages)]
    python = {rel: text for rel, text in files.items() if rel.endswith(".py")}
    with tempfile.TemporaryDirectory(prefix="aragora-format-") as scratch:
        root = Path(scratch)
        for rel, text in python.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        fixed = subprocess.run(
            [_ruff(), "check", "--quiet", "--fix-only", *settings, *FIXES, "."],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        formatted = subprocess.run(
            [_ruff(), "format", "--quiet", *settings, "."],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if fixed.returncode != 0 or formatted.returncode != 0:
            for rel, text in python.items():  # raises naming the file ruff refuses
                text = _run(["check", "--quiet", "--fix-only", *settings, *FIXES], text, rel)
                _run(["format", "--quiet", *settings], text, rel)
            raise CodegenError(
                [Problem("generated/", 1, 1, f"ruff failed: {fixed.stderr}{formatted.stderr}")]
            )
        for rel in python:
            out[rel] = _allow_long_sql_lines((root / rel).read_text(encoding="utf-8"))
    return out


LONG_LINES = "# ruff: noqa: E501  (SQL text is kept as written, one line per source line)"


def _allow_long_sql_lines(text: str) -> str:
    """SQL constants keep the source's lines; waive the length rule where one is long."""
    lines = text.split("\n")
    if not any(len(line) > 100 for line in lines):
        return text
    at = next((i for i, line in enumerate(lines) if not line.startswith("#")), 0)
    return "\n".join([*lines[:at], LONG_LINES, *lines[at:]])
