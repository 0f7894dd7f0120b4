"""Copying one table: batches by binary COPY, rejects, progress, resumption."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import asyncpg

from aragora_repos.backends.sqlite.opener import Opener, is_encrypted_file
from aragora_repos.files import open_append_private, replacing
from aragora_repos.tools.convert import (
    converter,
    describe_rules,
)
from aragora_repos.tools.migrate_data.columnar import eligible
from aragora_repos.tools.migrate_data.plan import ForeignKey, TablePlan
from aragora_repos.tools.migrate_data.report import TableReport
from aragora_repos.tools.migrate_data.source import (
    DEFAULT_BATCH_BYTES,
    Batch,
    SourceReader,
    _json_default,
    source_has,
)
from aragora_repos.tools.migrate_data.state import STATE_SCHEMA, RejectRow, quote
from aragora_repos.tools.migrate_data.target import Target

log = logging.getLogger("aragora_repos.migrate_data")

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

log = logging.getLogger("aragora_repos.migrate_data")


class Progress:
    """A bar per table on a terminal (rows, rows/s, ETA); log lines every 5 s otherwise."""

    def __init__(self, stream: IO[str] | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.table = ""
        self.total = self.done = 0
        self.started = self.shown = 0.0

    def start(self, table: str, total: int, done: int) -> None:
        self.table, self.total, self.done = table, total, done
        self.started = self.shown = time.monotonic()
        self._base = done
        if not self.tty:
            print(
                f"{table}: {total:,} rows" + (f", {done:,} done earlier" if done else ""),
                file=self.stream,
            )

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.shown >= (0.1 if self.tty else 5.0):
            self.shown = now
            self._show(now, final=False)

    def finish(self) -> None:
        self._show(time.monotonic(), final=True)

    def _show(self, now: float, *, final: bool) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = (self.done - self._base) / elapsed
        left = max(self.total - self.done, 0)
        eta = f"{left / rate:.0f} s" if rate > 0 and not final else "-"
        share = self.done / self.total if self.total else 1.0
        text = (
            f"{self.table:<24} {self.done:>10,}/{self.total:,} rows {rate:>9,.0f} rows/s ETA {eta}"
        )
        if self.tty:
            bar = "#" * int(share * 20)
            print(f"\r[{bar:<20}] {text}\x1b[K", end="\n" if final else "", file=self.stream)
        else:
            print(text + (" done" if final else ""), file=self.stream)
        self.stream.flush()


# --- the copy ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Where a table stood when the run began: verification hashes the rows copied in
    this run as they go, and reads back only those an earlier run copied."""

    last_key: Any
    """The last position an earlier run committed (None: the table starts afresh)."""
    done: bool
    waiting: list[str]
    """Positions waiting for a parent row (they are copied, or rejected, in this run)."""


ColumnarCopy = Callable[
    ["_Copier", TablePlan, TableReport, dict[str, Counter[str]], Any, "asyncpg.Record | None"],
    Awaitable[None],
]


@dataclass(slots=True)
class Options:
    """What the copy of each table needs to know of the run's arguments."""

    batch_size: int = 1000
    skip_existing: bool = True
    dry_run: bool = False
    schema: str = "public"
    reject_file: Path | None = None
    progress: Progress | None = None
    batch_bytes: int = DEFAULT_BATCH_BYTES
    opener: Opener | None = None
    """How the source file opens (an encrypted one with its key); None: the environment's."""
    columnar: ColumnarCopy | None = None
    """The columnar path (:func:`.columnar_copy.copy_table`) for the tables it can copy;
    None: every table by the row path."""


