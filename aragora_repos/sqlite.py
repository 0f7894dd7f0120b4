"""SQLite backend: a synchronous connection, and an async wrapper with one thread hop per call.

Connections run in autocommit mode (``isolation_level=None``) and open transactions
explicitly: writers use ``BEGIN IMMEDIATE`` so a read-then-write never fails at once
with SQLITE_BUSY_SNAPSHOT, whatever the busy timeout (sqlite.org/lang_transaction.html).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import sqlite3
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

from aragora_repos import errors
from aragora_repos.backup import backup_sqlite, new_backup_folder
from aragora_repos.files import ensure_private_file, private_dir
from aragora_repos.migrations import (
    SCHEMA_VERSION_SQLITE,
    Applied,
    Migration,
    Step,
    applied_row,
    plan_down,
    plan_up,
)
from aragora_repos.observability import (
    BackendCapabilities,
    BackendType,
    DatabaseHealth,
    HealthStatus,
    PoolStats,
    log_slow,
)
from aragora_repos.transaction import (
    Rollback,
    Transaction,
    TransactionConfig,
    TransactionStats,
    TxOptions,
    backoff,
    run_in_transaction,
    savepoint_name,
)
from aragora_repos.transaction_options import Isolation

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


def read_only_uri(path: str | Path) -> str:
    """The ``file:`` URI that opens ``path`` read-only: nothing is created or changed."""
    return "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"


def connect_read_only(path: str | Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A plain read-only :mod:`sqlite3` connection to ``path`` (see :func:`open_read_only`
    for a foreign file, which is checked first)."""
    return sqlite3.connect(read_only_uri(path), uri=True, check_same_thread=check_same_thread)


