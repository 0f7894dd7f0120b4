"""The columnar path of a table's copy (see :mod:`.columnar`): batches read and converted
in Arrow, written by binary COPY with the row path's transactions, rejects and progress,
and, with verification, every batch read back and compared with what was sent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aragora_repos.tools.migrate_data import pgcopy
from aragora_repos.tools.migrate_data.columnar import (
    ColumnarBatch,
    ColumnarReader,
    json_rules,
    present,
)
from aragora_repos.tools.migrate_data.plan import TablePlan
from aragora_repos.tools.migrate_data.report import TableReport
from aragora_repos.tools.migrate_data.source import Batch
from aragora_repos.tools.migrate_data.state import STATE_SCHEMA, RejectRow, quote

if TYPE_CHECKING:
    from aragora_repos.tools.migrate_data.copier import _Copier

    Connection = asyncpg.Connection[asyncpg.Record]

log = logging.getLogger("aragora_repos.migrate_data")


@dataclass(slots=True)
class TableCheck:
    """Verification of a table the columnar path copied: every batch's stored rows read
    back and compared with what was sent."""

    batches: int = 0
    differing: list[int] = field(default_factory=list)
    """The first key of each batch whose stored rows differ from those sent."""
    documents: int = 0
    """jsonb documents stored with another meaning than the text sent."""
    earlier: int = 0
    """Rows an earlier run copied, read back and compared."""


async def copy_table(
    copier: _Copier,
    table: TablePlan,
    report: TableReport,
    counts: dict[str, Counter[str]],
    last_key: Any,
    state: asyncpg.Record | None,
) -> None:
    """Copy ``table`` by the columnar path (:mod:`.columnar`), batch by batch, reading
    the next batch while this one is copied."""
    opts = copier.options
    checking: _Checking | None = None
    reader: ColumnarReader = await copier._in_reader(
        ColumnarReader, copier.source, table, opts.batch_size, opts.batch_bytes
    )
    try:
        if copier.hashing:
            check = copier.checked[table.name] = TableCheck()
            if last_key is not None:
                await _check_earlier(copier, table, reader, last_key, check)
        parents = await _parent_keys(copier, table)
        if copier.hashing:
            checking = await _Checking.start(copier, table, reader.kinds)
        batches = await copier._in_reader(reader.batches, last_key)
        pending = asyncio.ensure_future(copier._in_reader(next, batches, None))
        while (batch := await pending) is not None:
            pending = asyncio.ensure_future(copier._in_reader(next, batches, None))
            copied, rejected, rows = await _commit_columnar(
                copier, table, batch, reader.kinds, counts, parents
            )
            if checking is not None:
                await checking.put(batch, rows)
            log.info(
                "%s: batch %d: %d read, %d copied, %d rejected (columnar)",
                table.name,
                report.batches + 1,
                batch.read,
                copied,
                rejected,
            )
            report.migrated += copied
            report.errors += rejected
            report.batches += 1
            if opts.progress:
                opts.progress.advance(batch.read)
        await copier._in_reader(batches.close)
        if checking is not None:
            await checking.finish()
            earlier = state["rows_copied"] if state is not None else 0
            await _check_count(copier, table, report, earlier + report.migrated)
    finally:
        if checking is not None:
            await checking.close()
        await copier._in_reader(reader.close)


class _Checking:
    """The read-back of committed batches on a connection of its own, while the next
    batches are copied (at most two batches wait)."""

    def __init__(
        self, copier: _Copier, table: TablePlan, kinds: list[str], conn: Connection | None
    ) -> None:
        self.copier, self.table, self.kinds, self.conn = copier, table, kinds, conn
        self.queue: asyncio.Queue[tuple[ColumnarBatch, Any] | None] = asyncio.Queue(2)
        self.task = asyncio.ensure_future(self._run())

    @classmethod
    async def start(cls, copier: _Copier, table: TablePlan, kinds: list[str]) -> _Checking:
        conn = await copier.target.connect() if copier.target is not None else None
        return cls(copier, table, kinds, conn)

    async def put(self, batch: ColumnarBatch, rows: Any) -> None:
        if self.task.done():
            self.task.result()  # its failure, raised here
        await self.queue.put((batch, rows))

    async def finish(self) -> None:
        await self.queue.put(None)
        await self.task

    async def close(self) -> None:
        if not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.conn is not None:
            await self.conn.close()

    async def _run(self) -> None:
        check = self.copier.checked[self.table.name]
        while (item := await self.queue.get()) is not None:
            batch, rows = item
            await _check_rows(self.copier, self.table, batch, self.kinds, rows, check, self.conn)


#: Parent tables up to this many rows have their keys read once per child table.
PARENT_KEYS = 20_000_000


def _among(values: np.ndarray[Any, Any], sorted_keys: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Which of ``values`` are in ``sorted_keys`` (a sorted array), by binary search."""
    if not len(sorted_keys):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    found: np.ndarray[Any, Any] = sorted_keys[at] == values
    return found