class _Copier:
    def __init__(self, source: Path, conn: Connection, options: Options) -> None:
        self.source = source
        self.source_id = str(source.resolve())
        self.conn = conn
        self.options = options
        self.withhold = is_encrypted_file(source)
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite-read")
        self.hashing = False
        """Hash each copied row as it goes (verification)."""
        self.sums: dict[str, list[int]] = {}
        """Table -> [rows, sum of row hashes] of the rows this run copied or skipped."""
        self.starts: dict[str, Start] = {}
        self.target: Target | None = None
        """Where the columnar path's verification opens a connection of its own."""
        self.checked: dict[str, Any] = {}
        """Tables the columnar path verified itself, as it copied them."""

    async def _in_reader(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def table(self, table: TablePlan) -> TableReport:
        opts = self.options
        report = TableReport(table.name)
        reader: SourceReader = await self._in_reader(
            functools.partial(
                SourceReader,
                self.source,
                table,
                hashes=self.hashing,
                batch_bytes=self.options.batch_bytes,
                opener=self.options.opener,
            )
        )
        self.sums[table.name] = [0, 0]
        try:
            report.source_rows = await self._in_reader(reader.count)
            state = None if opts.dry_run else await self._state(table.name)
            if self.hashing:
                self.starts[table.name] = await self._start(table.name, state)
            counts: dict[str, Counter[str]] = {c.name: Counter() for c in table.columns}
            last_key = None
            if state is not None:
                last_key = json.loads(state["last_key"]) if state["last_key"] else None
                report.already_done = state["rows_read"]
                for column, rules in json.loads(state["conversions"]).items():
                    counts.setdefault(column, Counter()).update(rules)
                if state["done"]:
                    report.skipped = state["rows_copied"] + state["rows_skipped"]
                    report.errors = state["rows_rejected"]
                    report.conversions = _readable(counts)
                    return report
            direct = opts.dry_run or await self._direct(table, state)
            progress = opts.progress
            if progress:
                progress.start(table.name, report.source_rows, report.already_done)
            started = time.perf_counter()
            columnar = (
                opts.columnar
                if opts.columnar is not None
                and not opts.dry_run
                and direct
                and await self._in_reader(eligible, self.source, table, self.withhold)
                else None
            )
            if columnar is not None:
                await columnar(self, table, report, counts, last_key, state)
            else:
                pending = asyncio.ensure_future(
                    self._in_reader(reader.read, last_key, opts.batch_size)
                )
                while True:
                    batch: Batch = await pending
                    if batch.read == 0:
                        break
                    pending = asyncio.ensure_future(
                        self._in_reader(reader.read, batch.last_key, opts.batch_size)
                    )
                    for column, batch_counts in zip(table.columns, batch.counts, strict=True):
                        counts[column.name].update(batch_counts)
                    refused: list[RejectRow] = []
                    if opts.dry_run:
                        copied, skipped = len(batch.records), 0
                        self._write_rejects_now(table.name, batch.rejects)
                    else:
                        copied, skipped, refused = await self._commit(
                            table, batch, direct, counts, report
                        )
                    log.info(
                        "%s: batch %d: %d read, %d copied, %d skipped, %d rejected",
                        table.name,
                        report.batches + 1,
                        batch.read,
                        copied,
                        skipped,
                        len(batch.rejects) + len(refused),
                    )
                    report.migrated += copied
                    report.skipped += skipped
                    report.errors += len(batch.rejects) + len(refused)
                    report.batches += 1
                    if progress:
                        progress.advance(batch.read)
                await pending
            if not opts.dry_run:
                if table.self_keys:
                    await self._retry_deferred(table, reader, direct, report, counts)
                report.sequences = await self._move_sequences(table)
                await self.conn.execute(
                    f"UPDATE {STATE_SCHEMA}.progress SET done = true, updated_at = now() "
                    "WHERE source = $1 AND table_name = $2",
                    self.source_id,
                    table.name,
                )
            report.seconds = time.perf_counter() - started
            report.conversions = _readable(counts)
            if progress:
                progress.finish()
            return report
        finally:
            await self._in_reader(reader.close)

    async def _start(self, table: str, state: asyncpg.Record | None) -> Start:
        if state is None or not state["last_key"]:
            return Start(None, False, [])
        waiting = await self.conn.fetch(
            f"SELECT position FROM {STATE_SCHEMA}.deferred WHERE source = $1 AND table_name = $2",
            self.source_id,
            table,
        )
        return Start(json.loads(state["last_key"]), state["done"], [r[0] for r in waiting])

    def _hashed(self, table: str, batch: Batch, left_out: set[str]) -> None:
        """Add the hashes of the batch's records to the table's sums, but for the rows at
        ``left_out`` (refused, or waiting for a parent)."""
        if batch.hashes is None:
            return
        sums = self.sums[table]
        if not left_out:
            sums[0] += len(batch.hashes)
            sums[1] += sum(batch.hashes)
            return
        out = batch.find(left_out)
        sums[0] += len(batch.hashes) - len(out)
        sums[1] += sum(batch.hashes) - sum(batch.hashes[i] for i in out)

    async def _state(self, table: str) -> asyncpg.Record | None:
        return await self.conn.fetchrow(
            f"SELECT * FROM {STATE_SCHEMA}.progress WHERE source = $1 AND table_name = $2",
            self.source_id,
            table,
        )

    async def _direct(self, table: TablePlan, state: asyncpg.Record | None) -> bool:
        """COPY straight into the table unless it holds rows this migration did not put
        there and existing rows are to be skipped (then COPY into a staging table and
        INSERT ... ON CONFLICT DO NOTHING)."""
        if not self.options.skip_existing:
            return True
        ours = state["rows_copied"] if state is not None else 0
        present = await self.conn.fetchval(
            f"SELECT count(*) FROM {quote(self.options.schema)}.{quote(table.name)}"
        )
        return int(present) <= ours

    async def _commit(
        self,
        table: TablePlan,
        batch: Batch,
        direct: bool,
        counts: dict[str, Counter[str]],
        report: TableReport,
    ) -> tuple[int, int, list[RejectRow]]:
        conn = self.conn
        async with conn.transaction():
            # A batch and its progress record commit together, so a server crash loses
            # both or neither: the run resumes before the lost batch.
            await conn.execute("SET LOCAL synchronous_commit = off")
            records, sources, orphans = await self._orphans(table, batch)
            copied, skipped, refused, parked = await self._load(
                table, direct, records, batch, sources
            )
            _take_back_rules(table, batch, counts, orphans + refused)
            rejects = batch.rejects + orphans + refused
            await self._record(table, rejects, parked)
            await self._progress(
                table, batch.last_key, batch.read, copied, skipped, len(rejects), counts
            )
        self._hashed(table.name, batch, {r[0] for r in orphans + refused} | set(parked))
        return copied, skipped, orphans + refused

    async def _progress(
        self,
        table: TablePlan,
        last_key: Any,
        read: int,
        copied: int,
        skipped: int,
        rejected: int,
        counts: dict[str, Counter[str]],
    ) -> None:
        """Record a committed batch (in its transaction): where the next run resumes."""
        await self.conn.execute(
            f"""
            INSERT INTO {STATE_SCHEMA}.progress AS p (source, table_name, last_key,
                rows_read, rows_copied, rows_skipped, rows_rejected, batches, conversions)
            VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)
            ON CONFLICT (source, table_name) DO UPDATE SET last_key = $3,
                rows_read = p.rows_read + $4, rows_copied = p.rows_copied + $5,
                rows_skipped = p.rows_skipped + $6, rows_rejected = p.rows_rejected + $7,
                batches = p.batches + 1, conversions = $8, updated_at = now()
            """,
            self.source_id,
            table.name,
            json.dumps(last_key, default=_json_default),
            read,
            copied,
            skipped,
            rejected,
            _counts_json(counts),
        )

    async def _missing_parents(
        self, table: TablePlan, key: ForeignKey, values: list[Any]
    ) -> set[Any]:
        """Those of ``values`` (of ``key``'s column) with no parent row in the target (nor,
        for a parent copied later, in the source)."""
        missing = {
            row[0]
            for row in await self.conn.fetch(
                f"SELECT v FROM unnest($1::{key.type_name}[]) AS u(v) WHERE NOT EXISTS "
                f"(SELECT 1 FROM {quote(self.options.schema)}.{quote(key.parent)} p "
                f"WHERE p.{quote(key.parent_column)} = u.v)",
                values,
            )
        }
        if missing and key.parent in table.later_parents:
            # A cycle: the parent table is copied later; a parent the source holds
            # is no orphan (the key, added back at the end, validates it then).
            missing -= await self._in_reader(
                source_has,
                self.source,
                key.parent,
                key.parent_column,
                list(missing),
                self.options.opener,
            )
        return missing

    async def _orphans(
        self, table: TablePlan, batch: Batch
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[RejectRow]]:
        """The batch without rows whose single-column foreign key has no parent row, and
        those rows as rejects with the reason PostgreSQL gives (23503)."""
        records, sources = batch.records, batch.sources
        refused: list[RejectRow] = []
        names = [c.name for c in table.columns]
        for key in table.foreign_keys:
            at = names.index(key.column)
            values = list({r[at] for r in records if r[at] is not None})
            if not values:
                continue
            missing = await self._missing_parents(table, key, values)
            if not missing:
                continue
            kept_records, kept_sources = [], []
            for record, source in zip(records, sources, strict=True):
                value = record[at]
                if value in missing:
                    reason = (
                        f'23503: insert or update on table "{table.name}" violates foreign '
                        f'key constraint "{key.name}" (Key ({key.column})=({value}) is not '
                        f'present in table "{key.parent}".)'
                    )
                    refused.append(
                        (batch.position(source), batch.key(source), key.column, reason, None)
                    )
                else:
                    kept_records.append(record)
                    kept_sources.append(source)
            records, sources = kept_records, kept_sources
        return records, sources, refused

    async def _load(
        self,
        table: TablePlan,
        direct: bool,
        records: list[tuple[Any, ...]],
        batch: Batch,
        sources: list[tuple[Any, ...]],
        *,
        park: bool = True,
    ) -> tuple[int, int, list[RejectRow], list[str]]:
        """Copy ``records`` in a savepoint; when PostgreSQL refuses the lot, split it in
        halves until each refused row is found and returned with the server's reason.
        A row refused only for want of a parent row in its own table is returned apart
        (by position) when ``park``: that parent may come later."""
        if not records:
            return 0, 0, [], []
        try:
            async with self.conn.transaction():
                return (*(await self._copy(table, direct, records)), [], [])
        except (asyncpg.PostgresError, asyncpg.DataError) as exc:
            if len(records) == 1:
                source = sources[0]
                if (
                    park
                    and isinstance(exc, asyncpg.ForeignKeyViolationError)
                    and exc.constraint_name in table.self_keys
                ):
                    return 0, 0, [], [batch.position(source)]
                column = getattr(exc, "column_name", None)
                reject = (batch.position(source), batch.key(source), column, _reason(exc), None)
                return 0, 0, [reject], []
        mid = len(records) // 2
        a = await self._load(table, direct, records[:mid], batch, sources[:mid], park=park)
        b = await self._load(table, direct, records[mid:], batch, sources[mid:], park=park)
        return a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]

    async def _retry_deferred(
        self,
        table: TablePlan,
        reader: SourceReader,
        direct: bool,
        report: TableReport,
        counts: dict[str, Counter[str]],
    ) -> None:
        """Copy the rows that waited for a parent in their own table, pass after pass while
        passes make progress; then reject what is left (true orphans, cycles)."""
        select = (
            f"SELECT position FROM {STATE_SCHEMA}.deferred "
            "WHERE source = $1 AND table_name = $2 ORDER BY position"
        )
        park = True
        while True:
            waiting = [r[0] for r in await self.conn.fetch(select, self.source_id, table.name)]
            if not waiting:
                return
            for start in range(0, len(waiting), self.options.batch_size):
                chunk = waiting[start : start + self.options.batch_size]
                batch: Batch = await self._in_reader(reader.read_positions, chunk)
                copied, rejects = await self._commit_retry(
                    table, batch, chunk, direct, park, counts
                )
                report.migrated += copied
                report.errors += len(rejects)
            if not park:
                return
            left = await self.conn.fetchval(
                f"SELECT count(*) FROM {STATE_SCHEMA}.deferred "
                "WHERE source = $1 AND table_name = $2",
                self.source_id,
                table.name,
            )
            park = left < len(waiting)  # no progress: the next pass rejects the rest

    async def _commit_retry(
        self,
        table: TablePlan,
        batch: Batch,
        chunk: list[str],
        direct: bool,
        park: bool,
        counts: dict[str, Counter[str]],
    ) -> tuple[int, list[RejectRow]]:
        conn = self.conn
        async with conn.transaction():
            await conn.execute(
                f"DELETE FROM {STATE_SCHEMA}.deferred "
                "WHERE source = $1 AND table_name = $2 AND position = ANY($3::text[])",
                self.source_id,
                table.name,
                chunk,
            )
            records, sources, orphans = await self._orphans(table, batch)
            copied, _skipped, refused, parked = await self._load(
                table, direct, records, batch, sources, park=park
            )
            # Counted when first converted; refused at last.
            _take_back_rules(table, batch, counts, orphans + refused)
            found = {batch.position(s) for s in batch.sources} | {r[0] for r in batch.rejects}
            gone: list[RejectRow] = [
                (p, p, None, "the row is no longer in the source", None)
                for p in chunk
                if p not in found
            ]
            rejects = batch.rejects + orphans + refused + gone
            await self._record(table, rejects, parked)
            await conn.execute(
                f"UPDATE {STATE_SCHEMA}.progress SET rows_copied = rows_copied + $3, "
                "rows_rejected = rows_rejected + $4, conversions = $5, updated_at = now() "
                "WHERE source = $1 AND table_name = $2",
                self.source_id,
                table.name,
                copied,
                len(rejects),
                _counts_json(counts),
            )
        self._hashed(table.name, batch, {r[0] for r in orphans + refused} | set(parked))
        return copied, rejects

    async def _record(self, table: TablePlan, rejects: list[RejectRow], parked: list[str]) -> None:
        if rejects:
            await self.conn.executemany(
                f"INSERT INTO {STATE_SCHEMA}.rejects VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT DO NOTHING",
                [(self.source_id, table.name, *r) for r in rejects],
            )
        if parked:
            await self.conn.executemany(
                f"INSERT INTO {STATE_SCHEMA}.deferred VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                [(self.source_id, table.name, p) for p in parked],
            )

    async def _copy(
        self, table: TablePlan, direct: bool, records: list[tuple[Any, ...]]
    ) -> tuple[int, int]:
        columns = [c.name for c in table.columns]
        schema = self.options.schema
        if direct:
            await self.conn.copy_records_to_table(
                table.name, records=records, columns=columns, schema_name=schema
            )
            return len(records), 0
        stage = f"aragora_stage_{hashlib.md5(table.name.encode()).hexdigest()[:12]}"
        target = f"{quote(schema)}.{quote(table.name)}"
        await self.conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
            f"AS SELECT {', '.join(quote(c) for c in columns)} FROM {target} WITH NO DATA; "
            f"TRUNCATE {stage}"
        )
        await self.conn.copy_records_to_table(stage, records=records, columns=columns)
        names = ", ".join(quote(c) for c in columns)
        status = await self.conn.execute(
            f"INSERT INTO {target} ({names}) SELECT {names} FROM {stage} ON CONFLICT DO NOTHING"
        )
        inserted = int(status.split()[-1])
        return inserted, len(records) - inserted

    async def _move_sequences(self, table: TablePlan) -> dict[str, int]:
        moved: dict[str, int] = {}
        target = f"{quote(self.options.schema)}.{quote(table.name)}"
        for column, sequence in table.serial:
            top = await self.conn.fetchval(f"SELECT max({quote(column)}) FROM {target}")
            if top is None:
                continue
            row = await self.conn.fetchrow(f"SELECT last_value, is_called FROM {sequence}")
            assert row is not None
            current = row[0] if row[1] else row[0] - 1
            if top > current:
                await self.conn.execute("SELECT setval($1::regclass, $2)", sequence, top)
                moved[sequence] = int(top) + 1
        return moved

    def _write_rejects_now(self, table: str, rejects: list[RejectRow]) -> None:
        path = self.options.reject_file
        if path is None or not rejects:
            return
        with open_append_private(path) as f:
            for position, key, column, reason, value in rejects:
                f.write(
                    _reject_line(
                        table, position, key, column, reason, value, withhold=self.withhold
                    )
                )

    async def write_reject_file(self) -> int:
        """Render every reject of this source, committed so far, to the reject file."""
        path = self.options.reject_file
        rows = await self.conn.fetch(
            f"SELECT table_name, position, key, column_name, reason, value "
            f"FROM {STATE_SCHEMA}.rejects WHERE source = $1 ORDER BY table_name, position",
            self.source_id,
        )
        if path is not None:
            if rows:
                with replacing(path) as f:
                    for r in rows:
                        f.write(_reject_line(*r, withhold=self.withhold))
            elif path.exists():
                path.unlink()
        return len(rows)


