"""Background sync of the local SQLite database to a cloud PostgreSQL (Supabase).

Capture is the generator's (``-- aragora:synced t``, :mod:`codegen.analysis.synced`):
triggers append each committed change of a synced table to ``sync_outbox`` in the
writing transaction. This module delivers them.

Delivery reads the outbox in ``seq`` order (commit order: SQLite has one writer, and
``seq`` is AUTOINCREMENT, never reused) in batches of ``SUPABASE_SYNC_BATCH_SIZE``, and
applies each batch to the target in one transaction: an upsert by primary key per
``U``, a delete per ``D``, in order, and this source's high-water mark in ``sync_state``
raised to the batch's last ``seq`` in the same transaction. Changes at or below the mark
are skipped, so a batch sent again after a crash (the target committed, the outbox rows
were not yet removed) changes nothing. Outbox rows are removed only after the target
committed.

A change the target refuses for its content (SQLSTATE classes 22 and 23, or a value no
conversion rule takes) is found by applying the batch change by change under savepoints
in a transaction that is then rolled back; its row's changes (it and every later one of
the same row) are moved to the tail of the outbox with the try counted, or, after
``SUPABASE_SYNC_MAX_RETRIES`` tries, to ``sync_dead_letter`` with the server's reason,
and the rest of the batch is delivered. Later changes of a parked row follow it into the
dead letters ("waiting behind" it) until ``aragora-repos sync --redrive`` puts the row's
changes back at the tail, in order. An unreachable target is retried with capped
backoff; the application never waits for it. The target's schema is checked before the
first push: each migration the local database has applied must be applied there with the
same checksum.

A ``U`` change sends the row as it is when the batch is read (in the read transaction that
reads the outbox, so rows and outbox agree): a row updated many times is sent whole each
time, its latest state, and one deleted since is skipped (its ``D`` follows). Values are
read with SQLite's own types and converted with migrate-data's
rules (:mod:`aragora_repos.tools.convert`) into the target column's type, so a synced
table and a migrated one hold the same values and the same canonical checksums.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from aragora_repos import errors
from aragora_repos.backends.postgres import connect_one
from aragora_repos.backends.postgres.driver import map_error
from aragora_repos.backends.sqlite import Opener
from aragora_repos.config import Config, SyncSettings
from aragora_repos.migrations import Migration
from aragora_repos.tools.convert import Converter, Reject, TargetColumn, converter
from aragora_repos.tools.migrate_data.plan import target_columns
from aragora_repos.tools.migrate_data.run import text_codecs
from aragora_repos.tools.migrate_data.state import quote

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

_log = logging.getLogger("aragora_repos.sync")
T = TypeVar("T")

#: The tables the seeds' ``queue_*`` calls name, and their primary keys.
QUEUED = {
    "debate": ("debates", ("id",)),
    "cycle": ("nomic_cycles", ("loop_id", "cycle_number")),
    "event": ("stream_events", ("id",)),
    "metrics": ("agent_metrics", ("id",)),
}


class SyncError(errors.DatabaseError):
    """The sync cannot go on as configured (the target's schema, a missing table); the
    message says what to do."""


class _Refused(Exception):
    """A change the target refuses for its content."""

    def __init__(self, change: Change, reason: str) -> None:
        super().__init__(reason)
        self.change, self.reason = change, reason


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    table: str
    op: str
    key: str
    attempts: int
    data: dict[str, Any] | None = None
    """A ``U`` change's row as read with the batch (None: deleted since)."""
    problem: str | None = None
    """Why the row could not be read (an outbox row no trigger wrote): it is refused."""

    @property
    def row(self) -> tuple[str, str]:
        return self.table, self.key


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What ``get_status()`` reports (the seeds' names where they have one)."""

    queue_size: int
    synced_count: int
    failed_count: int
    parked_count: int
    last_success: datetime | None
    lag_seconds: float
    """Age of the oldest change not yet delivered (0 when the outbox is empty)."""
    running: bool = False
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class Parked:
    id: int
    seq: int
    table: str
    op: str
    key: str
    attempts: int
    reason: str
    parked_at: str


# --- the local side --------------------------------------------------------------------


class Outbox:
    """The local database's outbox, dead letters and counters, on a connection of its own
    (short write transactions, SQLite's writer lock)."""

    def __init__(
        self, path: Path, opener: Opener, timeout: float = 30.0, *, read_only: bool = False
    ) -> None:
        """``read_only``: for looking (status, the dead letters): the file must exist, and
        nothing is created or written."""
        self.read_only = read_only
        # Used from asyncio.to_thread's threads, one call at a time.
        self._db = opener.connect(
            path,
            read_only=read_only,
            isolation_level=None,
            timeout=timeout,
            check_same_thread=False,
        )
        self._db.execute("PRAGMA foreign_keys = ON")
        self._selects: dict[str, tuple[str, list[str], int]] = {}

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Any:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def data_version(self) -> int:
        """Changes when another connection commits (a cheap poll)."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def ready(self) -> bool:
        """Whether the outbox exists (the database is migrated past the sync's tables)."""
        found = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_outbox'"
        ).fetchone()
        return found is not None

    def source_id(self) -> str:
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO sync_local (name, value) VALUES ('source_id', ?)",
                (str(uuid.uuid4()),),
            )
            row = db.execute("SELECT value FROM sync_local WHERE name = 'source_id'").fetchone()
        return str(row[0])

    def issued(self) -> int:
        """The highest change number this database has issued (AUTOINCREMENT's counter)."""
        row = self._db.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'sync_outbox'"
        ).fetchone()
        return int(row[0]) if row else 0

    def new_source(self) -> str:
        """Forget this database's source id (a restored or copied file): the next run
        takes a new one, and the target treats it as a new source."""
        with self._write() as db:
            db.execute("DELETE FROM sync_local WHERE name = 'source_id'")
        return self.source_id()

    def applied(self) -> dict[int, str]:
        rows = self._db.execute("SELECT version, checksum FROM schema_version").fetchall()
        return {int(v): str(c) for v, c in rows}

    def read(self, limit: int) -> list[Change]:
        """The next ``limit`` changes, each ``U`` with its row as it is now (one read
        transaction: the rows are those of the outbox's snapshot)."""
        self._db.execute("BEGIN")
        try:
            rows = self._db.execute(
                "SELECT seq, table_name, op, row_key, attempts FROM sync_outbox "
                "ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
            out = []
            for seq, table, op, key, attempts in rows:
                data, problem = None, None
                if op == "U":
                    try:
                        data = self._row(table, key)
                    except (sqlite3.Error, ValueError, errors.DatabaseError) as exc:
                        # Outbox rows written by hand (any SQLite tool can): refused like
                        # a change the target refuses, never a stop of the whole sync.
                        problem = f"cannot read the row: {exc}"
                out.append(Change(seq, table, op, key, attempts, data, problem))
            return out
        finally:
            self._db.execute("COMMIT")

    def _row(self, table: str, key: str) -> dict[str, Any] | None:
        found = self._selects.get(table)
        if found is None:
            info = self._db.execute(f"PRAGMA table_info({quote(table)})").fetchall()
            names = [r[1] for r in info]
            pk = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
            if not pk:
                raise ValueError(f"no table {table!r} with a primary key here")
            cols = ", ".join(quote(n) for n in names)
            where = " AND ".join(f"{quote(k)} = ?" for k in pk)
            found = (f"SELECT {cols} FROM {quote(table)} WHERE {where}", names, len(pk))
            self._selects[table] = found
        sql, names, width = found
        values = json.loads(key)
        if not isinstance(values, list) or len(values) != width:
            raise ValueError(f"the key {key!r} is not {width} value(s)")
        row = self._db.execute(sql, tuple(values)).fetchone()
        return None if row is None else dict(zip(names, row, strict=True))

    def parked_rows(self) -> set[tuple[str, str]]:
        rows = self._db.execute("SELECT DISTINCT table_name, row_key FROM sync_dead_letter")
        return {(str(t), str(k)) for t, k in rows}

    def _bump(self, db: sqlite3.Connection, name: str, by: int) -> None:
        db.execute(
            "INSERT INTO sync_local (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
            "SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT)",
            (name, str(by), by),
        )

    def ack(self, upto: int, delivered: int) -> None:
        """The target committed every change up to ``upto``: remove them."""
        with self._write() as db:
            db.execute("DELETE FROM sync_outbox WHERE seq <= ?", (upto,))
            self._bump(db, "synced", delivered)
            db.execute(
                "INSERT INTO sync_local (name, value) VALUES ('last_success', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (datetime.now(UTC).isoformat(),),
            )

    def _move_row(
        self, db: sqlite3.Connection, row: tuple[str, str], from_seq: int
    ) -> list[tuple[Any, ...]]:
        found = db.execute(
            "SELECT seq, table_name, op, row_key, attempts, last_error, captured_at "
            "FROM sync_outbox WHERE table_name = ? AND row_key = ? AND seq >= ? ORDER BY seq",
            (*row, from_seq),
        ).fetchall()
        db.execute(
            "DELETE FROM sync_outbox WHERE table_name = ? AND row_key = ? AND seq >= ?",
            (*row, from_seq),
        )
        return found

    def retry_later(self, change: Change, reason: str) -> None:
        """Move ``change`` and every later change of its row to the tail, in order, with
        the try counted (new ``seq``: above the target's high-water mark)."""
        with self._write() as db:
            for r in self._move_row(db, change.row, change.seq):
                first = r[0] == change.seq
                db.execute(
                    "INSERT INTO sync_outbox (table_name, op, row_key, attempts, "
                    "last_error, captured_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        r[1],
                        r[2],
                        r[3],
                        r[4] + 1 if first else r[4],
                        reason if first else r[5],
                        r[6],
                    ),
                )
            self._bump(db, "failed", 1)

    def _bury(
        self, db: sqlite3.Connection, change: Change, reason: str | None, waiting: str
    ) -> None:
        """Move ``change`` and every later change of its row to the dead letters: the
        first with ``reason`` and its try counted (when given), the rest ``waiting``."""
        for r in self._move_row(db, change.row, change.seq):
            first = reason is not None and r[0] == change.seq
            db.execute(
                "INSERT INTO sync_dead_letter (seq, table_name, op, row_key, "
                "attempts, reason, captured_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*r[:4], r[4] + 1 if first else r[4], reason if first else waiting, r[6]),
            )

    def park(self, change: Change, reason: str) -> None:
        """Move ``change`` and every later change of its row to the dead letters."""
        with self._write() as db:
            self._bury(db, change, reason, f"waiting behind change {change.seq} of the row")
            self._bump(db, "failed", 1)

    def divert(self, changes: Iterable[Change]) -> None:
        """Changes of parked rows wait behind them, in the dead letters."""
        with self._write() as db:
            for c in changes:
                self._bury(db, c, None, "waiting behind a parked change of the row")

    def dead_letters(self) -> list[Parked]:
        rows = self._db.execute(
            "SELECT id, seq, table_name, op, row_key, attempts, reason, parked_at "
            "FROM sync_dead_letter ORDER BY id"
        ).fetchall()
        return [Parked(*r) for r in rows]

    def redrive(self, ids: Sequence[int] | None = None) -> int:
        """Put parked rows' changes back at the tail of the outbox, in order, tries reset:
        every row holding one of ``ids`` (all rows when None). Returns changes moved."""
        with self._write() as db:
            if ids is None:
                rows = db.execute("SELECT DISTINCT table_name, row_key FROM sync_dead_letter")
            else:
                marks = ", ".join("?" * len(ids))
                rows = db.execute(
                    "SELECT DISTINCT table_name, row_key FROM sync_dead_letter "
                    f"WHERE id IN ({marks})",
                    tuple(ids),
                )
            moved = 0
            for table, key in rows.fetchall():
                for r in db.execute(
                    "SELECT table_name, op, row_key, captured_at FROM sync_dead_letter "
                    "WHERE table_name = ? AND row_key = ? ORDER BY id",
                    (table, key),
                ).fetchall():
                    db.execute(
                        "INSERT INTO sync_outbox (table_name, op, row_key, captured_at) "
                        "VALUES (?, ?, ?, ?)",
                        r,
                    )
                    moved += 1
                db.execute(
                    "DELETE FROM sync_dead_letter WHERE table_name = ? AND row_key = ?",
                    (table, key),
                )
        return moved

    def touch(self, table: str, key: Sequence[str], values: Sequence[Any]) -> int:
        """Capture a row again as it is now (a no-op UPDATE fires its capture trigger)."""
        where = " AND ".join(f"{quote(k)} = ?" for k in key)
        first = quote(key[0])
        with self._write() as db:
            changed: int = db.execute(
                f"UPDATE {quote(table)} SET {first} = {first} WHERE {where}", tuple(values)
            ).rowcount
        return changed

    def status(self, running: bool, last_error: str | None) -> SyncStatus:
        local = dict(self._db.execute("SELECT name, value FROM sync_local").fetchall())
        queue, oldest = self._db.execute(
            "SELECT count(*), min(captured_at) FROM sync_outbox"
        ).fetchone()
        parked = self._db.execute("SELECT count(*) FROM sync_dead_letter").fetchone()[0]
        lag = 0.0
        if oldest:
            lag = max(0.0, (datetime.now(UTC) - datetime.fromisoformat(oldest)).total_seconds())
        last = local.get("last_success")
        return SyncStatus(
            queue_size=int(queue),
            synced_count=int(local.get("synced", 0)),
            failed_count=int(local.get("failed", 0)),
            parked_count=int(parked),
            last_success=datetime.fromisoformat(last) if last else None,
            lag_seconds=lag,
            running=running,
            last_error=last_error,
        )


