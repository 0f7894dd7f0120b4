"""Pre-migration backups against concurrency, kills, failures and planted files.

Found on an earlier main: with 8 migrators starting together on a DROP COLUMN migration,
7 of 10 rounds kept no backup holding the dropped values (folders named to the second
were reused and overwritten); a killed SQLite backup left a file that opened as a valid
empty database; a failed pg_dump left a 0-byte dump under its final name.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aragora_repos import Secret
from aragora_repos.backends.postgres import PostgresDatabase
from aragora_repos.backends.sqlite import AsyncSqliteDatabase, SqliteConnection
from aragora_repos.backup import PARTIAL, client_binary, new_backup_folder
from aragora_repos.errors import BackupError
from tests.adversarial.drop_column import CREATE, ROWS
from tests.conftest import BACKENDS
from tests.reliability.test_migrations import opened, target

ROOT = Path(__file__).parent.parent.parent
ROUNDS = int(os.environ.get("ARAGORA_ADVERSARIAL_ROUNDS", "3"))
PROCESSES = 8


async def seed(where: str) -> None:
    async with opened(where) as db:
        await db.migrate([CREATE])
        rows = [(i, f"secret-{i}") for i in range(ROWS)]
        if isinstance(db, PostgresDatabase):
            await db.executemany("INSERT INTO items VALUES ($1, $2)", rows)
        else:
            assert isinstance(db, AsyncSqliteDatabase)
            await db.run(db.connection.executemany, "INSERT INTO items VALUES (?, ?)", rows)


def secrets_in(backup: Path) -> int:
    """How many of the dropped values a finished backup holds (it must open and verify)."""
    if backup.suffix == ".dump":
        restore = client_binary("pg_restore")
        assert restore is not None
        out = subprocess.run(
            [restore, "--data-only", "--table=items", "--file=-", str(backup)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.count("\tsecret-")
    conn = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        columns = [r[1] for r in conn.execute("PRAGMA table_info(items)")]
        if "secret" not in columns:
            return 0
        return int(
            conn.execute("SELECT count(*) FROM items WHERE secret LIKE 'secret-%'").fetchone()[0]
        )
    finally:
        conn.close()


def run_migrators(where: str, root: Path) -> list[dict[str, list[object]]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.adversarial.migrator", where, str(root)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    for p in procs:  # a barrier: every process has opened the database
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=180) for p in procs]
    failed = [err for p, (_, err) in zip(procs, outputs, strict=True) if p.returncode]
    assert not failed, failed
    return [json.loads(out) for out, _ in outputs]


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_migrators_keep_a_verified_backup_of_dropped_values(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rounds_kept = 0
    for n in range(ROUNDS):
        root = tmp_path / f"backups{n}"
        with target(backend, tmp_path, request) as where:
            asyncio.run(seed(where))
            results = run_migrators(where, root)
        applied = sorted(int(str(v)) for r in results for v in r["applied"])
        assert applied == [2], "the DROP COLUMN migration ran once"
        taken = [Path(str(b)) for r in results for b in r["backups"]]
        # Only the process that applied the step took a backup, and it holds every value.
        assert len(taken) == 1 and [r["backups"] for r in results if r["applied"]] == [
            [str(taken[0])]
        ]
        finished = sorted(p for p in root.rglob("*") if p.is_file())
        assert finished == taken, "nothing else under the backup folder"
        assert not any(p.name.endswith(PARTIAL) for p in finished)
        rounds_kept += secrets_in(taken[0]) == ROWS
    print(
        f"\nFIGURE backups [{backend}]: {ROUNDS} rounds x {PROCESSES} migrators, rounds "
        f"whose verified backup holds all {ROWS} dropped values: {rounds_kept}"
    )
    assert rounds_kept == ROUNDS


def test_killed_sqlite_backup_never_looks_finished(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
    conn.executemany("INSERT INTO blobs (data) VALUES (randomblob(65536))", [()] * 3000)
    conn.commit()
    conn.close()
    root = tmp_path / "backup"
    code = (
        "import sys; from pathlib import Path; "
        "from aragora_repos.backends.sqlite import SqliteConnection; "
        f"SqliteConnection({str(path)!r}).backup(Path({str(root)!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    # Wait for the copy to start (the partial file exists and is growing), then kill.
    while proc.poll() is None:
        partial = list(root.rglob(f"*{PARTIAL}"))
        if partial and partial[0].stat().st_size > 0:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = [p for p in root.rglob("*.db")]
    assert finished == [], "a killed backup left a file under its final name"
    assert list(root.rglob(f"*{PARTIAL}")), "the unfinished copy is marked as such"
    # The next backup goes to a folder of its own and finishes.
    done = SqliteConnection(path).backup(root)
    assert done.name == "big.db" and secrets_in(done) == 0
    assert len(list(root.iterdir())) == 2


@pytest.mark.postgres
def test_failed_pg_dump_leaves_nothing_under_a_final_name(
    postgres_dsn: str, tmp_path: Path
) -> None:
    missing = postgres_dsn.rsplit("/", 1)[0] + "/no_such_database_for_backup_test"
    with pytest.raises(BackupError) as info:
        from aragora_repos.backup import pg_dump_backup

        pg_dump_backup(Secret(missing), tmp_path / "backup", tables=0)
    assert "pg_dump exited" in str(info.value)
    assert list((tmp_path / "backup").rglob("*.dump")) == []


def test_backup_folders_are_exclusive_private_and_ignore_planted_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = os.umask(0o022)
    try:
        _check_private_backups(tmp_path)
    finally:
        os.umask(old)


def _check_private_backups(tmp_path: Path) -> None:
    root = tmp_path / "data" / "backup"
    victim = tmp_path / "victim"
    victim.mkdir()
    with new_backup_folder(root) as first:
        # Plant a link at the next predictable name (same second, suffix _2).
        planted = root / f"{first.name}_2"
        planted.symlink_to(victim)
    with new_backup_folder(root) as second:
        pass
    assert second not in (first, planted) and not second.is_symlink()
    assert list(victim.iterdir()) == []
    for folder in (root, first, second, root.parent):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    db = SqliteConnection(tmp_path / "data" / "aragora.db")
    db.execute("CREATE TABLE t (x)", ())
    made = db.backup(root)
    db.close()
    assert made.stat().st_mode & 0o777 == 0o600
    for name in ("aragora.db", "aragora.db-wal", "aragora.db-shm"):
        f = tmp_path / "data" / name
        if f.exists():
            assert f.stat().st_mode & 0o777 == 0o600, name
