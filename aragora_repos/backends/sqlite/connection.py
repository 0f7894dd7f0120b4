"""SQLite's synchronous connection: statements, transactions with savepoints, migrations.

Connections run in autocommit mode (``isolation_level=None``) and open transactions
explicitly: writers use ``BEGIN IMMEDIATE`` so a read-then-write never fails at once
with SQLITE_BUSY_SNAPSHOT, whatever the busy timeout (sqlite.org/lang_transaction.html).
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import random
import sqlite3
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar

from aragora_repos import errors
from aragora_repos.backends.sqlite.functions import Clock, install
from aragora_repos.backends.sqlite.opener import PLAIN, Opener
from aragora_repos.backup import backup_sqlite, new_backup_folder
from aragora_repos.errors import SQLITE_ERROR, SQLITE_OPERATIONAL_ERROR
from aragora_repos.files import ensure_private_file, private_dir
from aragora_repos.keyring import NO_KEYS, KeyRing
from aragora_repos.migrations import (
    CRYPT_PAGE,
    SCHEMA_VERSION_SQLITE,
    Applied,
    Crypt,
    Migration,
    Step,
    applied_row,
    plan_down,
    plan_up,
)
from aragora_repos.observability import log_slow
from aragora_repos.retry import Retry, run_in_transaction_sync
from aragora_repos.transaction import Isolation, Slot, SyncTransaction, TransactionStats, TxOptions

_FIRST = operator.itemgetter(0)

T = TypeVar("T")
Row = tuple[Any, ...]

#: Connection settings the generated SQL relies on (codegen.dialects.verify uses the same).
PRAGMAS = ("PRAGMA foreign_keys = ON", "PRAGMA case_sensitive_like = ON")


#: What a migration step can fail with: SQL, or sealing and opening encrypted columns.
_STEP_ERRORS: tuple[type[Exception], ...] = (*SQLITE_ERROR, errors.ColumnEncryptionError)


def check_isolation(isolation: Isolation | None) -> None:
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
        except SQLITE_OPERATIONAL_ERROR as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


class SqliteConnection:
    """One SQLite connection: queries, explicit transactions with savepoints, migrations."""

    __slots__ = (
        "_budget",
        "_clock",
        "_closed",
        "_conn",
        "_driver",
        "_slot",
        "_transactions",
        "_tx_stats",
        "keys",
        "opener",
        "path",
        "queries",
        "slow_ms",
        "started",
        "timeout",
    )

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 5.0,
        check_same_thread: bool = True,
        read_only: bool = False,
        slow_query_ms: float | None = 1000.0,
        inspect: bool = False,
        opener: Opener = PLAIN,
        budget_ms: float | None = None,
        keys: KeyRing = NO_KEYS,
    ) -> None:
        """Open (and create, 0600 in 0700 folders) the database at ``path``.

        ``read_only``: the inline reader beside a writer (``query_only``, no busy wait).
        ``inspect``: for commands that only look (status, health, check): the file is
        opened with ``mode=ro``, nothing is created and the journal mode is left as it
        is, so the file stays byte-identical.
        ``opener``: the DB-API module and key (SQLCipher for an encrypted file).
        ``budget_ms``: a statement running longer is interrupted and raises
        :class:`~aragora_repos.errors.InlineBudgetExceeded` (the inline reader's bound:
        it runs on the event loop's thread, so it must never stall it).
        ``keys``: the column keys (:class:`~aragora_repos.keyring.KeyRing`).
        """
        self.path = str(path)
        self.timeout = timeout
        self.queries = 0
        self.slow_ms = slow_query_ms
        self.opener = opener
        self.keys = keys
        """The column keys the generated repositories seal and open encrypted columns with."""
        self.started = 0.0
        self._budget = None if budget_ms is None else budget_ms / 1000
        memory = self.path == ":memory:"
        if not memory and not read_only and not inspect:
            private_dir(Path(self.path).parent)
            ensure_private_file(Path(self.path))
        self._conn = opener.connect(
            self.path,
            read_only=inspect and not memory,
            timeout=timeout,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
        try:
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
            if self._budget is not None:
                # Called every 1,000 virtual-machine steps (tens of microseconds): a
                # statement past its budget is interrupted (SQLITE_INTERRUPT).
                self._conn.set_progress_handler(self._over_budget, 1000)
            # now() as PostgreSQL has it: microseconds, one value per transaction.
            self._transactions = 0
            self._clock = Clock(self._clock_key)
            install(self._conn, self._clock)
        except SQLITE_ERROR as exc:
            self._conn.close()
            raise opener.open_error(self.path, exc) from exc
        self._slot: Slot[SyncTransaction] = Slot()
        self._driver = SqliteDriver(self)  # holds nothing but the connection: one is enough
        self._tx_stats = TransactionStats()
        self._closed = False

    def _clock_key(self) -> tuple[int, int]:
        """What one value of now() lasts for: the transaction, else the statement (read
        only when a statement calls now(), never on the statement path itself)."""
        if self._conn.in_transaction:
            return (self._transactions, -1)
        return (-1, self.queries)

    def _over_budget(self) -> int:
        assert self._budget is not None
        return int(time.perf_counter() - self.started > self._budget)

    def _failed(self, exc: Exception) -> errors.DatabaseError:
        if self._budget is not None and "interrupted" in str(exc):
            return errors.InlineBudgetExceeded(
                f"the statement ran past the inline read budget ({self._budget * 1000:g} ms)"
            )
        return errors.from_sqlite(exc)  # type: ignore[arg-type]

    # --- statements (called by generated repositories) ---------------------------------

    def fetchone(self, sql: str, args: Sequence[Any]) -> Row | None:
        # The single-row read is the hot path: the slow-query check is inline rather than
        # a call in a ``finally`` (0.3 us of a 5 us read).
        self.queries += 1
        started = self.started = perf_counter()
        try:
            row: Row | None = self._conn.execute(sql, args).fetchone()
        except SQLITE_ERROR as exc:
            self._timed(sql, started)
            raise self._failed(exc) from exc
        except UnicodeEncodeError as exc:
            raise _unencodable(exc) from None
        slow = self.slow_ms
        if slow is not None and (elapsed := (perf_counter() - started) * 1000) > slow:
            log_slow(sql, elapsed, "sqlite")
        return row

    def fetchall(self, sql: str, args: Sequence[Any]) -> list[Row]:
        self.queries += 1
        started = self.started = time.perf_counter()
        try:
            return self._conn.execute(sql, args).fetchall()
        except SQLITE_ERROR as exc:
            raise self._failed(exc) from exc
        except UnicodeEncodeError as exc:
            raise _unencodable(exc) from None
        finally:
            self._timed(sql, started)

    def iterate(self, sql: str, args: Sequence[Any], size: int = 500) -> Generator[Row, None, None]:
        """The rows of a statement as they come, read ``size`` at a time."""
        self.queries += 1
        try:
            cursor = self._conn.execute(sql, args)
        except SQLITE_ERROR as exc:
            raise errors.from_sqlite(exc) from exc
        except UnicodeEncodeError as exc:
            raise _unencodable(exc) from None
        try:
            while True:
                try:
                    rows = cursor.fetchmany(size)
                except SQLITE_ERROR as exc:
                    raise errors.from_sqlite(exc) from exc
                if not rows:
                    return
                yield from rows
        finally:
            cursor.close()

    def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement; return the number of rows it changed."""
        self.queries += 1
        started = time.perf_counter()
        try:
            return self._conn.execute(sql, args).rowcount
        except SQLITE_ERROR as exc:
            raise errors.from_sqlite(exc) from exc
        except UnicodeEncodeError as exc:
            raise _unencodable(exc) from None
        finally:
            self._timed(sql, started)

    def _convert_column(self, crypt: Crypt) -> None:
        """Seal or open every stored value of the column, a page at a time."""
        update = crypt.update_sql("sqlite")
        after: tuple[Any, ...] = ()
        while True:
            rows = self._conn.execute(
                crypt.page_sql("sqlite", bool(after)), (CRYPT_PAGE, *after)
            ).fetchall()
            if rows:
                self._conn.executemany(update, crypt.convert(self.keys, rows))
            if len(rows) < CRYPT_PAGE:
                return
            after = crypt.last_key(rows)

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
        # Counted in C (zip with a counter, no Python frame per row): a generator that
        # counted cost about 0.15 us a row.
        counter = itertools.count()
        counted = map(_FIRST, zip(rows, counter, strict=False))  # counter is endless
        with self.transaction():
            try:
                self._conn.executemany(sql, counted)
            except SQLITE_ERROR as exc:
                raise errors.from_sqlite(exc) from exc
            except UnicodeEncodeError as exc:
                raise _unencodable(exc) from None
        return next(counter)

    # --- transactions ------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """What SQLite itself says (sqlite3_get_autocommit), whichever API opened it."""
        return self._conn.in_transaction

    def transaction(
        self, *, isolation: Isolation | None = None, readonly: bool = False
    ) -> SyncTransaction:
        """``with conn.transaction():`` commits on success, rolls back on any exception;
        nested, a savepoint. :class:`Rollback` rolls the block back and is swallowed.
        The rules and counters are those of the async API (:mod:`aragora_repos.transaction`)."""
        check_isolation(isolation)
        return SyncTransaction(
            self._slot, self._new_driver, self._tx_stats, TxOptions(isolation, readonly)
        )

    def savepoint_block(self, name: str) -> SyncTransaction:
        """``with conn.savepoint_block("name"):`` a named savepoint in the open transaction."""
        return SyncTransaction(
            self._slot, self._new_driver, self._tx_stats, TxOptions(), savepoint=name
        )

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
        return run_in_transaction_sync(
            fn,
            outermost=None if self._slot.get() is not None else self.transaction,
            nested=self.transaction,
            retry=Retry(retries, base_delay, max_delay, self._tx_stats, rng or random.Random()),
        )

    @property
    def transaction_stats(self) -> TransactionStats:
        return self._tx_stats.snapshot()

    def _new_driver(self) -> SqliteDriver:
        self._check_open()
        return self._driver

    def adopt(self, driver: SqliteDriver, options: TxOptions) -> None:
        """Record a transaction the async API opened on this connection, so synchronous
        blocks run inside it (a batch, a migration step) become its savepoints."""
        self._slot.set(SyncTransaction.adopted(self._slot, driver, self._tx_stats, options))

    def disown(self) -> None:
        self._slot.set(None)

    def _raw(self, sql: str) -> None:
        try:
            self._conn.execute(sql)
        except SQLITE_ERROR as exc:
            raise errors.from_sqlite(exc) from exc
        except UnicodeEncodeError as exc:
            raise _unencodable(exc) from None

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
        return self.run_plan(
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
        return self.run_plan(
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

    def stamp(self, migrations: Sequence[Migration]) -> list[int]:
        """Record every migration as applied without running any, in one write
        transaction; refused when any is recorded (see :meth:`Backend.stamp`)."""
        with self.transaction():
            self._conn.execute(SCHEMA_VERSION_SQLITE)
            if self.fetchone("SELECT count(*) FROM schema_version", ()) != (0,):
                raise errors.MigrationError("cannot stamp: the database already records migrations")
            for m in migrations:
                self.execute(
                    "INSERT INTO schema_version (version, name, checksum, execution_ms) "
                    "VALUES (?, ?, ?, 0)",
                    (m.version, m.name, m.checksum),
                )
        return [m.version for m in migrations]

    def repair(self) -> list[int]:
        """Forget interrupted migrations so they run again; return their versions."""
        with self.transaction():
            bad = [
                r[0]
                for r in self.fetchall("SELECT version FROM schema_version WHERE success = 0", ())
            ]
            self.execute("DELETE FROM schema_version WHERE success = 0", ())
        return bad

    def run_plan(
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
                on_statement(statement.describe() if isinstance(statement, Crypt) else statement)
            try:
                if isinstance(statement, Crypt):
                    self._convert_column(statement)
                else:
                    self._conn.execute(statement)
            except _STEP_ERRORS as exc:
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
        except SQLITE_OPERATIONAL_ERROR:
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
        source = self.opener.connect(self.path, read_only=True)
        try:
            with new_backup_folder(root) as folder:
                return backup_sqlite(
                    source, folder, Path(self.path).name, self.opener.autocommit
                ).path
        finally:
            source.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()

    def __repr__(self) -> str:
        return f"SqliteConnection({self.path!r})"


def _unencodable(exc: UnicodeEncodeError) -> errors.DataError:
    """Text no UTF-8 holds (a lone surrogate): PostgreSQL's driver refuses the argument
    with a DataError; so does this one (not a bare UnicodeEncodeError)."""
    return errors.DataError(
        f"invalid input for query argument: text that is not UTF-8 ({exc.reason})",
        sqlstate="22000",
    )


class SqliteDriver:
    """The transaction driver on one connection: BEGIN, COMMIT and savepoints as SQL.

    A COMMIT that fails (a deferred constraint, a busy checkpoint) leaves SQLite's
    transaction open; it is rolled back here, so the connection never stays inside it.
    """

    __slots__ = ("conn",)

    def __init__(self, conn: SqliteConnection) -> None:
        self.conn = conn

    def begin(self, options: TxOptions) -> None:
        self.conn._transactions += 1  # now() is the time this transaction began
        # DEFERRED for read-only work: it never takes the write lock.
        self.conn._raw("BEGIN DEFERRED" if options.readonly else "BEGIN IMMEDIATE")

    def commit(self) -> None:
        try:
            self.conn._raw("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def rollback(self) -> None:
        if self.conn.in_transaction:
            with contextlib.suppress(errors.DatabaseError):
                self.conn._raw("ROLLBACK")

    abandon = rollback

    def savepoint(self, name: str) -> None:
        self.conn._raw(f'SAVEPOINT "{name}"')

    def release(self, name: str) -> None:
        self.conn._raw(f'RELEASE SAVEPOINT "{name}"')

    def rollback_to(self, name: str) -> None:
        self.conn._raw(f'ROLLBACK TO SAVEPOINT "{name}"')

    def is_open(self) -> bool:
        return self.conn.in_transaction

    def close(self) -> None:
        return None
