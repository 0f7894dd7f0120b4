"""SQLite backend: a synchronous connection, and an async wrapper with one thread hop per call.

Connections run in autocommit mode (``isolation_level=None``) and open transactions
explicitly: writers use ``BEGIN IMMEDIATE`` so a read-then-write never fails at once
with SQLITE_BUSY_SNAPSHOT, whatever the busy timeout (sqlite.org/lang_transaction.html).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from aragora_repos import errors
from aragora_repos.migrations import SCHEMA_VERSION_SQLITE, Migration, pending, sqlite_statements
from aragora_repos.transaction import Isolation

P = ParamSpec("P")
T = TypeVar("T")
Row = tuple[Any, ...]

#: Connection settings the generated SQL relies on (codegen.dialects.verify uses the same).
PRAGMAS = ("PRAGMA foreign_keys = ON", "PRAGMA case_sensitive_like = ON")


def _check_isolation(isolation: Isolation | None) -> None:
    if isolation not in (None, Isolation.SERIALIZABLE):
        raise errors.TransactionError(
            f"cannot use isolation {isolation}: sqlite transactions are always serializable "
            "(sqlite.org/isolation.html)"
        )


class SqliteConnection:
    """One SQLite connection: queries, explicit transactions with savepoints, migrations."""

    __slots__ = ("_closed", "_conn", "_depth", "path")

    def __init__(
        self, path: str | Path, *, timeout: float = 5.0, check_same_thread: bool = True
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                self.path,
                timeout=timeout,
                isolation_level=None,
                check_same_thread=check_same_thread,
            )
            if self.path != ":memory:":
                # WAL lets readers run beside one writer; NORMAL is durable across
                # application crashes in WAL mode (sqlite.org/pragma.html#pragma_synchronous).
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
            for pragma in PRAGMAS:
                self._conn.execute(pragma)
        except sqlite3.Error as exc:
            raise errors.from_sqlite(exc) from exc
        self._depth = 0
        self._closed = False

    # --- statements (called by generated repositories) ---------------------------------

    def fetchone(self, sql: str, args: Sequence[Any]) -> Row | None:
        try:
            row: Row | None = self._conn.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise errors.from_sqlite(exc) from exc
        return row

    def fetchall(self, sql: str, args: Sequence[Any]) -> list[Row]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise errors.from_sqlite(exc) from exc

    def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement; return the number of rows it changed."""
        try:
            return self._conn.execute(sql, args).rowcount
        except sqlite3.Error as exc:
            raise errors.from_sqlite(exc) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run a statement per row in one transaction; return the rows changed."""
        with self.transaction():
            try:
                return self._conn.executemany(sql, rows).rowcount
            except sqlite3.Error as exc:
                raise errors.from_sqlite(exc) from exc

    # --- transactions ------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    def begin(self, *, readonly: bool = False) -> None:
        """Start a transaction, or a savepoint when one is open."""
        self._check_open()
        if self._depth == 0:
            # DEFERRED for read-only work: it never takes the write lock.
            self._raw("BEGIN DEFERRED" if readonly else "BEGIN IMMEDIATE")
        else:
            self._raw(f"SAVEPOINT sp_{self._depth}")
        self._depth += 1

    def commit(self) -> None:
        if self._depth == 0:
            raise errors.InterfaceError("cannot commit: no transaction is open")
        self._depth -= 1
        self._raw("COMMIT" if self._depth == 0 else f"RELEASE SAVEPOINT sp_{self._depth}")

    def rollback(self) -> None:
        if self._depth == 0:
            raise errors.InterfaceError("cannot roll back: no transaction is open")
        self._depth -= 1
        if self._depth == 0:
            self._raw("ROLLBACK")
        else:
            self._raw(f"ROLLBACK TO SAVEPOINT sp_{self._depth}")
            self._raw(f"RELEASE SAVEPOINT sp_{self._depth}")

    @contextlib.contextmanager
    def transaction(
        self, *, isolation: Isolation | None = None, readonly: bool = False
    ) -> Iterator[None]:
        """``with conn.transaction():`` commits on success, rolls back on any exception."""
        _check_isolation(isolation)
        self.begin(readonly=readonly)
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def _raw(self, sql: str) -> None:
        try:
            self._conn.execute(sql)
        except sqlite3.Error as exc:
            raise errors.from_sqlite(exc) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise errors.PoolClosed("cannot use the sqlite connection: it is closed")

    # --- migrations and housekeeping ---------------------------------------------------

    def migrate(self, migrations: Sequence[Migration]) -> list[int]:
        """Apply pending migrations, each with its version row in one transaction.

        The first ``BEGIN IMMEDIATE`` holds the write lock while versions are read, so
        processes migrating together apply each migration once.
        """
        self._raw(SCHEMA_VERSION_SQLITE)
        applied: list[int] = []
        while True:
            with self.transaction():
                done: dict[int, str] = dict(
                    self.fetchall("SELECT version, checksum FROM schema_version", ())
                )
                todo = pending(migrations, done)
                if not todo:
                    return applied
                m = todo[0]
                started = time.perf_counter()
                for statement in sqlite_statements(m.sqlite_up):
                    try:
                        self._conn.execute(statement)
                    except sqlite3.Error as exc:
                        raise errors.MigrationError(
                            f"cannot apply migration {m.version:04d}_{m.name} on sqlite: {exc}"
                        ) from exc
                self.execute(
                    "INSERT INTO schema_version (version, name, checksum, execution_ms) "
                    "VALUES (?, ?, ?, ?)",
                    (m.version, m.name, m.checksum, (time.perf_counter() - started) * 1000),
                )
                applied.append(m.version)

    def schema_version(self) -> int | None:
        try:
            row = self._conn.execute("SELECT max(version) FROM schema_version").fetchone()
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row and row[0] is not None else None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()

    def __repr__(self) -> str:
        return f"SqliteConnection({self.path!r})"


class AsyncSqliteDatabase:
    """Async access to one SQLite connection owned by a single worker thread.

    A repository call runs execute, fetch and row mapping in one hop to that thread.
    A transaction holds an asyncio lock, so other tasks' calls wait instead of landing
    inside it.
    """

    __slots__ = ("_closed", "_executor", "_in_tx", "_lock", "connection")

    def __init__(self, connection: SqliteConnection, executor: ThreadPoolExecutor) -> None:
        self.connection = connection
        self._executor = executor
        self._lock = asyncio.Lock()
        self._in_tx: ContextVar[bool] = ContextVar(f"aragora_sqlite_tx_{id(self)}", default=False)
        self._closed = False

    @classmethod
    async def open(cls, path: str | Path, *, timeout: float = 5.0) -> AsyncSqliteDatabase:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aragora-sqlite")
        loop = asyncio.get_running_loop()
        try:
            connection = await loop.run_in_executor(
                executor,
                functools.partial(SqliteConnection, path, timeout=timeout, check_same_thread=False),
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(connection, executor)

    async def _hop(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise errors.PoolClosed("cannot use the database: it is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the connection's thread (one hop)."""
        call = functools.partial(fn, *args, **kwargs)
        if self._in_tx.get():
            return await self._hop(call)
        async with self._lock:
            return await self._hop(call)

    @contextlib.asynccontextmanager
    async def transaction(
        self, *, isolation: Isolation | None = None, readonly: bool = False
    ) -> AsyncIterator[None]:
        """``async with db.transaction():``; nested blocks become savepoints."""
        _check_isolation(isolation)
        if self._in_tx.get():
            async with self._block(readonly):
                yield
            return
        async with self._lock:
            token = self._in_tx.set(True)
            try:
                async with self._block(readonly):
                    yield
            finally:
                self._in_tx.reset(token)

    @contextlib.asynccontextmanager
    async def _block(self, readonly: bool) -> AsyncIterator[None]:
        conn = self.connection
        await self._hop(functools.partial(conn.begin, readonly=readonly))
        try:
            yield
        except BaseException:
            # Shielded: the rollback reaches the connection's thread even if the caller
            # is cancelled, before the lock lets anyone else in.
            await asyncio.shield(self._hop(conn.rollback))
            raise
        await asyncio.shield(self._hop(conn.commit))

    async def migrate(self, migrations: Sequence[Migration]) -> list[int]:
        return await self.run(self.connection.migrate, migrations)

    async def schema_version(self) -> int | None:
        return await self.run(self.connection.schema_version)

    async def close(self) -> None:
        if self._closed:
            return
        async with self._lock:
            await self._hop(self.connection.close)
            self._closed = True
        self._executor.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"AsyncSqliteDatabase({self.connection.path!r})"
