"""Verification: row counts and order-independent checksums on both sides."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from aragora_repos.backends.sqlite import Opener
from aragora_repos.tools.canonical import row_hash_sql
from aragora_repos.tools.migrate_data.copier import Start
from aragora_repos.tools.migrate_data.plan import TablePlan
from aragora_repos.tools.migrate_data.report import TableReport
from aragora_repos.tools.migrate_data.source import Batch, SourceReader
from aragora_repos.tools.migrate_data.state import STATE_SCHEMA, quote
from aragora_repos.tools.migrate_data.target import Target

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]


@dataclass(frozen=True, slots=True)
class Checksum:
    rows: int
    total: int

    def __str__(self) -> str:
        return f"{self.rows:,} rows, checksum {self.total & 0xFFFFFFFFFFFFFFFF:016x}"


def source_checksum(
    path: Path,
    table: TablePlan,
    positions: list[str] | None = None,
    *,
    upto: Any = None,
    batch_size: int = 5000,
    opener: Opener | None = None,
) -> Checksum:
    """Over the source rows as converted (rows no rule converts are left out): the whole
    table, or only the rows at ``positions``; only rows not after ``upto`` when given."""
    reader = SourceReader(path, table, hashes=True, opener=opener)
    rows = total = 0
    try:
        batches: Iterator[Batch]
        if positions is not None:
            batches = (
                reader.read_positions(positions[i : i + batch_size], upto)
                for i in range(0, len(positions), batch_size)
            )
        else:
            batches = _batches(reader, batch_size, upto)
        for batch in batches:
            assert batch.hashes is not None
            rows += len(batch.hashes)
            total += sum(batch.hashes)
    finally:
        reader.close()
    return Checksum(rows, total)


def _batches(reader: SourceReader, batch_size: int, upto: Any = None) -> Iterator[Batch]:
    after = None
    while (batch := reader.read(after, batch_size, upto)).read:
        after = batch.last_key
        yield batch


def target_checksum_sql(schema: str, table: TablePlan) -> str:
    return (
        f"SELECT count(*), coalesce(sum({row_hash_sql(table.columns)}), 0) "
        f"FROM {quote(schema)}.{quote(table.name)}"
    )


class _Verifier:
    """Verification alongside the copy. The source side of a table is the sum of the row
    hashes the copy computed as it went, plus, for rows an earlier run copied, a read of
    the SQLite file as it is now; the target side is one aggregate query on a connection
    of its own, run while the next table copies."""

    def __init__(
        self,
        source: Path,
        source_id: str,
        schema: str,
        conn: Connection,
        opener: Opener | None = None,
    ) -> None:
        self.source, self.source_id, self.schema, self.conn = source, source_id, schema, conn
        self.opener = opener
        self.queue: asyncio.Queue[tuple[TablePlan, TableReport, Start, list[int]] | None]
        self.queue = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    @classmethod
    async def start(
        cls, source: Path, source_id: str, schema: str, target: Target, opener: Opener | None = None
    ) -> _Verifier:
        return cls(source, source_id, schema, await target.connect(), opener)

    def submit(self, table: TablePlan, report: TableReport, start: Start, sums: list[int]) -> None:
        self.queue.put_nowait((table, report, start, sums))

    async def finish(self) -> None:
        self.queue.put_nowait(None)
        await self.task

    async def close(self) -> None:
        if not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.conn.close()

    async def _run(self) -> None:
        while (item := await self.queue.get()) is not None:
            await self._table(*item)

    async def _earlier(self, table: TablePlan, start: Start) -> tuple[Checksum, int]:
        """The rows earlier runs copied, read from the source as it is now: up to where
        they stopped (all rows, for a table they finished), less the rejected rows and
        the rows that waited for a parent (this run copied or rejected those)."""
        rejected = [
            r[0]
            for r in await self.conn.fetch(
                f"SELECT position FROM {STATE_SCHEMA}.rejects "
                "WHERE source = $1 AND table_name = $2",
                self.source_id,
                table.name,
            )
        ]
        if start.last_key is None:
            return Checksum(0, 0), len(rejected)
        upto = None if start.done else start.last_key
        full = await asyncio.to_thread(
            source_checksum, self.source, table, upto=upto, opener=self.opener
        )
        left_out = sorted(set(rejected) | set(start.waiting))
        taken = Checksum(0, 0)
        if left_out:
            taken = await asyncio.to_thread(
                source_checksum, self.source, table, left_out, upto=upto, opener=self.opener
            )
        return Checksum(full.rows - taken.rows, full.total - taken.total), len(rejected)

    async def _table(
        self, table: TablePlan, report: TableReport, start: Start, sums: list[int]
    ) -> None:
        earlier, rejected = await self._earlier(table, start)
        source = Checksum(sums[0] + earlier.rows, sums[1] + earlier.total)
        row = await self.conn.fetchrow(target_checksum_sql(self.schema, table))
        assert row is not None
        target = Checksum(int(row[0]), int(row[1]))
        report.verified = source == target
        if report.verified:
            report.verify_detail = f"{target}; {rejected:,} rejected rows left out"
        else:
            report.verify_detail = (
                f"source (converted, {rejected:,} rejected left out): {source}; target: {target}"
            )


# --- entry point ------------------------------------------------------------------------
