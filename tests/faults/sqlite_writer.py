"""A SQLite writer process for the fault tests: ``sqlite_writer.py PATH WORKER SECONDS``.

Each transaction (``BEGIN IMMEDIATE``) reads a counter, bumps it and inserts a row; after
COMMIT returns, the row id is printed and flushed, so the parent knows what was
acknowledged. Lock errors surfaced to this process are counted and printed at the end.
"""

from __future__ import annotations

import sys
import time

from aragora_repos import DatabaseBusy
from aragora_repos.backends.sqlite import SqliteConnection


def main() -> None:
    path, worker, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    conn = SqliteConnection(path, timeout=30)
    locked = 0
    n = 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        n += 1
        key = f"{worker}-{n}"
        try:
            with conn.transaction():
                row = conn.fetchone("SELECT value FROM counter WHERE id = 1", ())
                assert row is not None
                conn.execute("UPDATE counter SET value = ? WHERE id = 1", (row[0] + 1,))
                conn.execute("INSERT INTO acked (key) VALUES (?)", (key,))
        except DatabaseBusy:
            locked += 1
            continue
        sys.stdout.write(f"{key}\n")
        sys.stdout.flush()
    sys.stdout.write(f"LOCKED {locked}\n")
    conn.close()


if __name__ == "__main__":
    main()