# --- the target side -------------------------------------------------------------------


def _is_content(exc: BaseException) -> bool:
    mapped = exc if isinstance(exc, errors.DatabaseError) else map_error(exc)
    return isinstance(mapped, errors.IntegrityError | errors.DataError)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError | asyncpg.exceptions.InternalClientError):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        return True
    mapped = exc if isinstance(exc, errors.DatabaseError) else map_error(exc)
    if isinstance(mapped, errors.ConnectionFailure | errors.TransactionError):
        return True
    code = getattr(exc, "sqlstate", None) or mapped.sqlstate or ""
    return code.startswith(("08", "53", "57P"))


@dataclass
class _Table:
    name: str
    key: tuple[str, ...]
    columns: dict[str, TargetColumn]
    convert: dict[str, Converter]
    upserts: dict[tuple[str, ...], str] = field(default_factory=dict)

    def upsert_sql(self, names: tuple[str, ...]) -> str:
        sql = self.upserts.get(names)
        if sql is None:
            cols = ", ".join(quote(n) for n in names)
            marks = ", ".join(f"${i + 1}" for i in range(len(names)))
            rest = [n for n in names if n not in self.key]
            action = (
                "DO UPDATE SET " + ", ".join(f"{quote(n)} = EXCLUDED.{quote(n)}" for n in rest)
                if rest
                else "DO NOTHING"
            )
            target = ", ".join(quote(k) for k in self.key)
            sql = (
                f"INSERT INTO {quote(self.name)} ({cols}) VALUES ({marks}) "
                f"ON CONFLICT ({target}) {action}"
            )
            self.upserts[names] = sql
        return sql

    def delete_sql(self) -> str:
        where = " AND ".join(f"{quote(k)} = ${i + 1}" for i, k in enumerate(self.key))
        return f"DELETE FROM {quote(self.name)} WHERE {where}"

    def value(self, name: str, raw: Any) -> Any:
        column = self.columns.get(name)
        if column is None:
            raise Reject(f"the target has no column {self.name}.{name}")
        return self.convert[name](raw)


