"""SQLite behind the async contract: a writer connection owned by one worker thread, a
reader connection used on the event loop's own thread, and the base class of the
generated SQLite repositories."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from aragora_repos import errors
from aragora_repos.backends.base import Backend, Planner
from aragora_repos.backends.sqlite.connection import (
    Row,
    SqliteConnection,
    SqliteDriver,
    check_isolation,
)
from aragora_repos.backends.sqlite.opener import PLAIN, Opener
from aragora_repos.codec import encode_timestamptz
from aragora_repos.keyring import NO_KEYS, KeyRing
from aragora_repos.migrations import Applied, Migration
from aragora_repos.observability import BackendCapabilities, BackendType, PoolStats
from aragora_repos.transaction import TransactionConfig, TxOptions

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S")

#: Tables a health probe counts: not SQLite's own, not schema_version, not full-text
#: search tables or their shadow tables.
_COUNT_TABLES = (
    "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
    "AND name NOT LIKE 'sqlite_%' AND name <> 'schema_version' "
    "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' "
    "AND name NOT IN (SELECT name || suffix FROM sqlite_schema, "
    "(SELECT '_data' AS suffix UNION ALL SELECT '_idx' UNION ALL "
    "SELECT '_docsize' UNION ALL SELECT '_config' UNION ALL SELECT '_content') "
    "WHERE sql LIKE 'CREATE VIRTUAL TABLE%')"
)


class _SqliteTx:
    """The async transaction driver: the asyncio write lock, then BEGIN on the writer
    thread, where the transaction is adopted by the connection so synchronous blocks
    inside it (a batch, a migration) become its savepoints."""

    __slots__ = ("db", "driver", "locked")

    def __init__(self, db: AsyncSqliteDatabase) -> None:
        self.db = db
        self.driver = SqliteDriver(db.connection)
        self.locked = False

    async def begin(self, options: TxOptions) -> None:
        db = self.db
        if db._closed:
            raise errors.PoolClosed("cannot use the database: it is closed")
        await db.acquire_writer("begin a transaction")
        self.locked = True
        driver = self.driver

        def start() -> None:
            driver.begin(options)
            db.connection.adopt(driver, options)

        try:
            await db._hop(start)
        except BaseException:
            self.locked = False
            db._lock.release()
            raise

    async def _finish(self, fn: Callable[[], None]) -> None:
        # The call runs to the end on the writer thread even if the caller is cancelled;
        # wait for it, so the lock is never released with a transaction still open.
        future = asyncio.ensure_future(self.db._hop(fn))
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await future
            raise

    async def commit(self) -> None:
        await self._finish(self.driver.commit)

    async def rollback(self) -> None:
        await self._finish(self.driver.rollback)

    async def abandon(self) -> None:
        await self._finish(self.driver.rollback)

    async def savepoint(self, name: str) -> None:
        await self.db._hop(functools.partial(self.driver.savepoint, name))

    async def release(self, name: str) -> None:
        await self.db._hop(functools.partial(self.driver.release, name))

    async def rollback_to(self, name: str) -> None:
        await self.db._hop(functools.partial(self.driver.rollback_to, name))

    def is_open(self) -> bool:
        return self.driver.is_open()

    async def close(self) -> None:
        if self.locked:
            self.locked = False
            self.db.connection.disown()
            self.db._lock.release()


async def _in_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


async def _chunked(
    rows: Generator[Row, None, None], size: int, hop: Callable[[Callable[[], Any]], Awaitable[Any]]
) -> AsyncIterator[Row]:
    """``rows`` read ``size`` at a time through ``hop`` (the thread that owns their
    connection), closed there too however the iteration ends."""
    try:
        while chunk := await hop(lambda: list(itertools.islice(rows, size))):
            for row in chunk:
                yield row
    finally:
        await hop(rows.close)


#: Overruns of the inline budget after which a query is always run on the writer's thread.
HEAVY_AFTER = 3


class AsyncSqliteDatabase(Backend):
    """Async access to SQLite: a writer connection owned by one worker thread, and a
    reader connection used on the event loop's own thread.

    A repository call that may write, may take long (a ``:many`` list) or runs inside a
    transaction makes one hop to the writer thread, where execute, fetch and row mapping
    all run. A single-row read outside a transaction runs inline on the reader
    (:meth:`read`): in WAL mode readers never wait for writers (sqlite.org/wal.html
    §2.2), and the reader's busy timeout is 0, so a rare SQLITE_BUSY (checkpoint,
    recovery) falls back to the hop instead of stalling the loop. A transaction holds an
    asyncio lock, so other tasks' writes wait instead of landing inside it.

    Transactions: writes use ``BEGIN IMMEDIATE``; SQLite has one isolation level
    (SERIALIZABLE, sqlite.org/isolation.html) and any other request raises.
    """

    kind = BackendType.SQLITE
    dialect = "sqlite"

    __slots__ = (
        "_executor",
        "_heavy",
        "_lock",
        "_lock_timeouts",
        "_overruns",
        "_waits",
        "connection",
        "inline_fallbacks",
        "reader",
    )

    def __init__(
        self,
        connection: SqliteConnection,
        executor: ThreadPoolExecutor,
        reader: SqliteConnection | None = None,
        transaction_config: TransactionConfig | None = None,
    ) -> None:
        super().__init__(transaction_config)
        self.connection = connection
        self.reader = reader
        self._executor = executor
        self._lock = asyncio.Lock()
        self._waits = 0
        self._lock_timeouts = 0
        self._heavy: set[object] = set()
        self._overruns: dict[object, int] = {}
        self.inline_fallbacks = 0
        """Inline reads that ran past their budget and went to the writer's thread."""

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        timeout: float = 5.0,
        slow_query_ms: float | None = 1000.0,
        transaction_config: TransactionConfig | None = None,
        inspect: bool = False,
        opener: Opener = PLAIN,
        inline_budget_ms: float | None = 1.0,
        keys: KeyRing = NO_KEYS,
    ) -> AsyncSqliteDatabase:
        """Open the database; ``inspect`` opens an existing file read-only and changes
        nothing (see :class:`SqliteConnection`); ``opener``: the module and key."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aragora-sqlite")
        loop = asyncio.get_running_loop()
        try:
            connection = await loop.run_in_executor(
                executor,
                functools.partial(
                    SqliteConnection,
                    path,
                    timeout=timeout,
                    check_same_thread=False,
                    inspect=inspect,
                    slow_query_ms=slow_query_ms,
                    opener=opener,
                    keys=keys,
                ),
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        reader = None
        if str(path) != ":memory:" and not inspect:  # in-memory: private to one connection
            reader = SqliteConnection(
                path,
                timeout=timeout,
                read_only=True,
                slow_query_ms=slow_query_ms,
                opener=opener,
                budget_ms=inline_budget_ms,
                keys=keys,
            )
        db = cls(connection, executor, reader, transaction_config)
        db.keys = keys
        return db

    # --- where a call runs -------------------------------------------------------------

    async def _hop(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise errors.PoolClosed("cannot use the database: it is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the connection's thread (one hop)."""
        call = functools.partial(fn, *args, **kwargs)
        tx = self._tx.get()
        if tx is not None:
            tx.check_usable()
            return await self._hop(call)
        await self.acquire_writer("run a statement")
        try:
            return await self._hop(call)
        finally:
            self._lock.release()

    async def read(
        self,
        fn: Callable[Concatenate[S, P], T],
        writer: S,
        reader: S | None,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """A single-row read: ``fn(reader, ...)`` inline on the event loop's thread when no
        transaction is open, else (or when the file is busy) ``fn(writer, ...)`` in one
        hop. ``writer`` and ``reader`` are the same repository over each connection.

        Inline reads are bounded (``ARAGORA_SQLITE_INLINE_BUDGET_MS``, default 1 ms): one
        that runs longer (an aggregate over a large table) is interrupted and run again
        on the writer's thread; a query that overran ``HEAVY_AFTER`` times is not tried
        inline again by this database.
        """
        if (
            reader is not None
            and self._tx.get() is None
            and not self._closed
            and fn not in self._heavy
        ):
            try:
                return fn(reader, *args, **kwargs)
            except errors.InlineBudgetExceeded:
                # One overrun can be a cold cache or a schema reload; a query past its
                # budget HEAVY_AFTER times is not tried inline again.
                self.inline_fallbacks += 1
                overruns = self._overruns[fn] = self._overruns.get(fn, 0) + 1
                if overruns >= HEAVY_AFTER and len(self._heavy) < 10_000:
                    self._heavy.add(fn)
            except errors.DatabaseBusy:
                pass  # a checkpoint or recovery holds the file: take the writer's thread
        return await self.run(fn, writer, *args, **kwargs)

    async def stream(self, sql: str, args: Sequence[Any], *, size: int = 500) -> AsyncIterator[Row]:
        """The rows of a statement, ``size`` at a time, never all in memory. Inside a
        transaction they come from the writer (they must see its writes); outside one,
        from a read-only connection of their own on a worker thread, so a long read
        neither holds the writer nor stalls the event loop (WAL: writers go on)."""
        tx = self._tx.get()
        if tx is not None:
            tx.check_usable()
            async for row in _chunked(self.connection.iterate(sql, args, size), size, self._hop):
                yield row
            return
        if self.reader is None:  # an in-memory database: one connection holds it
            await self.acquire_writer("stream a statement")
            try:
                rows = self.connection.iterate(sql, args, size)
                async for row in _chunked(rows, size, self._hop):
                    yield row
            finally:
                self._lock.release()
            return
        own = await asyncio.to_thread(
            SqliteConnection,
            self.connection.path,
            timeout=self.connection.timeout,
            read_only=True,
            check_same_thread=False,
            slow_query_ms=self.connection.slow_ms,
            opener=self.connection.opener,
        )
        try:
            async for row in _chunked(own.iterate(sql, args, size), size, _in_thread):
                yield row
        finally:
            await asyncio.to_thread(own.close)

    async def acquire_writer(self, what: str) -> None:
        """Take the writer from other tasks of this process, waiting at most
        ``DB_TIMEOUT`` seconds like SQLite's own busy wait, with the same error."""
        if self._lock.locked():
            self._waits += 1
        try:
            async with asyncio.timeout(self.connection.timeout):
                await self._lock.acquire()
        except TimeoutError:
            self._lock_timeouts += 1
            raise errors.DatabaseBusy(
                f"cannot {what}: the writer stayed busy for {self.connection.timeout:g} s "
                "(DB_TIMEOUT)",
                sqlstate="55P03",
            ) from None

    # --- statements --------------------------------------------------------------------

    async def fetchrow(
        self, sql: str, args: Sequence[Any], *, readonly: bool = False
    ) -> Row | None:
        return await self.run(self.connection.fetchone, sql, args)

    async def fetch(self, sql: str, args: Sequence[Any], *, readonly: bool = False) -> list[Row]:
        return await self.run(self.connection.fetchall, sql, args)

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        return await self.run(self.connection.execute, sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return await self.run(self.connection.executemany, sql, rows)

    # --- the contract's driver parts ---------------------------------------------------

    def _new_driver(self) -> _SqliteTx:
        return _SqliteTx(self)

    def _check_options(self, options: TxOptions) -> None:
        check_isolation(options.isolation)

    @property
    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(
            backend=BackendType.SQLITE,
            concurrent_writes=False,
            advisory_locks=False,
            listen_notify=False,
            jsonb=False,
            full_text_search=True,
            read_replicas=False,
            savepoints=True,
            returning=sqlite3.sqlite_version_info >= (3, 35),
            async_pool=False,
        )

    def pool_stats(self) -> PoolStats:
        connections = 1 + (self.reader is not None)
        busy = 1 if self._lock.locked() else 0
        reads = self.reader.queries if self.reader is not None else 0
        return PoolStats(
            total=0 if self._closed else connections,
            active=busy,
            idle=0 if self._closed else connections - busy,
            max_size=connections,
            waits=self._waits,
            timeouts=self._lock_timeouts,
            queries=self.connection.queries + reads,
            reads=reads,
            writes=self.connection.queries,
            replica_reads=0,
        )

    async def _allow_retention(self, cutoff: datetime) -> None:
        # The runtime's own SQL function (backends/sqlite/functions.py): another SQLite
        # tool's connection has none, so it can never delete from an append-only table.
        await self.execute("SELECT aragora_set_retention_cutoff(?)", (encode_timestamptz(cutoff),))

    async def _probe(self) -> tuple[int, int | None]:
        def probe() -> tuple[int, int | None]:
            row = self.connection.fetchone(_COUNT_TABLES, ())
            assert row is not None
            return int(row[0]), self.connection.schema_version()

        return await self.run(probe)

    # --- migrations and housekeeping ---------------------------------------------------

    async def applied(self) -> dict[int, Applied]:
        return await self.run(self.connection.applied)

    async def _run_plan(
        self,
        planner: Planner,
        on_statement: Callable[[str], None] | None,
        backup_to: Path | None,
        on_backup: Callable[[Path | None], None] | None,
    ) -> list[int]:
        return await self.run(self.connection.run_plan, planner, on_statement, backup_to, on_backup)

    async def stamp(self, migrations: Sequence[Migration]) -> list[int]:
        return await self.run(self.connection.stamp, migrations)

    async def repair(self) -> list[int]:
        return await self.run(self.connection.repair)

    async def backup(self, root: Path) -> Path | None:
        """A verified backup in a new folder under ``root`` (SqliteConnection.backup)."""
        return await self.run(self.connection.backup, root)

    async def schema_version(self) -> int | None:
        return await self.run(self.connection.schema_version)

    async def close(self) -> None:
        if self._closed:
            return
        async with self._lock:
            await self._hop(self.connection.close)
            self._closed = True
            if self.reader is not None:
                self.reader.close()
        self._executor.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"AsyncSqliteDatabase({self.connection.path!r})"


class SqliteRepository(Generic[S]):
    """The base of generated async SQLite repositories: the synchronous repository ``S``
    over the writer connection (one hop per call) and over the reader (inline reads)."""

    __slots__ = ("_db", "_read", "_sync")

    def __init__(self, db: AsyncSqliteDatabase, sync: Callable[[SqliteConnection], S]) -> None:
        self._db = db
        self._sync = sync(db.connection)
        self._read = None if db.reader is None else sync(db.reader)
