"""SQLite under concurrent writer processes and SIGKILL. Each prints a ``FIGURE`` line."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from aragora_repos.backends.sqlite import SqliteConnection

SECONDS = float(os.environ.get("ARAGORA_FAULT_SECONDS", "5"))
KILLS = 100 if SECONDS >= 30 else 20
WRITER = [sys.executable, "-m", "tests.faults.sqlite_writer"]


def _prepare(path: Path) -> None:
    conn = SqliteConnection(path)
    with conn.transaction():
        conn.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)", ())
        conn.execute("INSERT INTO counter VALUES (1, 0)", ())
        conn.execute("CREATE TABLE acked (id INTEGER PRIMARY KEY, key TEXT NOT NULL)", ())
    conn.close()


def _check(path: Path) -> tuple[set[str], int, str]:
    conn = sqlite3.connect(path)
    try:
        keys = [r[0] for r in conn.execute("SELECT key FROM acked")]
        counter = conn.execute("SELECT value FROM counter").fetchone()[0]
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    assert len(keys) == len(set(keys)), "duplicate rows"
    assert counter == len(keys), "counter and rows disagree: a partial transaction"
    return set(keys), counter, integrity


def test_eight_writer_processes(tmp_path: Path) -> None:
    path = tmp_path / "writers.db"
    _prepare(path)
    procs = [
        subprocess.Popen(
            [*WRITER, str(path), str(w), str(SECONDS)], stdout=subprocess.PIPE, text=True
        )
        for w in range(8)
    ]
    acked: set[str] = set()
    locked = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=SECONDS + 120)
        assert proc.returncode == 0
        for line in out.splitlines():
            if line.startswith("LOCKED "):
                locked += int(line.split()[1])
            else:
                acked.add(line)
    stored, _, integrity = _check(path)
    lost = len(acked - stored)
    print(
        f"\nFIGURE sqlite 8 writer processes {SECONDS:.0f}s: {len(acked)} commits acknowledged, "
        f"{locked} 'database is locked' errors surfaced, {lost} lost rows, integrity {integrity}"
    )
    assert (locked, lost, integrity) == (0, 0, "ok")
    assert len(acked) > 0


def test_sigkill_never_loses_an_acknowledged_commit(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    _prepare(path)
    rng = random.Random(5)
    acked: set[str] = set()
    for round_ in range(KILLS):
        proc = subprocess.Popen([*WRITER, str(path), str(round_), "60"], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        deadline = time.monotonic() + rng.uniform(0.3, 0.8)
        data = b""
        # Read acknowledgements until the kill time, then kill mid-stream.
        while time.monotonic() < deadline:
            try:
                data += os.read(fd, 65536)
            except BlockingIOError:
                time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        proc.stdout.close()
        buffer = data.decode()
        lines = buffer.split("\n")
        acked.update(line for line in lines[:-1] if line)  # the last may be partial
    stored, _, integrity = _check(path)
    lost = len(acked - stored)
    print(
        f"\nFIGURE sqlite SIGKILL x{KILLS}: {len(acked)} acknowledged commits, {lost} lost, "
        f"integrity {integrity}"
    )
    assert (lost, integrity) == (0, "ok")
    assert len(acked) > 0