class Target:
    """The target PostgreSQL, on one connection (pooler-safe: nothing is prepared under a
    name, and every statement runs inside a transaction)."""

    def __init__(self, conn: Connection, tables: dict[str, _Table]) -> None:
        self.conn, self.tables = conn, tables

    @classmethod
    async def open(cls, settings: SyncSettings, local: dict[int, str]) -> Target:
        conn = await connect_one(settings.dsn, pooler="transaction")
        try:
            await _check_schema(conn, local)
            await text_codecs(conn)
            keys = await _primary_keys(conn)
            tables: dict[str, _Table] = {}
            for name, cols in (await target_columns(conn, "public")).items():
                if name in keys:
                    counts: Counter[str] = Counter()
                    tables[name] = _Table(
                        name,
                        keys[name],
                        {c.name: c for c in cols},
                        {c.name: converter(c, counts) for c in cols},
                    )
            return cls(conn, tables)
        except BaseException:
            await conn.close()
            raise

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.close()

    def _args(self, change: Change) -> tuple[str, tuple[Any, ...]]:
        if change.problem is not None:
            raise _Refused(change, change.problem)
        table = self.tables.get(change.table)
        if table is None:
            raise _Refused(change, f"the target has no table {change.table!r} with a primary key")
        try:
            if change.op == "D":
                key = json.loads(change.key)
                return table.delete_sql(), tuple(
                    table.value(k, v) for k, v in zip(table.key, key, strict=True)
                )
            data = change.data or {}
            names = tuple(data)
            return table.upsert_sql(names), tuple(table.value(n, data[n]) for n in names)
        except (Reject, ValueError) as exc:
            raise _Refused(change, f"no conversion: {exc}") from None

    async def _mark(self, source: str) -> int:
        value = await self.conn.fetchval(
            "INSERT INTO sync_state (source_id, last_seq) VALUES ($1, 0) ON CONFLICT "
            "(source_id) DO UPDATE SET source_id = EXCLUDED.source_id RETURNING last_seq",
            source,
        )
        return int(value)

    async def apply(self, source: str, batch: Sequence[Change]) -> int:
        """Apply ``batch`` in one transaction with the high-water mark; the changes it
        applied (those above the mark). Raises _Refused for the first refused change."""
        async with self.conn.transaction():
            mark = await self._mark(source)
            fresh = [c for c in batch if c.seq > mark]
            # A row deleted since its change was captured: its delete follows.
            pending = [c for c in fresh if c.op == "D" or c.data is not None or c.problem]
            run: list[tuple[Any, ...]] = []
            run_sql = ""
            runs: list[tuple[str, list[tuple[Any, ...]], list[Change]]] = []
            owners: list[Change] = []
            for change in pending:
                sql, args = self._args(change)
                if sql != run_sql and run:
                    runs.append((run_sql, run, owners))
                    run, owners = [], []
                run_sql = sql
                run.append(args)
                owners.append(change)
            if run:
                runs.append((run_sql, run, owners))
            for sql, rows, changes in runs:
                try:
                    await self.conn.executemany(sql, rows)
                except Exception as exc:
                    if _is_content(exc):
                        raise _Refused(changes[0], str(exc)) from None
                    raise
            if batch and batch[-1].seq > mark:
                await self.conn.execute(
                    "UPDATE sync_state SET last_seq = $2, updated_at = now() WHERE source_id = $1",
                    source,
                    batch[-1].seq,
                )
        return len(fresh)

    async def probe(self, source: str, batch: Sequence[Change]) -> list[tuple[Change, str]]:
        """Which changes of ``batch`` the target refuses, and why: each applied under a
        savepoint in a transaction rolled back at the end (nothing stays)."""
        refused: list[tuple[Change, str]] = []
        blocked: set[tuple[str, str]] = set()

        class _Undo(Exception):
            pass

        with contextlib.suppress(_Undo):
            async with self.conn.transaction():
                mark = await self._mark(source)
                for change in batch:
                    if change.seq <= mark or change.row in blocked:
                        continue
                    if change.op == "U" and change.data is None and change.problem is None:
                        continue
                    try:
                        sql, args = self._args(change)
                        async with self.conn.transaction():
                            await self.conn.execute(sql, *args)
                    except _Refused as exc:
                        refused.append((change, exc.reason))
                        blocked.add(change.row)
                    except Exception as exc:
                        if not _is_content(exc):
                            raise
                        refused.append((change, str(exc)))
                        blocked.add(change.row)
                raise _Undo
        return refused