def _reject_line(
    table: str,
    position: str,
    key: str,
    column: str | None,
    reason: str,
    value: str | None,
    *,
    withhold: bool = False,
) -> str:
    """One JSON line of the reject file. ``withhold``: the source is encrypted, so the
    refused value stays only in the target's rejects table, never in a plain file."""
    entry: dict[str, object] = {
        "table": table,
        "key": json.loads(key),
        "position": json.loads(position),
        "column": column,
        "reason": reason,
        "value": None if withhold else value,
    }
    if withhold and value is not None:
        entry["value_withheld"] = "the source is encrypted: see the target's rejects table"
    return json.dumps(entry, ensure_ascii=False) + "\n"


def _reason(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    detail = getattr(exc, "detail", None)
    text = str(exc) + (f" ({detail})" if detail else "")
    return f"{state}: {text}" if state else text


def _counts_json(counts: dict[str, Counter[str]]) -> str:
    return json.dumps({column: dict(+c) for column, c in counts.items() if +c})


def _take_back_rules(
    table: TablePlan, batch: Batch, counts: dict[str, Counter[str]], refused: list[RejectRow]
) -> None:
    """Rules are counted over the rows copied: those of rows PostgreSQL refused (counted
    when their batch was converted) are taken back out."""
    if not refused:
        return
    for at in batch.find({r[0] for r in refused}):
        source = batch.sources[at]
        for i, column in enumerate(table.columns):
            applied: Counter[str] = Counter()
            converter(column, applied)(source[batch.lead + i])
            counts[column.name].subtract(applied)


def _readable(counts: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
    return {column: describe_rules(c) for column, c in counts.items() if +c}


# --- verification -----------------------------------------------------------------------