async def _parent_keys(copier: _Copier, table: TablePlan) -> dict[str, np.ndarray[Any, Any]]:
    """Per foreign key with an integer column, the keys its parent table holds now, read
    once: a batch asks the server only about values not among them (a parent row that
    arrived since, or an orphan). A parent row deleted since is caught when the key is
    added back, validated, as on the row path."""
    found: dict[str, np.ndarray[Any, Any]] = {}
    for key in table.foreign_keys:
        column = next(c for c in table.columns if c.name == key.column)
        if column.type_name not in ("int2", "int4", "int8"):
            continue
        parent = f"{quote(copier.options.schema)}.{quote(key.parent)}"
        rows = await copier.conn.fetchval(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass", parent
        )
        if rows is not None and rows > PARENT_KEYS:
            continue
        keys = await copier.conn.fetchval(
            f"SELECT array_agg({quote(key.parent_column)}) FROM {parent}"
        )
        found[key.name] = np.sort(np.asarray(keys or [], dtype=np.int64))
    return found


async def _commit_columnar(
    copier: _Copier,
    table: TablePlan,
    batch: ColumnarBatch,
    kinds: list[str],
    counts: dict[str, Counter[str]],
    parents: dict[str, np.ndarray[Any, Any]],
) -> tuple[int, int, Any]:
    conn = copier.conn
    kept = batch.kept()
    rejects = batch.reject_rows()
    names = [c.name for c in table.columns]
    async with conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        for key in table.foreign_keys:
            column = batch.values[names.index(key.column)]
            has = kept & present(column)
            values = pc.unique(column.filter(pa.array(has)))
            if key.name in parents:  # only keys the parent did not hold are asked for
                values = values.filter(pa.array(~_among(values.to_numpy(), parents[key.name])))
            unknown = values.to_pylist()
            missing = await copier._missing_parents(table, key, unknown) if unknown else set()
            if not missing:
                continue
            orphan = has & np.asarray(
                pc.is_in(column, pa.array(list(missing), column.type)).fill_null(False),
                dtype=bool,
            )
            for row in np.flatnonzero(orphan):
                position = json.dumps(int(batch.keys[row]))
                reason = (
                    f'23503: insert or update on table "{table.name}" violates foreign '
                    f'key constraint "{key.name}" (Key ({key.column})=({column[row].as_py()}) '
                    f'is not present in table "{key.parent}".)'
                )
                rejects.append((position, position, key.column, reason, None))
            kept &= ~orphan
        refused = await _copy_columnar(copier, table, batch, kinds, np.flatnonzero(kept))
        if refused:
            rejects += refused
            kept &= ~np.isin(batch.keys, [json.loads(r[0]) for r in refused])
        rows = np.flatnonzero(kept)
        for i, later in batch.texts.items():
            respelled, repeated, wrong = await _stored_documents(copier, table, batch, i, rows)
            for rule, found in (("json_respelled", respelled), ("json_duplicate_keys", repeated)):
                if (found & later).any():  # the converter counted the documents it took
                    batch.rules[i][rule] = batch.rules[i].get(rule, False) | (found & later)
            if copier.hashing:
                copier.checked[table.name].documents += wrong
        for column, applied in zip(table.columns, batch.counts(kept), strict=True):
            counts[column.name].update(applied)
        await copier._record(table, rejects, [])
        await copier._progress(
            table, batch.last_key, batch.read, len(rows), 0, len(rejects), counts
        )
    return len(rows), len(rejects), rows


async def _copy_columnar(
    copier: _Copier, table: TablePlan, batch: ColumnarBatch, kinds: list[str], rows: Any
) -> list[RejectRow]:
    """Binary COPY of the batch's ``rows`` in a savepoint; when PostgreSQL refuses it,
    the rows it refuses are found as the row path finds them, and returned."""
    if not len(rows):
        return []
    taken = pa.array(rows)
    columns = [values.take(taken) for values in batch.values]
    names = [c.name for c in table.columns]
    try:
        async with copier.conn.transaction():
            await copier.conn.copy_to_table(
                table.name,
                source=memoryview(pgcopy.encode(columns, kinds)),  # type: ignore[arg-type]
                columns=names,
                schema_name=copier.options.schema,
                format="binary",
            )
        return []
    except (asyncpg.PostgresError, asyncpg.DataError):
        pass
    records = list(
        zip(*(pgcopy.python_values(c, k) for c, k in zip(columns, kinds, strict=True)), strict=True)
    )
    sources = [(int(k), int(k)) for k in batch.keys[rows]]
    found = Batch(records, sources, [], None, 0, [], 1, 2)
    _, _, refused, _ = await copier._load(table, True, records, found, sources, park=False)
    return refused


def _between(table: TablePlan, batch: ColumnarBatch, rows: Any) -> str:
    """The key range of the batch's ``rows`` (in the target, only they are in it)."""
    key = quote(table.key_columns[0])
    return f"{key} BETWEEN {int(batch.keys[rows[0]])} AND {int(batch.keys[rows[-1]])}"