async def _primary_keys(conn: Connection) -> dict[str, tuple[str, ...]]:
    rows = await conn.fetch(
        """
        SELECT c.relname, array_agg(a.attname ORDER BY k.ord)
        FROM pg_constraint p
        JOIN pg_class c ON c.oid = p.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN LATERAL unnest(p.conkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE p.contype = 'p' AND n.nspname = 'public'
        GROUP BY c.relname
        """
    )
    return {str(r[0]): tuple(r[1]) for r in rows}


async def _check_schema(conn: Connection, local: dict[int, str]) -> None:
    """Every migration the local database has applied must be applied on the target,
    with the same checksum."""
    try:
        rows = await conn.fetch("SELECT version, checksum FROM schema_version WHERE success")
    except asyncpg.UndefinedTableError:
        raise SyncError(
            "the sync target has no schema_version table: its schema is unknown; migrate it "
            "first (aragora-repos --database-url <target> migrate)"
        ) from None
    target = {int(v): str(c) for v, c in rows}
    missing = sorted(set(local) - set(target))
    if missing:
        raise SyncError(
            f"the sync target's schema is older than this database's: migration(s) "
            f"{', '.join(map(str, missing))} not applied there; migrate the target first"
        )
    differ = sorted(v for v in local if target[v] != local[v])
    if differ:
        raise SyncError(
            f"the sync target's schema is not this database's: migration(s) "
            f"{', '.join(map(str, differ))} were applied there with other contents"
        )