def open_read_only(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open someone else's SQLite file to read it (``mode=ro``: nothing is created or
    changed), after checking that it is a database whose schema text is valid UTF-8, so
    a bad file or name is a clear error naming the file, not a traceback later.

    Raises:
        FileError: no file there, not a database, or a schema entry that is not UTF-8
            (named with its bytes escaped).
    """
    if not path.is_file():
        raise errors.FileError(f"cannot open {path}: no SQLite database there")
    db = connect_read_only(path, check_same_thread=check_same_thread)
    try:
        rows = db.execute(
            "SELECT CAST(type AS BLOB), CAST(name AS BLOB), CAST(sql AS BLOB) FROM sqlite_schema"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise errors.FileError(f"cannot open sqlite database {path}: {exc}") from None
    for kind, name, sql in rows:
        for raw in (name, sql):
            try:
                (raw or b"").decode("utf-8")
            except UnicodeDecodeError:
                db.close()
                shown = bytes(name or b"").decode("utf-8", "backslashreplace")
                raise errors.FileError(
                    f"cannot read {path}: the {kind.decode(errors='replace')} '{shown}' has a "
                    "name or definition that is not valid UTF-8; rename it first"
                ) from None
    return db


def _open_error(path: str, exc: sqlite3.Error) -> errors.DatabaseError:
    """The mapped error, its message naming the file."""
    mapped = errors.from_sqlite(exc)
    return type(mapped)(f"cannot open sqlite database {path}: {exc}", sqlstate=mapped.sqlstate)


class SqliteConnection:
    """One SQLite connection: queries, explicit transactions with savepoints, migrations."""

    __slots__ = ("_closed", "_conn", "_depth", "path", "queries", "slow_ms", "timeout")

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 5.0,
        check_same_thread: bool = True,
        read_only: bool = False,
        slow_query_ms: float | None = 1000.0,
        inspect: bool = False,
    ) -> None:
        """Open (and create, 0600 in 0700 folders) the database at ``path``.

        ``read_only``: the inline reader beside a writer (``query_only``, no busy wait).
        ``inspect``: for commands that only look (status, health, check): the file is
        opened with ``mode=ro``, nothing is created and the journal mode is left as it
        is, so the file stays byte-identical.
        """
        self.path = str(path)
        self.timeout = timeout
        self.queries = 0
        self.slow_ms = slow_query_ms
        memory = self.path == ":memory:"
        target: str | Path = self.path
        if inspect and not memory:
            if not os.path.isfile(self.path):
                raise errors.FileError(f"cannot open {self.path}: no database there")
            target = read_only_uri(self.path)
        elif not memory and not read_only:
            private_dir(Path(self.path).parent)
            ensure_private_file(Path(self.path))
        try:
            self._conn = sqlite3.connect(
                target,
                timeout=timeout,
                isolation_level=None,
                check_same_thread=check_same_thread,
                uri=inspect and not memory,
            )
            if not memory and not read_only and not inspect:
                # WAL lets readers run beside one writer; NORMAL is durable across
                # application crashes in WAL mode (sqlite.org/pragma.html#pragma_synchronous).
                _enable_wal(self._conn, timeout)
                self._conn.execute("PRAGMA synchronous = NORMAL")
            for pragma in PRAGMAS:
                self._conn.execute(pragma)
            if read_only or inspect:
                # Never writes, and fails at once instead of sleeping in the busy handler
                # on the event loop's thread.
                self._conn.execute("PRAGMA query_only = ON")
            if read_only:
                self._conn.execute("PRAGMA busy_timeout = 0")
            # Reading the schema proves the file is a database (not "file is not a
            # database" at the first query, far from the path).
            self._conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        except sqlite3.Error as exc:
            if hasattr(self, "_conn"):
                self._conn.close()
            raise _open_error(self.path, exc) from exc
        self._depth = 0
        self._closed = False

    # --- statements (called by generated repositories) ---------------------------------

    def fetchone(self, sql: str, args: Sequence[Any]) -> Row | None:
        self.queries += 1
        started = time.perf_counter()
        try:
            row: Row | None = self._conn.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise errors.from_sqlite(exc) from exc
        finally:
            self._timed(sql, started)
        return row

    def fetchall(self, sql: str, args: Sequence[Any]) -> list[Row]:
        self.queries += 1
        started = time.perf_counter()
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise errors.from_sqlite(exc) from exc
        finally:
            self._timed(sql, started)

    def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement; return the number of rows it changed."""
        self.queries += 1
        started = time.perf_counter()
        try:
            return self._conn.execute(sql, args).rowcount
        except sqlite3.Error as exc:
            raise errors.from_sqlite(exc) from exc
        finally:
            self._timed(sql, started)

    def _timed(self, sql: str, started: float) -> None:
        if self.slow_ms is not None:
            elapsed = (time.perf_counter() - started) * 1000
            if elapsed > self.slow_ms:
                log_slow(sql, elapsed, "sqlite")

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

    @property
    def server_in_transaction(self) -> bool:
        """What SQLite itself says (sqlite3_get_autocommit), not our bookkeeping."""
        return self._conn.in_transaction

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

    def rollback_all(self) -> None:
        """Roll the whole transaction back, whatever savepoints are open."""
        self._depth = 0
        if self._conn.in_transaction:
            self._raw("ROLLBACK")

    def savepoint(self, name: str) -> None:
        if self._depth == 0:
            raise errors.InterfaceError(f"cannot create savepoint {name}: no transaction is open")
        self._raw(f'SAVEPOINT "{name}"')
        self._depth += 1

    def release(self, name: str) -> None:
        self._raw(f'RELEASE SAVEPOINT "{name}"')
        self._depth -= 1

    def rollback_to(self, name: str) -> None:
        self._raw(f'ROLLBACK TO SAVEPOINT "{name}"')

    @contextlib.contextmanager
    def transaction(
        self, *, isolation: Isolation | None = None, readonly: bool = False
    ) -> Iterator[None]:
        """``with conn.transaction():`` commits on success, rolls back on any exception;
        nested, a savepoint. :class:`Rollback` rolls the block back and is swallowed."""
        _check_isolation(isolation)
        self.begin(readonly=readonly)
        try:
            yield
        except Rollback:
            self.rollback()
            return
        except BaseException:
            self.rollback()
            raise
        self.commit()

    @contextlib.contextmanager
    def savepoint_block(self, name: str) -> Iterator[None]:
        """``with conn.savepoint_block("name"):`` a named savepoint in the open transaction."""
        name = savepoint_name(name)
        self.savepoint(name)
        try:
            yield
        except Rollback:
            self.rollback_to(name)
            self.release(name)
            return
        except BaseException:
            self.rollback_to(name)
            self.release(name)
            raise
        self.release(name)

    def run_in_transaction(
        self,
        fn: Callable[[], T],
        *,
        retries: int = 5,
        base_delay: float = 0.01,
        max_delay: float = 1.0,
        rng: random.Random | None = None,
    ) -> T:
        """Run ``fn`` in a transaction, re-running all of it when SQLite stayed busy past
        the timeout; nested, it runs once in a savepoint. Raises RetriesExhausted."""
        if self._depth:
            with self.transaction():
                return fn()
        draw = rng or random.Random()
        for attempt in range(retries + 1):
            try:
                with self.transaction():
                    result = fn()
                return result
            except errors.DatabaseBusy as exc:
                if attempt == retries:
                    raise errors.RetriesExhausted(
                        f"cannot commit the transaction: {attempt + 1} attempt(s) failed, "
                        "the last with DatabaseBusy",
                        attempts=attempt + 1,
                        sqlstate=exc.sqlstate,
                    ) from exc
                time.sleep(backoff(attempt, base_delay, max_delay, draw))
        raise AssertionError("unreachable")  # pragma: no cover

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
        return {a.version: a for a in map(applied_row, rows)}

    def migrate(
        self,
        migrations: Sequence[Migration],
        *,
        target: int | None = None,
        on_statement: Callable[[str], None] | None = None,
        backup_to: Path | None = None,
        on_backup: Callable[[Path | None], None] | None = None,
    ) -> list[int]:
        """Apply pending migrations (up to ``target``); return the versions applied.

        With ``backup_to``, the process that is about to apply the first step backs the
        database up into a new folder there first, under the write lock and after reading
        the pending list under it, and ``on_backup`` is told where.
        """
        return self._run_plan(
            lambda done: plan_up(migrations, done, "sqlite", target),
            on_statement,
            backup_to,
            on_backup,
        )

    def migrate_down(
        self,
        migrations: Sequence[Migration],
        *,
        target: int,
        on_statement: Callable[[str], None] | None = None,
        backup_to: Path | None = None,
        on_backup: Callable[[Path | None], None] | None = None,
    ) -> list[int]:
        """Run down sections until the version is ``target``; return the versions undone."""
        return self._run_plan(
            lambda done: plan_down(migrations, done, "sqlite", target),
            on_statement,
            backup_to,
            on_backup,
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
        backup_to: Path | None = None,
        on_backup: Callable[[Path | None], None] | None = None,
    ) -> list[int]:
        """One step per transaction. ``BEGIN IMMEDIATE`` holds the write lock while the
        versions are read, so processes migrating together apply each step once. The
        ``schema_version`` table is created in the first step's transaction, so a failed
        first migration leaves the file as it was."""
        done: list[int] = []
        backed_up = backup_to is None

        def run(step: Step) -> None:
            nonlocal backed_up
            if not backed_up:
                where = self.backup(backup_to) if backup_to is not None else None
                backed_up = True
                if on_backup is not None:
                    on_backup(where)
            self._conn.execute(SCHEMA_VERSION_SQLITE)
            self._run_step(step, on_statement)
            done.append(step.migration.version)

        while True:
            with self.transaction():
                steps = planner(self.applied())
                if not steps:
                    return done
                step = steps[0]
                if not step.sqlite_rebuild:
                    run(step)
                    continue
            # A rebuild needs foreign keys off, which SQLite only allows outside a
            # transaction (pragma.html#pragma_foreign_keys); plan again under the lock.
            self._raw("PRAGMA foreign_keys = OFF")
            try:
                with self.transaction():
                    steps = planner(self.applied())
                    if steps and steps[0] == step:
                        run(step)
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

    def backup(self, root: Path) -> Path:
        """Copy the database with SQLite's online backup API (backup.html) into a new
        folder under ``root``, verified before it gets its final name (see
        :mod:`aragora_repos.backup`); safe while other connections write.

        The copy is read through a connection of its own: the backup API refuses a source
        connection that holds the write lock (as this one does while migrating), and a
        second reader sees exactly the last commit, which no one else can move while the
        lock is held.
        """
        if self.path == ":memory:":
            raise errors.BackupError("cannot back up an in-memory database")
        source = connect_read_only(self.path)
        try:
            with new_backup_folder(root) as folder:
                return backup_sqlite(source, folder, Path(self.path).name).path
        finally:
            source.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()

    def __repr__(self) -> str:
        return f"SqliteConnection({self.path!r})"


