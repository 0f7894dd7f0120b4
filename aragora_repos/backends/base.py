"""The backend contract: what every async backend offers, and the half it shares.

A backend supplies its driver parts: statements (``fetchrow``, ``fetch``, ``execute``,
``executemany``, ``copy_records``), a transaction driver (:meth:`Backend._new_driver`),
its pool counters and health probe, how it runs a migration plan under its lock, its
backup and ``close``. This class owns the rest once: transactions, savepoints and
``run_in_transaction`` with retry (through :mod:`aragora_repos.transaction`), their
counters, the health report, and migrating up and down from a plan. Like
``psycopg_pool``'s base pool or sqlglot's ``Dialect``, the base is where behaviour
lives and the subclasses only say how.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from aragora_repos import errors
from aragora_repos.keyring import NO_KEYS, KeyRing
from aragora_repos.migrations import Applied, Dialect, Migration, Step, plan_down, plan_up
from aragora_repos.observability import (
    BackendCapabilities,
    BackendType,
    DatabaseHealth,
    HealthStatus,
    PoolStats,
    ReplicaStatus,
)
from aragora_repos.retry import retry_for, run_in_transaction
from aragora_repos.transaction import (
    Isolation,
    Transaction,
    TransactionConfig,
    TransactionStats,
    TxDriver,
    TxOptions,
)

T = TypeVar("T")

Planner = Callable[[dict[int, Applied]], list[Step]]


class Backend(abc.ABC):
    """One open database, PostgreSQL or SQLite, behind the generated repositories."""

    __slots__ = ("_closed", "_tx", "_tx_config", "_tx_stats", "keys", "rng")

    #: The health report's backend name.
    kind: ClassVar[BackendType]
    #: Which section of each migration runs here.
    dialect: ClassVar[Dialect]

    def __init__(self, transaction_config: TransactionConfig | None = None) -> None:
        self._tx: ContextVar[Transaction | None] = ContextVar(
            f"aragora_tx_{type(self).__name__}_{id(self)}", default=None
        )
        self._tx_config = transaction_config or TransactionConfig()
        self._tx_stats = TransactionStats()
        self._closed = False
        self.rng = random.Random()
        self.keys: KeyRing = NO_KEYS
        """The column keys the generated repositories seal and open encrypted columns with."""

    # --- statements (called by generated repositories) ---------------------------------

    @abc.abstractmethod
    async def fetchrow(self, sql: str, args: Sequence[Any], *, readonly: bool = False) -> Any:
        """One row or None; ``readonly`` lets a read outside a transaction go to a replica."""

    @abc.abstractmethod
    async def fetch(self, sql: str, args: Sequence[Any], *, readonly: bool = False) -> list[Any]:
        """Every row."""

    @abc.abstractmethod
    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement; return the number of rows it changed."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run a statement per row, atomically; return the number of rows."""

    # --- transactions ------------------------------------------------------------------

    @abc.abstractmethod
    def _new_driver(self) -> TxDriver:
        """The driver of one outermost transaction."""

    def _check_options(self, options: TxOptions) -> None:
        """Refuse what this backend cannot do (SQLite: any isolation but SERIALIZABLE)."""
        return None

    def in_transaction(self) -> bool:
        """Whether this context has a transaction open on this database."""
        return self._tx.get() is not None

    def transaction(
        self,
        *,
        isolation: Isolation | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        timeout: float | None = None,
    ) -> Transaction:
        """``async with db.transaction(...):``; nested blocks become savepoints.

        Args:
            isolation: READ COMMITTED, REPEATABLE READ or SERIALIZABLE (outermost only;
                default from the TransactionConfig, else the server's). SQLite has only
                SERIALIZABLE and refuses the others.
            readonly: a read-only transaction (SQLite: ``BEGIN DEFERRED``, no write lock).
            deferrable: with SERIALIZABLE READ ONLY, wait for a safe snapshot instead of
                risking a serialization failure (SQLite: accepted, a read-only SQLite
                transaction never fails on a conflict).
            timeout: seconds; past it the block is cancelled and rolled back
                (TransactionTimeout); PostgreSQL enforces the same bound per statement.
        """
        nested = self._tx.get() is not None
        config = self._tx_config
        options = TxOptions(
            isolation if (isolation is not None or nested) else config.isolation,
            readonly,
            deferrable,
            timeout if (timeout is not None or nested) else config.timeout,
        )
        self._check_options(options)
        return Transaction(self._tx, self._new_driver, self._tx_stats, options)

    def savepoint(self, name: str) -> Transaction:
        """``async with db.savepoint("before_import"):`` inside a transaction."""
        return Transaction(self._tx, self._new_driver, self._tx_stats, TxOptions(), savepoint=name)

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
        """Run ``fn`` in a transaction, re-running all of it after a serialization failure
        (40001), deadlock (40P01), stale statement cache, a connection lost before COMMIT,
        or (SQLite) a write lock that stayed taken past ``DB_TIMEOUT``. Only the outermost
        call retries: nested, ``fn`` runs once in a savepoint and errors propagate.
        ``Rollback`` raised by ``fn`` rolls back and propagates.

        Raises:
            RetriesExhausted: every attempt failed with a retryable error.
            CommitOutcomeUnknown: the connection died during COMMIT (never retried).
        """

        def outermost() -> Transaction:
            return self.transaction(
                isolation=isolation, readonly=readonly, deferrable=deferrable, timeout=timeout
            )

        return await run_in_transaction(
            fn,
            outermost=None if self._tx.get() is not None else outermost,
            nested=self.transaction,
            retry=retry_for(
                self._tx_config,
                self._tx_stats,
                self.rng,
                retries=retries,
                base_delay=base_delay,
                max_delay=max_delay,
            ),
        )

    @property
    def transaction_stats(self) -> TransactionStats:
        return self._tx_stats.snapshot()

    # --- capabilities, routing and what only some backends have ------------------------

    @property
    @abc.abstractmethod
    def capabilities(self) -> BackendCapabilities: ...

    def use_primary(self) -> contextlib.AbstractContextManager[None]:
        """Send this context's reads to the primary (a no-op without replicas)."""
        return contextlib.nullcontext()

    def use_replica(self) -> contextlib.AbstractContextManager[None]:
        """Send this context's reads to a replica, accepting lag (a no-op without any)."""
        return contextlib.nullcontext()

    def advisory_lock(
        self, key: int, *, timeout: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        raise errors.NotSupportedError(
            f"cannot take an advisory lock: {self.kind.value} has none (check "
            "db.capabilities.advisory_locks); a write transaction already excludes "
            "every other writer"
        )

    def listen(self, channel: str) -> contextlib.AbstractAsyncContextManager[Any]:
        raise errors.NotSupportedError(
            f"cannot LISTEN: {self.kind.value} has no notifications "
            "(check db.capabilities.listen_notify)"
        )

    async def notify(self, channel: str, payload: str = "") -> None:
        raise errors.NotSupportedError(
            f"cannot NOTIFY: {self.kind.value} has no notifications "
            "(check db.capabilities.listen_notify)"
        )

    async def allow_retention(self, cutoff: datetime) -> None:
        """Let the current transaction delete rows of append-only tables whose retention
        column is older than ``cutoff`` (see :mod:`codegen.analysis.append_only`); the
        permission ends with the transaction.

        Raises:
            TransactionError: no transaction is open (the permission would end at once).
        """
        if not self.in_transaction():
            raise errors.TransactionError(
                "cannot allow retention outside a transaction: the permission lasts for "
                "the transaction that sets it"
            )
        await self._allow_retention(cutoff)

    @abc.abstractmethod
    async def _allow_retention(self, cutoff: datetime) -> None: ...

    async def copy_records(
        self, table: str, columns: Sequence[str], records: Iterable[Sequence[Any]]
    ) -> int:
        raise errors.NotSupportedError(f"cannot COPY into {table} on {self.kind.value}")

    # --- health ------------------------------------------------------------------------

    @abc.abstractmethod
    def pool_stats(self) -> PoolStats: ...

    def replica_status(self) -> tuple[ReplicaStatus, ...]:
        return ()

    def _healthy(self) -> bool:
        return not self._closed

    @abc.abstractmethod
    async def _probe(self) -> tuple[int, int | None]:
        """One round trip: (tables, schema version or None)."""

    def get_health_status(self) -> HealthStatus:
        """The pool's own view (no round trip)."""
        return HealthStatus(
            healthy=self._healthy(),
            backend=self.kind,
            pool=self.pool_stats(),
            transactions=self.transaction_stats,
            replicas=self.replica_status(),
        )

    async def get_database_health(self, *, timeout: float = 5.0) -> DatabaseHealth:
        """Probe the database: reachable, latency, schema version and table count."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                tables, version = await self._probe()
        except (TimeoutError, errors.DatabaseError) as exc:
            return DatabaseHealth(
                backend=self.kind,
                reachable=False,
                latency_ms=None,
                schema_version=None,
                table_count=None,
                pool=self.pool_stats(),
                replicas=self.replica_status(),
                error=f"{type(exc).__name__}: {exc}",
                transactions=self.transaction_stats,
            )
        return DatabaseHealth(
            backend=self.kind,
            reachable=True,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            schema_version=version,
            table_count=tables,
            pool=self.pool_stats(),
            replicas=self.replica_status(),
            transactions=self.transaction_stats,
        )

    # --- migrations and housekeeping ---------------------------------------------------

    @abc.abstractmethod
    async def applied(self) -> dict[int, Applied]:
        """The ``schema_version`` rows; empty when the table does not exist yet."""

    @abc.abstractmethod
    async def _run_plan(
        self,
        planner: Planner,
        on_statement: Callable[[str], None] | None,
        backup_to: Path | None,
        on_backup: Callable[[Path | None], None] | None,
    ) -> list[int]:
        """Under the migration lock: plan from what is applied, back up into a new folder
        under ``backup_to`` when there are steps (telling ``on_backup`` where), run them."""

    async def migrate(
        self,
        migrations: Sequence[Migration],
        *,
        target: int | None = None,
        on_statement: Callable[[str], None] | None = None,
        backup_to: Path | None = None,
        on_backup: Callable[[Path | None], None] | None = None,
    ) -> list[int]:
        """Apply pending migrations (up to ``target``); return the versions applied.

        With ``backup_to``, the process that holds the migration lock and has pending
        steps backs the database up into a new folder there before any DDL, and
        ``on_backup`` is told where (None: PostgreSQL without pg_dump).
        """
        dialect = self.dialect

        def planner(done: dict[int, Applied]) -> list[Step]:
            return plan_up(migrations, done, dialect, target)

        return await self._run_plan(planner, on_statement, backup_to, on_backup)

    async def migrate_down(
        self,
        migrations: Sequence[Migration],
        *,
        target: int,
        on_statement: Callable[[str], None] | None = None,
        backup_to: Path | None = None,
        on_backup: Callable[[Path | None], None] | None = None,
    ) -> list[int]:
        """Run down sections until the version is ``target``; return the versions undone."""
        dialect = self.dialect

        def planner(done: dict[int, Applied]) -> list[Step]:
            return plan_down(migrations, done, dialect, target)

        return await self._run_plan(planner, on_statement, backup_to, on_backup)

    async def plan(
        self, migrations: Sequence[Migration], *, target: int | None = None, down: bool = False
    ) -> list[Step]:
        done = await self.applied()
        if down:
            return plan_down(migrations, done, self.dialect, -1 if target is None else target)
        return plan_up(migrations, done, self.dialect, target)

    @abc.abstractmethod
    async def stamp(self, migrations: Sequence[Migration]) -> list[int]:
        """Record every migration as applied without running any (a baseline for a
        database whose schema is already the latest); refused when any is recorded.
        Returns the versions recorded."""

    @abc.abstractmethod
    async def repair(self) -> list[int]:
        """Forget interrupted migrations so they run again; return their versions."""

    @abc.abstractmethod
    async def backup(self, root: Path) -> Path | None:
        """A verified backup in a new folder under ``root``."""

    @abc.abstractmethod
    async def schema_version(self) -> int | None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


__all__ = ["Backend", "Planner"]