# --- the worker --------------------------------------------------------------------------


class SyncWorker:
    """Delivers the outbox to the target. One per process is enough; two (a service and
    ``aragora-repos sync --once``) are safe: the target serializes them on the source's
    high-water mark row."""

    def __init__(
        self, config: Config, settings: SyncSettings, migrations: Sequence[Migration]
    ) -> None:
        self.config, self.settings, self.migrations = config, settings, migrations
        self._opener = Opener(config.sqlite_key)
        self._outbox: Outbox | None = None
        self._target: Target | None = None
        self._source = ""
        self.last_error: str | None = None
        self.running = False
        self._steps = asyncio.Lock()
        """One step at a time (the service's task and a flush share the worker)."""
        self._io = asyncio.Lock()
        """One call at a time on the outbox's connection (each runs in a thread)."""
        self.on_batch: Callable[[int], None] | None = None
        """Called after each delivered batch with its size (tests, the CLI)."""

    async def _local(self, *, read_only: bool = False) -> Outbox:
        """The outbox's connection (read-only when the first use only looks); for
        delivering, also this database's source id (taken on first delivery)."""
        if self._outbox is not None and self._outbox.read_only and not read_only:
            await self._call(self._outbox.close)  # it looked first; now it writes
            self._outbox = None
        if self._outbox is None:
            self._outbox = await asyncio.to_thread(
                partial(Outbox, read_only=read_only),
                self.config.sqlite_file,
                self._opener,
                self.config.timeout,
            )
        if not read_only and not self._source and await self._call(self._outbox.ready):
            self._source = await self._call(self._outbox.source_id)
        return self._outbox

    async def _remote(self) -> Target:
        if self._target is None:
            outbox = await self._local()
            local = await self._call(outbox.applied)
            target = await Target.open(self.settings, local)
            try:
                await self._check_numbering(target, outbox)
            except BaseException:
                await target.close()
                raise
            self._target = target
        return self._target

    async def _check_numbering(self, target: Target, outbox: Outbox) -> None:
        """A database restored from a backup (or a copy) issues change numbers the target
        already has from it: they would be skipped. Refuse, saying what to do."""
        async with target.conn.transaction():
            mark = await target._mark(self._source)
        issued = await self._call(outbox.issued)
        if mark > issued:
            raise SyncError(
                f"this database's change numbers are behind the target's mark for it "
                f"(source {self._source}: the target has changes up to {mark}, this database "
                f"has issued up to {issued}): it was restored from a backup or copied, and "
                "its changes would be skipped; give it a new source id with aragora-repos "
                "sync --new-source (what the target holds stays)"
            )

    async def _drop_target(self) -> None:
        if self._target is not None:
            target, self._target = self._target, None
            await target.close()

    async def close(self) -> None:
        await self._drop_target()
        if self._outbox is not None:
            outbox, self._outbox = self._outbox, None
            await self._call(outbox.close)

    async def dead_letters(self) -> list[Parked]:
        outbox = await self._local(read_only=True)
        return await self._call(outbox.dead_letters) if await self._call(outbox.ready) else []

    async def new_source(self) -> str:
        outbox = await self._local()
        self._source = await self._call(outbox.new_source)
        return self._source

    async def redrive(self, ids: Sequence[int] | None = None) -> int:
        outbox = await self._local()
        return await self._call(outbox.redrive, ids) if self._source else 0

    async def status(self) -> SyncStatus:
        outbox = await self._local(read_only=True)
        if not await self._call(outbox.ready):
            return SyncStatus(0, 0, 0, 0, None, 0.0, self.running, self.last_error)
        return await self._call(outbox.status, self.running, self.last_error)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        async with self._io:
            return await asyncio.to_thread(fn, *args)

    async def step(self) -> int:
        """Deliver one batch; the changes it removed from the outbox (0: it was empty).

        Raises:
            SyncError: the target cannot take this database's changes (schema).
            errors.ConnectionFailure and the like: the target is unreachable (the batch
                stays in the outbox).
        """
        async with self._steps:
            return await self._step()

    async def _step(self) -> int:
        outbox = await self._local()
        if not self._source:
            return 0  # not migrated yet: nothing can have been captured
        batch = await self._call(outbox.read, self.settings.batch_size)
        if not batch:
            return 0
        parked = await self._call(outbox.parked_rows)
        waiting = [c for c in batch if c.row in parked]
        if waiting:
            await self._call(outbox.divert, waiting)
            return len(waiting)
        target = await self._remote()
        try:
            applied = await target.apply(self._source, batch)
        except _Refused as first:
            refused = await target.probe(self._source, batch)
            for change, reason in refused or [(first.change, first.reason)]:
                if change.attempts + 1 >= self.settings.max_retries:
                    _log.warning(
                        "sync: parked change %d of %s (%s)", change.seq, change.table, reason
                    )
                    await self._call(outbox.park, change, reason)
                else:
                    await self._call(outbox.retry_later, change, reason)
            return len(batch)  # what is left of the batch goes with the next read
        except Exception as exc:
            if _is_transient(exc):
                await self._drop_target()
            raise
        # Counted as applied: a batch sent again after a crash (the target had it) adds 0.
        await self._call(outbox.ack, batch[-1].seq, applied)
        self.last_error = None
        if self.on_batch is not None:
            self.on_batch(len(batch))
        return len(batch)

    async def drain(self, deadline: float | None = None) -> int:
        """Deliver until the outbox is empty (or ``deadline``, a loop time, passes)."""
        done = 0
        loop = asyncio.get_running_loop()
        while deadline is None or loop.time() < deadline:
            n = await self.step()
            if n == 0:
                break
            done += n
        return done

    async def follow(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set: drain, then wait for a commit (``PRAGMA
        data_version``, polled every 0.1 s) or ``interval``; an unreachable target is
        retried with backoff from 0.5 s doubling up to ``interval``."""
        self.running = True
        backoff = 0.5
        outbox = await self._local()
        try:
            while not stop.is_set():
                try:
                    await self.drain()
                    backoff = 0.5
                except SyncError as exc:
                    self.last_error = str(exc)
                    _log.error("sync stopped: %s", exc)
                    raise
                except Exception as exc:
                    if not _is_transient(exc):
                        self.last_error = str(map_error(exc))
                        _log.error("sync stopped: %s", self.last_error)
                        raise
                    self.last_error = f"target unreachable: {map_error(exc)}"
                    _log.warning("sync: %s; retrying in %.1f s", self.last_error, backoff)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff)
                    backoff = min(backoff * 2, self.settings.interval)
                    continue
                seen = await self._call(outbox.data_version)
                waited = 0.0
                while not stop.is_set() and waited < self.settings.interval:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.1)
                    waited += 0.1
                    if await self._call(outbox.data_version) != seen:
                        break
        finally:
            self.running = False


class SyncService:
    """The seeds' sync service over a :class:`SyncWorker`: a task started by ``connect()``
    (``SUPABASE_SYNC_ENABLED``), ``get_status()``, ``flush()``, and the ``queue_*`` calls,
    which capture a row again as it is now (the capture triggers already queued it when it
    was written)."""

    def __init__(self, worker: SyncWorker) -> None:
        self.worker = worker
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._queued: Outbox | None = None
        """The queue_* calls' own connection (they are synchronous, as the seeds')."""

    @classmethod
    def start(cls, config: Config, migrations: Sequence[Migration]) -> SyncService:
        assert config.sync is not None
        service = cls(SyncWorker(config, config.sync, migrations))
        service._task = asyncio.get_running_loop().create_task(service._run())
        return service

    async def _run(self) -> None:
        try:
            await self.worker.follow(self._stop)
        except Exception as exc:  # reported by get_status() and logged by follow()
            self.worker.last_error = self.worker.last_error or str(exc)

    async def get_status(self) -> SyncStatus:
        return await self.worker.status()

    async def flush(self, timeout: float = 30.0) -> bool:
        """Deliver what is queued, for at most ``timeout`` seconds; whether the outbox is
        empty at the end."""
        deadline = asyncio.get_running_loop().time() + timeout
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.worker.drain(deadline), timeout)
        return (await self.worker.status()).queue_size == 0

    def _queue(self, kind: str, row: dict[str, Any]) -> None:
        table, key = QUEUED[kind]
        if self._queued is None:
            self._queued = Outbox(self.worker.config.sqlite_file, self.worker._opener)
        if not self._queued.touch(table, key, [row[k] for k in key]):
            raise errors.NotFoundError(
                f"cannot queue {kind}: no {table} row with that key (save it first)"
            )

    def queue_debate(self, debate: dict[str, Any]) -> None:
        self._queue("debate", debate)

    def queue_cycle(self, cycle: dict[str, Any]) -> None:
        self._queue("cycle", cycle)

    def queue_event(self, event: dict[str, Any]) -> None:
        self._queue("event", event)

    def queue_metrics(self, metrics: dict[str, Any]) -> None:
        self._queue("metrics", metrics)

    async def close(self, timeout: float = 30.0) -> None:
        """Stop following, deliver what is left (at most ``timeout`` seconds), close."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self.flush(timeout)
        await self.worker.close()
        if self._queued is not None:
            self._queued.close()
