"""A project of the tests' own: an ``sqlc.yaml`` naming one package, one migration, one
query file, generated and run in a subprocess with the generated package importable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
CONFIG = """version: "2"
options:
  aragora:
    out: "src"
sql:
  - name: "{package}"
    engine: "postgresql"
    schema: "sql/schema"
    queries: "sql/queries"
    gen:
      json:
        out: "build/sqlc"
        filename: "request.json"
"""


def write_project(root: Path, package: str, schema: str, queries: str, stem: str) -> Path:
    """``root`` with its sqlc.yaml, ``sql/schema/0001_<stem>.sql`` and
    ``sql/queries/<stem>.sql``; generated code goes to ``root/src``."""
    (root / "sql" / "schema").mkdir(parents=True)
    (root / "sql" / "queries").mkdir(parents=True)
    (root / "sqlc.yaml").write_text(CONFIG.format(package=package))
    (root / "sql" / "schema" / f"0001_{stem}.sql").write_text(schema)
    (root / "sql" / "queries" / f"{stem}.sql").write_text(queries)
    return root


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python *args`` in ``cwd`` with ``cwd/src`` and this repository importable."""
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd / "src"), str(ROOT)])}
    full.pop("ARAGORA_CODEGEN_POSTGRES_DSN", None)
    return subprocess.run(
        [sys.executable, *args],
        env={**full, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def run_ok(cwd: Path, *args: str) -> str:
    proc = run(cwd, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
