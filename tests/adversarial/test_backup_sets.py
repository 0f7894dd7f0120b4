"""``aragora-repos backup`` and ``restore`` against concurrency, kills and hostile names.

Found while attacking them: eight backups at once with ``--keep-days 0`` pruned sets that
other processes were still writing (their copy vanished mid-backup).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aragora_repos.tools.backup_sets import MANIFEST, verify_set

ROOT = Path(__file__).parent.parent.parent
HOSTILE = 'tab"le\n-- ;name'
CLI = [sys.executable, "-m", "aragora_db"]


def make_data(data: Path, blobs: int) -> None:
    data.mkdir()
    db = sqlite3.connect(data / "aragora.db")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(
        f'CREATE TABLE "{HOSTILE.replace(chr(34), chr(34) * 2)}" (id INTEGER PRIMARY KEY, b)'
    )
    db.executemany(
        f'INSERT INTO "{HOSTILE.replace(chr(34), chr(34) * 2)}" (b) VALUES (randomblob(?))',
        [(1 << 20,)] * blobs,
    )
    db.commit()
    db.close()


def env_for(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "DATABASE_URL" not in k}
    env["ARAGORA_DATA_DIR"] = str(data)
    return env


def test_eight_backups_at_once_with_pruning_all_finish(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_data(data, blobs=40)
    procs = [
        subprocess.Popen(
            [*CLI, "backup", "--keep-days", "0"],
            cwd=ROOT,
            env=env_for(data),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = [(p.wait(timeout=300), p.communicate()) for p in procs]
    failed = [err for code, (_, err) in results if code]
    assert failed == [], failed[0]
    sets = list((data / "backup").iterdir())
    assert sets, "the newest set always stays"
    for folder in sets:
        counts = verify_set(folder)
        assert counts["aragora.db"] == {HOSTILE: 40}


def test_a_killed_restore_leaves_the_old_or_the_new_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_data(data, blobs=60)
    env = env_for(data)
    subprocess.run([*CLI, "backup"], cwd=ROOT, env=env, check=True, capture_output=True)
    (folder,) = list((data / "backup").iterdir())
    assert (folder / MANIFEST).is_file()
    db = sqlite3.connect(data / "aragora.db")
    db.execute(f'DELETE FROM "{HOSTILE.replace(chr(34), chr(34) * 2)}" WHERE id > 30')
    db.commit()
    db.close()
    proc = subprocess.Popen(
        [*CLI, "restore", str(folder), "--no-backup"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wal = data / "aragora.db-wal"
    # Killed once the restore has written into the live database's log.
    while proc.poll() is None and not (wal.exists() and wal.stat().st_size > 8 << 20):
        pass
    assert proc.poll() is None, "the restore was still running when killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(data / "aragora.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute(
            f'SELECT count(*) FROM "{HOSTILE.replace(chr(34), chr(34) * 2)}"'
        ).fetchone()[0]
    finally:
        db.close()
    assert rows in (30, 60)
    # A second restore finishes the job.
    subprocess.run(
        [*CLI, "restore", str(folder), "--no-backup"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    db = sqlite3.connect(data / "aragora.db")
    assert db.execute(
        f'SELECT count(*) FROM "{HOSTILE.replace(chr(34), chr(34) * 2)}"'
    ).fetchone() == (60,)
    db.close()


def test_backup_sets_are_private_under_umask_022(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_data(data, blobs=1)
    old = os.umask(0o022)
    try:
        subprocess.run(
            [*CLI, "backup"], cwd=ROOT, env=env_for(data), check=True, capture_output=True
        )
    finally:
        os.umask(old)
    (folder,) = list((data / "backup").iterdir())
    assert (data / "backup").stat().st_mode & 0o777 == 0o700
    assert folder.stat().st_mode & 0o777 == 0o700
    for f in folder.iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f


@pytest.mark.parametrize("keep", ["-1", "nan"])
def test_bad_keep_days_is_refused(tmp_path: Path, keep: str) -> None:
    data = tmp_path / "data"
    make_data(data, blobs=1)
    proc = subprocess.run(
        [*CLI, "backup", "--keep-days", keep],
        cwd=ROOT,
        env=env_for(data),
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "keep-days" in proc.stderr
