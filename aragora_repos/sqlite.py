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
from aragora_repos.migrations import (
    SCHEMA_VERSION_SQLITE,
    Applied,
    Migration,
    Step,
    plan_down,
    plan_up,
)
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


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch to WAL unless the file already uses it.

    Changing the journal mode needs an exclusive lock and can report SQLITE_BUSY without
    calling the busy handler while another connection opens the same new file, so the
    switch is retried until ``timeout``; a file already in WAL needs no lock at all.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


class SqliteConnection:
    """One SQLite connection: queries, explicit transactions with savepoints, migrations."""

    __slots__ = ("_closed", "_conn", "_depth", "path")

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 5.0,
        check_same_thread: bool = True,
        read_only: bool = False,
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
            if self.path != ":memory:" and not read_only:
                # WAL lets readers run beside one writer; NORMAL is durable across
                # application crashes in WAL mode (sqlite.org/pragma.html#pragma_synchronous).
                _enable_wal(self._conn, timeout)
                self._conn.execute("PRAGMA synchronous = NORMAL")
            for pragma in PRAGMAS:
                self._conn.execute(pragma)
            if read_only:
                # Never writes, and fails at once instead of sleeping in the busy handler
                # on the event loop's thread.
                self._conn.execute("PRAGMA query_only = ON")
                self._conn.execute("PRAGMA busy_timeout = 0")
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
        """Run a statement per row in one transaction; return the number of rows.

        Rows are encoded as they are executed, so the first bad row raises its own error
        (a value refused by an encoder, or a constraint), as on PostgreSQL.
        """
        count = 0

        def counted() -> Iterator[Sequence[Any]]:
            nonlocal count
            for row in rows:
                count += 1
                yield row

        with self.transaction():
            try:
                self._conn.executemany(sql, counted())
                return count
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

    def applied(self) -> dict[int, Applied]:
        """The ``schema_version`` rows; empty when the table does not exist yet."""
        exists = self.fetchone(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'", ()
        )
        if exists is None:
            return {}
        rows = self.fetchall(
            "SELECT version, name, checksum, applied_at, execution_ms, success "
            "FROM schema_version ORDER BY version",
            (),
        )
        return {r[0]: Applied(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows}

    def migrate(
        self,
        migrations: Sequence[Migration],
        *,
        target: int | None = None,
        on_statement: Callable[[str], None] | None = None,
    ) -> list[int]:
        """Apply pending migrations (up to ``target``); return the versions applied."""
        return self._run_plan(
            lambda done: plan_up(migrations, done, "sqlite", target), on_statement
        )

    def migrate_down(
        self,
        migrations: Sequence[Migration],
        *,
        target: int,
        on_statement: Callable[[str], None] | None = None,
    ) -> list[int]:
        """Run down sections until the version is ``target``; return the versions undone."""
        return self._run_plan(
            lambda done: plan_down(migrations, done, "sqlite", target), on_statement
        )

    def plan(
        self, migrations: Sequence[Migration], *, target: int | None = None, down: bool = False
    ) -> list[Step]:
        done = self.applied()
        if down:
            return plan_down(migrations, done, "sqlite", -1 if target is None else target)
        return plan_up(migrations, done, "sqlite", target)

    def repair(self) -> list[int]:
        """Forget interrupted migrations so they run again; return their versions."""
        with self.transaction():
            bad = [
                r[0]
                for r in self.fetchall("SELECT version FROM schema_version WHERE success = 0", ())
            ]
            self.execute("DELETE FROM schema_version WHERE success = 0", ())
        return bad

    def _run_plan(
        self,
        planner: Callable[[dict[int, Applied]], list[Step]],
        on_statement: Callable[[str], None] | None,
    ) -> list[int]:
        """One step per transaction. ``BEGIN IMMEDIATE`` holds the write lock while the
        versions are read, so processes migrating together apply each step once."""
        self._raw(SCHEMA_VERSION_SQLITE)
        done: list[int] = []
        while True:
            with self.transaction():
                steps = planner(self.applied())
                if not steps:
                    return done
                step = steps[0]
                if not step.sqlite_rebuild:
                    self._run_step(step, on_statement)
                    done.append(step.migration.version)
                    continue
            # A rebuild needs foreign keys off, which SQLite only allows outside a
            # transaction (pragma.html#pragma_foreign_keys); plan again under the lock.
            self._raw("PRAGMA foreign_keys = OFF")
            try:
                with self.transaction():
                    steps = planner(self.applied())
                    if steps and steps[0] == step:
                        self._run_step(step, on_statement)
                        done.append(step.migration.version)
            finally:
                self._raw("PRAGMA foreign_keys = ON")

    def _run_step(self, step: Step, on_statement: Callable[[str], None] | None) -> None:
        m = step.migration
        started = time.perf_counter()
        for statement in step.statements:
            if on_statement is not None:
                on_statement(statement)
            try:
                self._conn.execute(statement)
            except sqlite3.Error as exc:
                raise errors.MigrationError(
                    f"cannot apply {step.direction} {m.label} on sqlite: {exc}"
                ) from exc
        if step.sqlite_rebuild:
            broken = self._conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise errors.MigrationError(
                    f"cannot apply {step.direction} {m.label} on sqlite: the rebuild leaves "
                    f"{len(broken)} foreign key violation(s), first in table {broken[0][0]}"
                )
        if step.direction == "up":
            self.execute(
                "INSERT INTO schema_version (version, name, checksum, execution_ms) "
                "VALUES (?, ?, ?, ?)",
                (m.version, m.name, m.checksum, (time.perf_counter() - started) * 1000),
            )
        else:
            self.execute("DELETE FROM schema_version WHERE version = ?", (m.version,))

    def schema_version(self) -> int | None:
        try:
            row = self._conn.execute(
                "SELECT max(version) FROM schema_version WHERE success"
            ).fetchone()
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row and row[0] is not None else None

    def backup(self, directory: Path) -> Path:
        """Copy the database with SQLite's online backup API (backup.html) into
        ``directory``; safe while other connections write."""
        directory.mkdir(parents=True, exist_ok=True)
        target_path = directory / Path(self.path).name
        target = sqlite3.connect(target_path)
        try:
            self._conn.backup(target)
        except sqlite3.Error as exc:
            raise errors.from_sqlite(exc) from exc
        finally:
            target.close()
        return target_path

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()

    def __repr__(self) -> str:
        return f"SqliteConnection({self.path!r})"


class AsyncSqliteDatabase:
    """Async access to SQLite: a writer connection owned by one worker thread, and a
    reader connection used on the event loop's own thread.

    A repository call that may write, may take long (a ``:many`` list) or runs inside a
    transaction makes one hop to the writer thread, where execute, fetch and row mapping
    all run. A single-row read outside a transaction runs inline on the reader: in WAL
    mode readers never wait for writers (sqlite.org/wal.html §2.2), and the reader's
    busy timeout is 0, so a rare SQLITE_BUSY (checkpoint, recovery) falls back to the
    hop instead of stalling the loop. A transaction holds an asyncio lock, so other
    tasks' writes wait instead of landing inside it.
    """

    __slots__ = ("_closed", "_executor", "_in_tx", "_lock", "connection", "reader")

    def __init__(
        self,
        connection: SqliteConnection,
        executor: ThreadPoolExecutor,
        reader: SqliteConnection | None = None,
    ) -> None:
        self.connection = connection
        self.reader = reader
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
        reader = None
        if str(path) != ":memory:":  # an in-memory database is private to one connection
            reader = SqliteConnection(path, timeout=timeout, read_only=True)
        return cls(connection, executor, reader)

    def inline_ok(self) -> bool:
        """Whether a single-row read may run inline on the reader now."""
        return not self._in_tx.get() and not self._closed

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

    async def applied(self) -> dict[int, Applied]:
        return await self.run(self.connection.applied)

    async def migrate(
        self,
        migrations: Sequence[Migration],
        *,
        target: int | None = None,
        on_statement: Callable[[str], None] | None = None,
    ) -> list[int]:
        return await self.run(
            self.connection.migrate, migrations, target=target, on_statement=on_statement
        )

    async def migrate_down(
        self,
        migrations: Sequence[Migration],
        *,
        target: int,
        on_statement: Callable[[str], None] | None = None,
    ) -> list[int]:
        return await self.run(
            self.connection.migrate_down, migrations, target=target, on_statement=on_statement
        )

    async def plan(
        self, migrations: Sequence[Migration], *, target: int | None = None, down: bool = False
    ) -> list[Step]:
        return await self.run(self.connection.plan, migrations, target=target, down=down)

    async def repair(self) -> list[int]:
        return await self.run(self.connection.repair)

    async def backup(self, directory: Path) -> Path | None:
        return await self.run(self.connection.backup, directory)

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
