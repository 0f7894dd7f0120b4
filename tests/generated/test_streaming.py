"""Every :many query has a streaming form, ``<name>_iter``: the same rows, typed the same,
as they come (a server-side cursor on PostgreSQL, batched reads on SQLite). On SQLite a
stream outside a transaction reads on a connection of its own, so a write goes on while
it is half read; inside a transaction it sees that transaction's writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aragora_db
from aragora_db import Database, connect_sync
from aragora_db.audit import AppendAuditEventsParams
from aragora_repos import Config

START = datetime(2024, 1, 1, tzinfo=UTC)


def _events(n: int) -> list[AppendAuditEventsParams]:
    return [
        AppendAuditEventsParams(
            timestamp=START + timedelta(seconds=i),
            user_id=f"u{i % 3}",
            org_id="o1",
            action="login",
            resource_type="session",
            resource_id=str(i),
            details={"i": i},
            ip_address=None,
            user_agent=None,
        )
        for i in range(n)
    ]


async def test_a_stream_gives_the_lists_rows(db: Database) -> None:
    await db.audit.append_audit_events(_events(1200))
    listed = await db.audit.list_audit_events_by_org(org_id="o1", off=0, lim=5000)
    streamed = [
        e async for e in db.audit.list_audit_events_by_org_iter(org_id="o1", off=0, lim=5000)
    ]
    assert streamed == listed and len(streamed) == 1200
    counts = [c async for c in db.audit.count_audit_events_by_action_iter(org_id="o1")]
    assert counts == await db.audit.count_audit_events_by_action(org_id="o1")
    # Stopping early closes the cursor (and the transaction the stream opened).
    async for first in db.audit.list_audit_events_by_org_iter(org_id="o1", off=0, lim=5000):
        assert first.resource_id == "1199"  # newest first, as the query orders
        break
    assert await db.audit.list_audit_events_by_org(org_id="o1", off=0, lim=1)


async def test_a_stream_inside_a_transaction_sees_its_writes(db: Database) -> None:
    async with db.transaction():
        await db.audit.append_audit_events(_events(3))
        seen = [e async for e in db.audit.list_audit_events_by_org_iter(org_id="o1", off=0, lim=10)]
        assert [e.resource_id for e in seen] == ["2", "1", "0"]


async def test_on_sqlite_a_write_goes_on_while_a_stream_is_half_read(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path)
    db = await aragora_db.connect(config)
    try:
        await db.migrate()
        await db.audit.append_audit_events(_events(2000))
        stream = db.audit.list_audit_events_by_org_iter(org_id="o1", off=0, lim=5000)
        first = await anext(stream)
        assert first.resource_id == "1999"
        # The writer is free: a write commits while the stream holds its read open.
        await db.audit.append_audit_events(_events(1))
        rest = [e async for e in stream]
        assert len(rest) == 1999  # the stream reads its own snapshot, begun before the write
        assert len(await db.audit.list_audit_events_by_org(org_id="o1", off=0, lim=5000)) == 2001
    finally:
        await db.close()
    with connect_sync(config) as sync_db:
        assert (
            sum(
                1 for _ in sync_db.audit.list_audit_events_by_org_iter(org_id="o1", off=0, lim=5000)
            )
            == 2001
        )
