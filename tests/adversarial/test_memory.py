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
async def test_columnar_batches_stay_within_the_budget_where_large_rows_cluster(
    tmp_path: Path, target_dsn: str
) -> None:
    """Found by review: the columnar path sized its batches by the table's mean row, so
    a stretch of large rows among many small ones came in one batch (here 6 x 3 MiB
    blobs among 20,000 small rows: one batch of 18 MiB against a 4 MiB budget). A batch
    is now cut by its rows' sizes, read from their record headers, when the table's
    largest record could take a batch past the budget."""
    from aragora_repos.tools.migrate_data.columnar import ColumnarReader
    from aragora_repos.tools.migrate_data.plan import plan
    from aragora_repos.tools.migrate_data.source import _open_source

    source = tmp_path / "clustered.db"
    db = sqlite3.connect(source)
    db.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    small = [(i, b"x" * 40) for i in range(1, 10_001)]
    db.executemany("INSERT INTO blobs VALUES (?, ?)", small)
    db.executemany(
        "INSERT INTO blobs VALUES (?, randomblob(?))", [(10_000 + i, 3 * MIB) for i in range(1, 7)]
    )
    db.executemany("INSERT INTO blobs VALUES (?, ?)", [(i + 10_006, v) for i, v in small])
    db.commit()
    db.close()
    conn = await asyncpg.connect(target_dsn)
    try:
        await conn.execute("CREATE TABLE blobs (id BIGINT PRIMARY KEY, data BYTEA NOT NULL)")
        opened = _open_source(source, None)
        try:
            table = (await plan(opened, conn)).tables[0]
        finally:
            opened.close()
    finally:
        await conn.close()
    reader = ColumnarReader(source, table, 1000, 4 * MIB)
    try:
        assert reader.sized
        sizes, rows = [], 0
        for batch in reader.batches(None):
            sizes.append(sum(v.nbytes for v in batch.values))
            rows += batch.read
    finally:
        reader.close()
    assert rows == 20_006
    assert max(sizes) <= 4 * MIB + 64 * 1024, max(sizes)  # the budget, and Arrow's offsets
    report = await migrate_data(source, target_dsn, batch_bytes=4 * MIB, verify=True)
    assert report.tables["blobs"].migrated == 20_006 and report.verified


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
