"""The only module that writes generated output or compares it with what is on disk."""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path


def diff(out_dir: Path, files: Mapping[str, str]) -> list[str]:
    """Unified diffs between ``files`` and ``out_dir``; stale extra files count too."""
    out: list[str] = []
    existing = (
        {
            p.relative_to(out_dir).as_posix()
            for p in out_dir.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        if out_dir.exists()
        else set()
    )
    for rel in sorted(set(files) | existing):
        old = (out_dir / rel).read_text(encoding="utf-8") if rel in existing else ""
        new = files.get(rel, "")
        if old != new or rel not in existing or rel not in files:
            out.extend(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    f"a/generated/{rel}",
                    f"b/generated/{rel}",
                )
            )
            if rel not in files:
                out.append(f"generated/{rel}: not produced by the generator\n")
    return out


def write(out_dir: Path, files: Mapping[str, str]) -> None:
    """Replace ``out_dir`` with exactly ``files``, atomically as far as rename allows.

    Everything is written to a sibling temporary directory first, so a failure part way
    leaves the previous output untouched.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".generated-", dir=out_dir.parent))
    try:
        for rel, text in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        backup = out_dir.with_name(out_dir.name + ".old")
        if backup.exists():
            shutil.rmtree(backup)
        if out_dir.exists():
            os.replace(out_dir, backup)
        os.replace(staging, out_dir)
        if backup.exists():
            shutil.rmtree(backup)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
