"""Inputs that gave raw tracebacks or private names become errors from the error tree.

Found on an earlier main: invalid UTF-8 in a source table name, text versions in a
hand-edited ``schema_version`` and ``[::1`` in a DSN gave raw tracebacks; a private class
name (``_Unsent``) showed in messages.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aragora_db.__main__ import main as cli_main
from aragora_repos import Config, ConnectionUnavailable, RetriesExhausted, open_async

BAD = b"bad\xffname"


def invalid_utf8_table(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE placeholder (x INTEGER)")
    db.execute("PRAGMA writable_schema = ON")
    db.execute(
        "UPDATE sqlite_schema SET name = CAST(?1 AS TEXT), tbl_name = CAST(?1 AS TEXT), "
        "sql = CAST(?2 AS TEXT) WHERE name = 'placeholder'",
        (BAD, b'CREATE TABLE "' + BAD + b'" (x INTEGER)'),
    )
    db.commit()
    db.close()
    return path


def test_invalid_utf8_names_are_named_not_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = invalid_utf8_table(tmp_path / "src.db")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    invalid_utf8_table(legacy / "debates.db")
    for argv in (
        ["import-sqlite", str(source), "--print"],
        ["consolidate", "--dry-run", "--source", str(legacy)],
        [
            "migrate-data",
            "--sqlite-path",
            str(source),
            "--postgres-dsn",
            "postgresql://u@127.0.0.1:1/d",
        ],
    ):
        assert cli_main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "not valid UTF-8" in err and "bad\\xffname" in err, err


def test_text_versions_in_schema_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE schema_version (version, name, checksum, applied_at, execution_ms, success)"
    )
    db.execute("INSERT INTO schema_version VALUES ('one', 'init', 'x', '2024-01-01', 0, 1)")
    db.commit()
    db.close()
    monkeypatch.setenv("ARAGORA_SQLITE_PATH", str(path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for argv in (["migrate", "status"], ["migrate", "up", "--no-backup"]):
        assert cli_main(argv) == 1
        err = capsys.readouterr().err
        assert "version 'one' (str) is not an integer" in err, err


async def test_no_private_class_names_in_messages(tmp_path: Path) -> None:
    """The error a statement gets when no connection could be had is public, so the
    retry loop's message names a class a caller can catch."""
    db = await open_async(Config(data_dir=tmp_path))
    attempts = 0

    async def fails() -> None:
        nonlocal attempts
        attempts += 1
        raise ConnectionUnavailable("cannot connect to postgresql://u@h/d: OSError")

    try:
        with pytest.raises(RetriesExhausted) as info:
            await db.run_in_transaction(fails, retries=2, base_delay=0.0, max_delay=0.0)
    finally:
        await db.close()
    assert attempts == 3
    assert "ConnectionUnavailable" in str(info.value) and "_Unsent" not in str(info.value)


def test_ipv6_bracket_dsn_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--database-url", "postgresql://u:pw@[::1/d", "health"]) == 1
    err = capsys.readouterr().err
    assert "IPv6 host opens '['" in err and "pw" not in err
