"""Run the pinned ``ruff format`` over rendered Python, so formatting it again is a no-op."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from codegen.errors import CodegenError, Problem


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
                    f"generated code does not parse (a generator bug): {proc.stderr.strip()}",
                )
            ]
        )
    return proc.stdout


def format_files(files: Mapping[str, str], config_root: Path) -> dict[str, str]:
    """Sort imports and format every Python file with the project's ruff settings."""
    config = config_root / "pyproject.toml"
    settings = ["--config", str(config)] if config.exists() else ["--line-length", "100"]
    out = dict(files)
    for rel, text in files.items():
        if rel.endswith(".py"):
            text = _run(["check", "--quiet", "--fix-only", *settings], text, rel)
            out[rel] = _run(["format", "--quiet", *settings], text, rel)
    return out