class _SqliteTx:
    """The transaction driver: the asyncio write lock plus BEGIN on the writer thread."""

    __slots__ = ("db", "locked")

    def __init__(self, db: AsyncSqliteDatabase) -> None:
        self.db = db
        self.locked = False

    async def begin(self, options: TxOptions) -> None:
        _check_isolation(options.isolation)
        db = self.db
        if db._closed:
            raise errors.PoolClosed("cannot use the database: it is closed")
        await db.acquire_writer("begin a transaction")
        self.locked = True
        try:
            await db._hop(functools.partial(db.connection.begin, readonly=options.readonly))
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
        await self._finish(self.db.connection.commit)

    async def rollback(self) -> None:
        await self._finish(self.db.connection.rollback_all)

    async def abandon(self) -> None:
        await self._finish(self.db.connection.rollback_all)

    async def savepoint(self, name: str) -> None:
        await self.db._hop(functools.partial(self.db.connection.savepoint, name))

    async def release(self, name: str) -> None:
        await self.db._hop(functools.partial(self.db.connection.release, name))

    async def rollback_to(self, name: str) -> None:
        await self.db._hop(functools.partial(self.db.connection.rollback_to, name))

    def is_open(self) -> bool:
        return self.db.connection.server_in_transaction

    async def close(self) -> None:
        if self.locked:
            self.locked = False
            self.db._lock.release()


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

    Transactions: writes use ``BEGIN IMMEDIATE``; SQLite has one isolation level
    (SERIALIZABLE, sqlite.org/isolation.html) and any other request raises.
    """

    __slots__ = (
        "_closed",
        "_executor",
        "_lock",
        "_lock_timeouts",
        "_tx",
        "_tx_config",
        "_tx_stats",
        "_waits",
        "connection",
        "reader",
        "rng",
    )

    def __init__(
        self,
        connection: SqliteConnection,
        executor: ThreadPoolExecutor,
        reader: SqliteConnection | None = None,
        transaction_config: TransactionConfig | None = None,
    ) -> None:
        self.connection = connection
        self.reader = reader
        self._executor = executor
        self._lock = asyncio.Lock()
        self._tx: ContextVar[Transaction | None] = ContextVar(
            f"aragora_sqlite_tx_{id(self)}", default=None
        )
        self._tx_config = transaction_config or TransactionConfig()
        self._tx_stats = TransactionStats()
        self._waits = 0
        self._lock_timeouts = 0
        self._closed = False
        self.rng = random.Random()

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        timeout: float = 5.0,
        slow_query_ms: float | None = 1000.0,
        transaction_config: TransactionConfig | None = None,
        inspect: bool = False,
    ) -> AsyncSqliteDatabase:
        """Open the database; ``inspect`` opens an existing file read-only and changes
        nothing (see :class:`SqliteConnection`)."""
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
                ),
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        reader = None
        if str(path) != ":memory:" and not inspect:  # in-memory: private to one connection
            reader = SqliteConnection(
                path, timeout=timeout, read_only=True, slow_query_ms=slow_query_ms
            )
        return cls(connection, executor, reader, transaction_config)

    def inline_ok(self) -> bool:
        """Whether a single-row read may run inline on the reader now."""
        return self._tx.get() is None and not self._closed

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

    # --- transactions ------------------------------------------------------------------

    def transaction(
        self,
        *,
        isolation: Isolation | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        timeout: float | None = None,
    ) -> Transaction:
        """``async with db.transaction():``; nested blocks become savepoints.

        ``deferrable`` is accepted: a read-only SQLite transaction never fails on a
        conflict, which is what DEFERRABLE buys on PostgreSQL.
        """
        _check_isolation(isolation)
        nested = self._tx.get() is not None
        return Transaction(
            self._tx,
            lambda: _SqliteTx(self),
            self._tx_stats,
            TxOptions(
                isolation,
                readonly,
                deferrable,
                timeout if (timeout is not None or nested) else self._tx_config.timeout,
            ),
        )

    def savepoint(self, name: str) -> Transaction:
        """``async with db.savepoint("before_import"):`` inside a transaction."""
        return Transaction(
            self._tx, lambda: _SqliteTx(self), self._tx_stats, TxOptions(), savepoint=name
        )

    async def run_in_transaction(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        retries: int | None = None,
        base_delay: float | None = None,
        max_delay: float | None = None,
        isolation: Isolation | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        timeout: float | None = None,
    ) -> T:
        """As :meth:`PostgresDatabase.run_in_transaction`; on SQLite the retryable error
        is DatabaseBusy (the write lock stayed taken past ``DB_TIMEOUT``)."""
        return await run_in_transaction(
            fn,
            outermost=None
            if self._tx.get() is not None
            else lambda: self.transaction(
                isolation=isolation, readonly=readonly, deferrable=deferrable, timeout=timeout
            ),
            nested=self.transaction,
            config=self._tx_config,
            stats=self._tx_stats,
            rng=self.rng,
            retries=retries,
            base_delay=base_delay,
            max_delay=max_delay,
        )

    @property
    def transaction_stats(self) -> TransactionStats:
        return self._tx_stats.snapshot()

    # --- capabilities and what SQLite does not have ------------------------------------

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

    @contextlib.contextmanager
    def use_primary(self) -> Iterator[None]:
        """No replicas on SQLite: every read already sees every write."""
        yield

    use_replica = use_primary

    def advisory_lock(self, key: int, *, timeout: float | None = None) -> NoReturn:
        raise errors.NotSupportedError(
            "cannot take an advisory lock: sqlite has none (check "
            "db.capabilities.advisory_locks); a write transaction already excludes "
            "every other writer"
        )

    def listen(self, channel: str) -> NoReturn:
        raise errors.NotSupportedError(
            "cannot LISTEN: sqlite has no notifications (check db.capabilities.listen_notify)"
        )

    async def notify(self, channel: str, payload: str = "") -> NoReturn:
        raise errors.NotSupportedError(
            "cannot NOTIFY: sqlite has no notifications (check db.capabilities.listen_notify)"
        )

    # --- health ------------------------------------------------------------------------

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

    def get_health_status(self) -> HealthStatus:
        return HealthStatus(
            healthy=not self._closed,
            backend=BackendType.SQLITE,
            pool=self.pool_stats(),
            transactions=self.transaction_stats,
        )

    async def get_database_health(self, *, timeout: float = 5.0) -> DatabaseHealth:
        """Probe the file: reachable, latency, schema version and table count."""
        started = time.perf_counter()

        def probe() -> tuple[int, int | None]:
            row = self.connection.fetchone(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND name <> 'schema_version' "
                "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' "
                "AND name NOT IN (SELECT name || suffix FROM sqlite_schema, "
                "(SELECT '_data' AS suffix UNION ALL SELECT '_idx' UNION ALL "
                "SELECT '_docsize' UNION ALL SELECT '_config' UNION ALL SELECT '_content') "
                "WHERE sql LIKE 'CREATE VIRTUAL TABLE%')",
                (),
            )
            assert row is not None
            return int(row[0]), self.connection.schema_version()

        try:
            async with asyncio.timeout(timeout):
                tables, version = await self.run(probe)
        except (TimeoutError, errors.DatabaseError) as exc:
            return DatabaseHealth(
                backend=BackendType.SQLITE,
                reachable=False,
                latency_ms=None,
                schema_version=None,
                table_count=None,
                pool=self.pool_stats(),
                error=f"{type(exc).__name__}: {exc}",
                transactions=self.transaction_stats,
            )
        return DatabaseHealth(
            backend=BackendType.SQLITE,
            reachable=True,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            schema_version=version,
            table_count=tables,
            pool=self.pool_stats(),
            transactions=self.transaction_stats,
        )

    # --- migrations and housekeeping ---------------------------------------------------

    async def applied(self) -> dict[int, Applied]:
        return await self.run(self.connection.applied)

    async def migrate(
        self,
        migrations: Sequence[Migration],
        *,
        target: int | None = None,
        on_statement: Callable[[str], None] | None = None,
        backup_to: Path | None = None,
        on_backup: Callable[[Path | None], None] | None = None,
    ) -> list[int]:
        return await self.run(
            self.connection.migrate,
            migrations,
            target=target,
            on_statement=on_statement,
            backup_to=backup_to,
            on_backup=on_backup,
        )

    async def migrate_down(
        self,
        migrations: Sequence[Migration],
        *,
        target: int,
        on_statement: Callable[[str], None] | None = None,
        backup_to: Path | None = None,
        on_backup: Callable[[Path | None], None] | None = None,
    ) -> list[int]:
        return await self.run(
            self.connection.migrate_down,
            migrations,
            target=target,
            on_statement=on_statement,
            backup_to=backup_to,
            on_backup=on_backup,
        )

    async def plan(
        self, migrations: Sequence[Migration], *, target: int | None = None, down: bool = False
    ) -> list[Step]:
        return await self.run(self.connection.plan, migrations, target=target, down=down)

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
