"""Attacks on adopt and import-sqlite: eight processes adopting at once, hostile names and
values (quotes, newlines, NUL, text that is not UTF-8), a canary password through the
error path, files made under umask 022."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aragora_db import MIGRATIONS
from aragora_db.__main__ import main as cli_main
from aragora_db.schema import EXPECTED
from aragora_repos import Config
from aragora_repos.tools.adopt import adopt
from aragora_repos.tools.import_sqlite import import_sqlite
from tests.migrate_data import legacy

ROOT = Path(__file__).parent.parent.parent


def test_eight_processes_adopting_at_once_copy_each_row_once(tmp_path: Path) -> None:
    source = legacy.legacy_layout(tmp_path / "nomic")
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARAGORA_DATA_DIR": str(data)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aragora_db", "adopt", "--source", str(source), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    outputs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [e for _, e in outputs]
    for out, _ in outputs:
        assert json.loads(out)["accounted"] is True
    db = sqlite3.connect(data / "aragora.db")
    try:
        assert db.execute("SELECT count(*) FROM users").fetchone() == (20,)
        assert db.execute("SELECT count(*) FROM consensus").fetchone() == (20,)
        assert db.execute("SELECT count(DISTINCT slug) FROM debates").fetchone() == (20,)
    finally:
        db.close()
    report = asyncio.run(adopt(source, Config(data_dir=data), MIGRATIONS, EXPECTED, verify=True))
    assert report.verified is True and report.exit_code() == 0


def test_hostile_values_arrive_or_are_rejected_with_a_reason(tmp_path: Path) -> None:
    source = legacy.legacy_layout(tmp_path / "nomic")
    db = sqlite3.connect(source / "users.db")
    db.execute(
        "INSERT INTO users (id, email, password_hash, password_salt, name, created_at, "
        "updated_at) VALUES (?, ?, 'h', 's', ?, '2024-01-01', '2024-01-01')",
        ('it\'s "odd"\nline', "q'uote\"@x", "Robert'); DROP TABLE users;--"),
    )
    db.execute(
        "INSERT INTO users (id, email, password_hash, password_salt, name) "
        "VALUES ('nul', 'nul@x', 'h', 's', ?)",
        ("a\x00b",),
    )
    db.execute(
        "INSERT INTO users (id, email, password_hash, password_salt, name) "
        "VALUES ('bad', 'bad@x', 'h', 's', CAST(x'ff00fe' AS TEXT))"
    )
    db.commit()
    db.close()
    config = Config(data_dir=tmp_path / "data")
    report = asyncio.run(adopt(source, config, MIGRATIONS, EXPECTED, verify=True))
    assert report.accounted and report.exit_code() == 3, report.render()
    users = next(t for t in report.tables if t.table == "users")
    assert users.rows == 23 and users.in_target == 21 and users.rejected == 2
    assert report.reject_file is not None
    rejects = {
        r["key"]: r["reason"]
        for r in map(json.loads, Path(report.reject_file).read_text().splitlines())
    }
    assert "NUL" in rejects["nul"] and "UTF-8" in rejects["bad"]
    target = sqlite3.connect(config.sqlite_file)
    try:
        assert target.execute(
            "SELECT email, name FROM users WHERE id = ?", ('it\'s "odd"\nline',)
        ).fetchone() == ("q'uote\"@x", "Robert'); DROP TABLE users;--")
    finally:
        target.close()


def test_a_canary_password_never_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = legacy.legacy_layout(tmp_path / "nomic")
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path / "data"))
    canary = "Canary-Pw-7f3e"
    code = cli_main(
        [
            "adopt",
            "--source",
            str(source),
            "--target",
            "postgres",
            "--database-url",
            f"postgresql://someone:{canary}@127.0.0.1:1/nowhere",
        ]
    )
    out = capsys.readouterr()
    assert code != 0
    assert canary not in out.out + out.err


def test_files_made_under_umask_022_are_private(tmp_path: Path) -> None:
    source = legacy.legacy_layout(tmp_path / "nomic")
    db = sqlite3.connect(source / "users.db")
    db.execute("UPDATE users SET role = 'emperor' WHERE id = 'u1'")  # a reject file too
    db.commit()
    db.close()
    old = os.umask(0o022)
    try:
        config = Config(data_dir=tmp_path / "data")
        report = asyncio.run(adopt(source, config, MIGRATIONS, EXPECTED))
    finally:
        os.umask(old)
    assert report.exit_code() == 3
    work = tmp_path / "data" / "adopt"
    made = [work, *work.iterdir(), config.sqlite_file]
    assert len(made) > 5
    for path in made:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_import_of_hostile_names_generates_or_refuses_clearly(tmp_path: Path) -> None:
    source = tmp_path / "names.db"
    db = sqlite3.connect(source)
    db.execute('CREATE TABLE "a""b" ("x y" INTEGER PRIMARY KEY, "select" TEXT, "É" TEXT)')
    db.execute('CREATE TABLE "line\nbreak" (id INTEGER)')
    db.commit()
    db.close()
    with pytest.raises(Exception, match="line break or control character"):
        import_sqlite(source, tmp_path / "schema")
    assert not (tmp_path / "schema").exists() or not list((tmp_path / "schema").iterdir())
    result = import_sqlite(source, tmp_path / "schema", tables=['a"b'])
    assert result.path is not None
    assert 'CREATE TABLE "a""b" (' in result.sql and '"select" TEXT' in result.sql
