"""Encrypted SQLite (SQLCipher 4) against plain SQLite, through the same generated code.

``python -m bench.sqlcipher [--rounds 21]`` (part of ``make bench``): two databases with
the same rows, one plain and one encrypted; every round times the plain one and the
encrypted one back to back (order alternating by round) and takes the ratio, encrypted
time / plain time. Reported: the median ratio and its interquartile range per scenario.
The raw drivers (sqlcipher3 against sqlite3) are measured the same way, to show the
cipher's own cost apart from the runtime's. Target: single-row reads within 1.5x
(the whole interquartile range at or under it). Results go to
``bench/results/sqlcipher.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from aragora_db import SyncDatabase, connect_sync
from aragora_db.audit import AppendAuditEventsParams
from aragora_db.models import UserRole
from aragora_repos import Config
from aragora_repos.backends.sqlite import Opener
from aragora_repos.config import SqliteKey
from bench.contract import ratio_rounds
from bench.harness import save

KEY = SqliteKey("bench-passphrase")
ROWS = 1000
TARGETS = {"single-row read": 1.5, "raw single-row read": 1.5}


def _fill(db: SyncDatabase) -> None:
    db.migrate()
    for i in range(ROWS):
        db.users.create_user(
            id=f"u{i}",
            email=f"u{i}@example.com",
            password_hash="h" * 60,
            password_salt="s" * 32,
            name=f"User {i}",
            org_id=None,
            role=UserRole.MEMBER,
        )
    db.audit.append_audit_events(_events("org-1", ROWS))


def _events(org: str, n: int) -> list[AppendAuditEventsParams]:
    now = datetime.now(UTC)
    return [
        AppendAuditEventsParams(
            timestamp=now,
            user_id=None,
            org_id=org,
            action="login",
            resource_type="user",
            resource_id=f"u{i}",
            details={"i": i, "ok": True},
            ip_address="10.0.0.1",
            user_agent="bench",
        )
        for i in range(n)
    ]


async def scenarios(directory: Path, rounds: int) -> dict[str, dict[str, float]]:
    plain_cfg = Config(data_dir=directory / "plain")
    enc_cfg = Config(data_dir=directory / "encrypted", sqlite_key=KEY)
    dbs = {}
    for name, cfg in (("plain", plain_cfg), ("encrypted", enc_cfg)):
        db = connect_sync(cfg)
        _fill(db)
        # A bench database: the insert scenario deletes its rows again, which the
        # append-only audit log would refuse.
        db.connection.execute("DROP TRIGGER audit_log_append_only_delete", ())
        dbs[name] = db
    raw_plain = sqlite3.connect(plain_cfg.sqlite_file, isolation_level=None)
    raw_enc = Opener(KEY).connect(enc_cfg.sqlite_file, isolation_level=None)
    get_sql = "SELECT id, email, password_hash, name FROM users WHERE id = ?"
    bulk = _events("org-bulk", ROWS)

    def read(db: SyncDatabase) -> Callable[[], object]:
        return lambda: db.users.get_user_by_id(id="u500")

    def many(db: SyncDatabase) -> Callable[[], object]:
        return lambda: db.audit.list_audit_events_by_org(org_id="org-1", off=0, lim=ROWS)

    def insert(db: SyncDatabase) -> Callable[[], object]:
        def go() -> None:
            with db.transaction():
                db.audit.append_audit_events(bulk)
                db.connection.execute("DELETE FROM audit_log WHERE org_id = 'org-bulk'", ())

        return go

    def raw_read(conn: sqlite3.Connection) -> Callable[[], object]:
        return lambda: conn.execute(get_sql, ("u500",)).fetchone()

    out = {
        "single-row read": await ratio_rounds(
            read(dbs["plain"]), read(dbs["encrypted"]), rounds, 2000
        ),
        "raw single-row read": await ratio_rounds(
            raw_read(raw_plain), raw_read(raw_enc), rounds, 2000
        ),
        "1,000-row read": await ratio_rounds(
            many(dbs["plain"]), many(dbs["encrypted"]), rounds, 10
        ),
        "1,000-row insert (and delete), one transaction": await ratio_rounds(
            insert(dbs["plain"]), insert(dbs["encrypted"]), rounds, 3
        ),
    }
    for name, target in TARGETS.items():
        out[name]["target"] = target
        out[name]["met"] = float(out[name]["iqr_high"] <= target)
    raw_plain.close()
    raw_enc.close()
    for db in dbs.values():
        db.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sqlcipher")
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(scenarios(Path(tmp), args.rounds))
    print(save("sqlcipher", results))


if __name__ == "__main__":
    main()