async def _stored_documents(
    copier: _Copier, table: TablePlan, batch: ColumnarBatch, at: int, rows: Any
) -> tuple[Any, Any, int]:
    """The jsonb column ``at`` of the stored ``rows``, against the documents sent.

    Read by COPY in text form, in key order: jsonb's text escapes every control
    character itself, so a line's only COPY escape is a doubled backslash, and ``\\N``
    (which no JSON text is) is NULL. When the range holds other rows than those sent,
    the keys are read too and the documents matched by key."""
    if not len(rows):
        empty = np.zeros(len(batch.keys), dtype=bool)
        return empty, empty, 0
    column = quote(table.columns[at].name)
    key = quote(table.key_columns[0])
    target = f"{quote(copier.options.schema)}.{quote(table.name)}"
    where = _between(table, batch, rows)
    chunks: list[bytes] = []

    async def sink(data: bytes) -> None:
        chunks.append(bytes(data))

    await copier.conn.copy_from_query(
        f"SELECT {column}::text FROM {target} WHERE {where} ORDER BY {key}", output=sink
    )
    # No line starts with a backslash but NULL's, so the doubled ones are undone at once.
    lines: list[bytes | None] = list(b"".join(chunks).replace(b"\\\\", b"\\").split(b"\n")[:-1])
    wanted = batch.keys[rows]
    if len(lines) == len(wanted):
        if b"\\N" in lines:
            lines = [None if line == b"\\N" else line for line in lines]
        texts = pa.array(lines, pa.binary()).cast(pa.string())
    else:  # rows of others in the range: matched by key
        stored = await copier.conn.fetch(
            f"SELECT {key}, {column}::text FROM {target} WHERE {where}"
        )
        by_key = {r[0]: r[1] for r in stored}
        texts = pa.array([by_key.get(int(k)) for k in wanted], pa.string())
        if copier.hashing:
            copier.checked[table.name].differing.append(int(wanted[0]))
    return json_rules(batch.values[at], texts, rows, compare=copier.hashing)


async def _check_rows(
    copier: _Copier,
    table: TablePlan,
    batch: ColumnarBatch,
    kinds: list[str],
    rows: Any,
    check: TableCheck,
    conn: Connection | None = None,
) -> None:
    """Read the stored ``rows`` back (binary COPY, every column but jsonb, whose
    documents :meth:`_stored_documents` compares) and compare them byte for byte
    with the same rows written as they were sent."""
    check.batches += 1
    plain = [i for i, kind in enumerate(kinds) if kind != "jsonb"]
    if not len(rows) or not plain:
        return
    key = quote(table.key_columns[0])
    target = f"{quote(copier.options.schema)}.{quote(table.name)}"
    columns = ", ".join(quote(table.columns[i].name) for i in plain)
    chunks: list[bytes] = []

    async def sink(data: bytes) -> None:
        chunks.append(bytes(data))

    await (conn or copier.conn).copy_from_query(
        f"SELECT {columns} FROM {target} WHERE {_between(table, batch, rows)} ORDER BY {key}",
        output=sink,
        format="binary",
    )
    taken = pa.array(rows)
    sent = pgcopy.rows([batch.values[i].take(taken) for i in plain], [kinds[i] for i in plain])
    if pgcopy.body(b"".join(chunks)) != bytes(sent):
        check.differing.append(int(batch.keys[rows[0]]))


async def _check_earlier(
    copier: _Copier, table: TablePlan, reader: ColumnarReader, last_key: Any, check: TableCheck
) -> None:
    """Verification of the rows earlier runs copied: the source up to where they
    stopped, converted again, less the rows they rejected, read back and compared."""
    rejected = {
        json.loads(r[0])
        for r in await copier.conn.fetch(
            f"SELECT position FROM {STATE_SCHEMA}.rejects WHERE source = $1 AND table_name = $2",
            copier.source_id,
            table.name,
        )
    }
    batches = await copier._in_reader(reader.batches, None, last_key)
    while (batch := await copier._in_reader(next, batches, None)) is not None:
        kept = batch.kept() & ~np.isin(batch.keys, list(rejected))
        rows = np.flatnonzero(kept)
        check.earlier += len(rows)
        for i in batch.texts:
            check.documents += (await _stored_documents(copier, table, batch, i, rows))[2]
        await _check_rows(copier, table, batch, reader.kinds, rows, check)


async def _check_count(
    copier: _Copier, table: TablePlan, report: TableReport, expected: int
) -> None:
    check = copier.checked[table.name]
    target = f"{quote(copier.options.schema)}.{quote(table.name)}"
    stored = int(await copier.conn.fetchval(f"SELECT count(*) FROM {target}"))
    problems = []
    if stored != expected:
        problems.append(f"{stored:,} rows stored, {expected:,} copied")
    if check.differing:
        problems.append(
            f"{len(check.differing)} batches stored differently from what was sent "
            f"(first keys {check.differing[:5]})"
        )
    if check.documents:
        problems.append(f"{check.documents} jsonb documents stored with another meaning")
    report.verified = not problems
    report.verify_detail = (
        "; ".join(problems)
        if problems
        else f"{stored:,} rows read back and equal to the rows sent, value for value "
        f"({check.batches} batches"
        + (f", {check.earlier:,} rows of earlier runs" if check.earlier else "")
        + ")"
    )
