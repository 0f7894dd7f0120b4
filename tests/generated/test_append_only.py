"""audit_log is append-only in the database: UPDATE, DELETE and TRUNCATE are refused on
both backends alike; retention, in a transaction that allowed it, deletes rows older than
its cutoff and nothing newer; the permission ends with its transaction; another SQLite
tool cannot delete at all."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aragora_db import Database, connect
from aragora_db.audit import AppendAuditEventsParams
from aragora_repos import Config, IntegrityError

NOW = datetime.now(UTC)


async def _fill(db: Database) -> None:
    await db.audit.append_audit_events(
        [
            AppendAuditEventsParams(
                timestamp=NOW - timedelta(days=days),
                user_id=None,
                org_id="o",
                action=f"a{days}",
                resource_type="t",
                resource_id=None,
                details={},
                ip_address=None,
                user_agent=None,
            )
            for days in (100, 95, 10, 1)
        ]
    )


async def _count(db: Database) -> int:
    row = await db.backend.fetchrow("SELECT count(*) FROM audit_log", ())
    assert row is not None
    return int(row[0])


async def test_update_delete_and_truncate_are_refused(db: Database) -> None:
    await _fill(db)
    for sql in (
        "UPDATE audit_log SET action = 'forged'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE action = 'a100'",
    ):
        with pytest.raises(IntegrityError, match="append-only"):
            await db.backend.execute(sql, ())
    if db.backend.kind.value == "postgres":
        with pytest.raises(IntegrityError, match="append-only"):
            await db.backend.execute("TRUNCATE audit_log", ())
    assert await _count(db) == 4


async def test_retention_deletes_only_rows_older_than_its_cutoff(db: Database) -> None:
    await _fill(db)
    cutoff = NOW - timedelta(days=90)
    async with db.transaction():
        await db.backend.allow_retention(cutoff)
        assert await db.audit.delete_audit_events_before(cutoff=cutoff, lim=10) == 2
    assert await _count(db) == 2
    # Allowed up to a cutoff, a delete reaching past it is refused whole.
    with pytest.raises(IntegrityError, match="append-only"):
        async with db.transaction():
            await db.backend.allow_retention(NOW - timedelta(days=5))
            await db.backend.execute("DELETE FROM audit_log", ())
    assert await _count(db) == 2
    # The permission ended with its transaction.
    async with db.transaction():
        await db.backend.allow_retention(NOW)
    with pytest.raises(IntegrityError, match="append-only"):
        await db.backend.execute("DELETE FROM audit_log", ())
    assert await _count(db) == 2


async def test_another_sqlite_tool_cannot_delete(tmp_path: Path) -> None:
    db = await connect(Config(data_dir=tmp_path))
    try:
        await db.migrate()
        await _fill(db)
    finally:
        await db.close()
    other = sqlite3.connect(tmp_path / "aragora.db", isolation_level=None)
    try:
        for sql in ("DELETE FROM audit_log", "UPDATE audit_log SET action = 'x'"):
            with pytest.raises(sqlite3.DatabaseError):
                other.execute(sql)
        assert other.execute("SELECT count(*) FROM audit_log").fetchone() == (4,)
    finally:
        other.close()
