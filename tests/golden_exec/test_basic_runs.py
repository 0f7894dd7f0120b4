"""The generated code of the ``basic`` golden case runs, with equal results, on both
backends: every command kind and the type families the Aragora schema does not use
(uuid, date, bytea-free rows, arrays, enum arrays, JSON scalars)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg_server import fresh_database

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _run(package_root: Path, *args: str, script: str = "roundtrip.py") -> str:
    env = {**os.environ, "PYTHONPATH": f"{package_root}{os.pathsep}{ROOT}"}
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=package_root,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.postgres
def test_basic_case_same_results_on_both_backends(tmp_path: Path, postgres_dsn: str) -> None:
    package_root = tmp_path / "pkg"
    shutil.copytree(
        ROOT / "tests" / "golden" / "basic" / "expected" / "aragora_db", package_root / "aragora_db"
    )
    sqlite_out = _run(package_root, "sqlite", str(tmp_path / "data"))
    with fresh_database(postgres_dsn) as dsn:  # its own schema_version, not the session's
        postgres_out = _run(package_root, dsn)
    assert sqlite_out == postgres_out
    ada, bob, fetched, count, listed, copied, renamed, touched, bio, final = json.loads(sqlite_out)
    assert ada == fetched and ada["tags"] == ["x", "é", ""] and ada["mood"] == "in-between"
    assert ada["external"] == "UUID:00000000-0000-0000-0000-000000000007"
    assert ada["born_on"] == "date:1815-12-10" and ada["profile"] == {"k": [1, {"n": None}]}
    assert (bob["bio"], bob["tags"], bob["profile"], bob["active"]) == ("b", [], "s", True)
    assert count == 2 and [r["name"] for r in listed] == ["Bob", "Ada"]  # NULL bio last
    assert (copied, renamed, touched, bio) == (3, 1, {"rows_affected": 2}, {"bio": "b"})
    assert [r["name"] for r in final] == ["Ada L.", "n0", "n1", "n2"]


@pytest.mark.postgres
def test_every_annotation_kind_same_results_on_both_backends(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """The ``annotations`` golden case: :one (model, row class, scalar, nullable scalar),
    :many, :exec, :execrows, :execresult, :copyfrom and :batchexec, async on both
    backends and sync on SQLite (the script checks sync equals async)."""
    package_root = tmp_path / "pkg"
    shutil.copytree(
        ROOT / "tests" / "golden" / "annotations" / "expected" / "aragora_db",
        package_root / "aragora_db",
    )
    script = "annotations_roundtrip.py"
    sqlite_out = _run(package_root, "sqlite", str(tmp_path / "data"), script=script)
    with fresh_database(postgres_dsn) as dsn:
        postgres_out = _run(package_root, dsn, script=script)
    assert sqlite_out == postgres_out
    (first, second, got, missing, listed, copied, labelled, published, count, bodies,
     no_body, retitled, deleted, after) = json.loads(sqlite_out)  # fmt: skip
    assert got == first and missing is None and first["labels"] == ["a", "b"]
    assert [r["title"] for r in listed] == ["two", "one"]  # newest first, 99 absent
    assert (copied, labelled, count) == (3, 1, 5)
    assert published == [{"id": second["id"], "title": "two"}]
    assert bodies == [{"body": None}, {"body": "text"}] and no_body is None
    assert retitled == {"rows_affected": 1} and deleted == 4
    assert after == published
