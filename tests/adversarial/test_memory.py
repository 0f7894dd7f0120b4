"""Memory bounded by bytes, not by row counts or whole inputs.

Found on an earlier main: migrate-data batches counted rows only (a 1.47 GB file of
25 MiB blobs peaked at 1.6 GB RSS), and ``:copyfrom`` on PostgreSQL built a list of its
whole input before copying.
"""

from __future__ import annotations

import sqlite3
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from aragora_db import connect
from aragora_db.audit import AppendAuditEventsParams
from aragora_repos import Config, Secret
from aragora_repos.tools.migrate_data import migrate_data
from aragora_repos.types import JSON

MIB = 1024 * 1024


@pytest.mark.postgres
async def test_migrate_data_batches_end_at_a_byte_budget(tmp_path: Path, target_dsn: str) -> None:
    source = tmp_path / "blobs.db"
    db = sqlite3.connect(source)
    db.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    db.executemany("INSERT INTO blobs (data) VALUES (randomblob(?))", [(3 * MIB,)] * 6)
    db.commit()
    db.close()
    conn = await asyncpg.connect(target_dsn)
    await conn.execute("CREATE TABLE blobs (id BIGINT PRIMARY KEY, data BYTEA NOT NULL)")
    await conn.close()
    # 3 MiB rows against a 4 MiB budget, whatever --batch-size says: the row path stops
    # reading once a batch reaches the budget (two rows); the columnar path sizes its
    # batches by the mean row (one row).
    for columnar, batches in ((False, 3), (True, 6)):
        report = await migrate_data(
            source, target_dsn, batch_bytes=4 * MIB, verify=True, columnar=columnar, restart=True
        )
        table = report.tables["blobs"]
        assert (table.migrated, table.batches) == (6, batches) and report.verified
        conn = await asyncpg.connect(target_dsn)
        await conn.execute("TRUNCATE blobs")
        await conn.close()


@pytest.mark.postgres
async def test_copyfrom_streams_its_input(target_dsn: str) -> None:
    db = await connect(Config(backend="postgres", dsn=Secret(target_dsn), pool_max=2))
    await db.migrate()
    rows = 40_000
    now = datetime.now(UTC)

    def events() -> Iterator[AppendAuditEventsParams]:
        for i in range(rows):
            details: JSON = {"payload": f"{i:08d}" * 125}  # 1 kB of its own per row
            yield AppendAuditEventsParams(
                now, None, None, f"action-{i}", "debate", str(i), details, None, None
            )

    tracemalloc.start()
    try:
        copied = await db.audit.append_audit_events(events())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await db.close()
    assert copied == rows
    # Held whole, the input is over 40 MB of objects; streamed, the peak is a few rows and
    # COPY buffers.
    assert peak < 16 * MIB, peak
