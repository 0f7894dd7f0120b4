"""What a generated package's ``Database`` and ``SyncDatabase`` do; the package only
declares its repositories, migrations and expected schema.

A generated facade subclasses :class:`Database` with one annotated attribute per query
file and a ``repositories`` table naming the class to build for each backend kind::

    class Database(facade.Database):
        users: UsersRepository
        repositories = {"users": {BackendType.POSTGRES: PostgresUsersRepository, ...}}
        migrations = MIGRATIONS
        expected = EXPECTED
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from aragora_repos.backends import Backend, open_async, open_sync
from aragora_repos.backends.postgres import Listener
from aragora_repos.backends.sqlite import SqliteConnection
from aragora_repos.config import Config
from aragora_repos.drift import ExpectedSchema, ValidationResult, check_at_startup, validate_schema
from aragora_repos.errors import ConfigError
from aragora_repos.migrations import Migration
from aragora_repos.observability import (
    BackendCapabilities,
    BackendType,
    DatabaseHealth,
    HealthStatus,
)
from aragora_repos.transaction import Isolation, SyncTransaction, Transaction, TransactionStats

if TYPE_CHECKING:
    from aragora_repos.tools.sync import SyncService

T = TypeVar("T")
D = TypeVar("D", bound="Database")
SD = TypeVar("SD", bound="SyncDatabase")

#: Per repository attribute, the class to build over each kind of backend.
RepositoryTable = Mapping[str, Mapping[BackendType, Callable[[Any], object]]]
#: Per repository attribute, the synchronous class to build over a SQLite connection.
SyncRepositoryTable = Mapping[str, Callable[[SqliteConnection], object]]


class Database:
    """All repositories over one async backend (asyncpg pool or SQLite)."""

    __slots__ = ("backend", "sync")

    repositories: ClassVar[RepositoryTable] = {}
    migrations: ClassVar[Sequence[Migration]] = ()
    expected: ClassVar[ExpectedSchema | None] = None

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.sync: SyncService | None = None
        """The background sync (``SUPABASE_SYNC_ENABLED``), started by :meth:`open`."""
        for attribute, by_kind in self.repositories.items():
            setattr(self, attribute, by_kind[backend.kind](backend))

    @classmethod
    async def open(cls: type[D], config: Config | None = None, *, check_schema: bool = False) -> D:
        """Open the configured backend (environment when ``config`` is None).

        With ``check_schema``, refuse to start when the live schema differs from the
        expected one, unless ``ARAGORA_SKIP_SCHEMA_VALIDATION`` is set.
        """
        config = config or Config.from_env()
        db = cls(await open_async(config))
        if config.sync is not None:
            # Imported here: the sync is a tool over the core, used only when configured.
            from aragora_repos.tools.sync import SyncService

            db.sync = SyncService.start(config, cls.migrations)
        if check_schema:
            try:
                if cls.expected is None:
                    raise ConfigError(f"cannot check the schema: {cls.__name__} declares none")
                await check_at_startup(db.backend, cls.expected)
            except BaseException:
                await db.close()
                raise
        return db

    def transaction(
        self,
        *,
        isolation: Isolation | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        timeout: float | None = None,
    ) -> Transaction:
        """Run the calls in an ``async with`` block in one transaction (nested: a savepoint).

        SQLite has only SERIALIZABLE; asking it for another isolation level raises.
        """
        return self.backend.transaction(
            isolation=isolation, readonly=readonly, deferrable=deferrable, timeout=timeout
        )

    def savepoint(self, name: str) -> Transaction:
        """A named savepoint inside the open transaction."""
        return self.backend.savepoint(name)

    async def run_in_transaction(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        retries: int | None = None,
        base_delay: float | None = None,
        max_delay: float | None = None,
        isolation: Isolation | None = None,
        readonly: bool = False,
        timeout: float | None = None,
    ) -> T:
        """Run ``fn`` in a transaction, re-running all of it after a serialization
        failure, deadlock or lost connection (outermost level only)."""
        return await self.backend.run_in_transaction(
            fn,
            retries=retries,
            base_delay=base_delay,
            max_delay=max_delay,
            isolation=isolation,
            readonly=readonly,
            timeout=timeout,
        )

    @property
    def capabilities(self) -> BackendCapabilities:
        return self.backend.capabilities

    @property
    def transaction_stats(self) -> TransactionStats:
        return self.backend.transaction_stats

    def get_health_status(self) -> HealthStatus:
        """Pool and transaction counters, without a round trip."""
        return self.backend.get_health_status()

    async def get_database_health(self) -> DatabaseHealth:
        """Probe the database: reachable, latency, schema version, tables, replicas."""
        return await self.backend.get_database_health()

    def use_primary(self) -> AbstractContextManager[None]:
        """Send this context's reads to the primary."""
        return self.backend.use_primary()

    def use_replica(self) -> AbstractContextManager[None]:
        """Send this context's reads to a replica, accepting replication lag."""
        return self.backend.use_replica()

    def advisory_lock(
        self, key: int, *, timeout: float | None = None
    ) -> AbstractAsyncContextManager[None]:
        """PostgreSQL advisory lock ``key`` for the block; NotSupportedError on SQLite."""
        return self.backend.advisory_lock(key, timeout=timeout)

    def listen(self, channel: str) -> AbstractAsyncContextManager[Listener]:
        """LISTEN on ``channel`` (PostgreSQL); NotSupportedError on SQLite."""
        return self.backend.listen(channel)

    async def notify(self, channel: str, payload: str = "") -> None:
        """NOTIFY ``channel`` (PostgreSQL); NotSupportedError on SQLite."""
        await self.backend.notify(channel, payload)

    async def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied."""
        return await self.backend.migrate(self.migrations)

    async def validate_schema(self) -> ValidationResult:
        """Compare the live schema with the expected one; errors and warnings, never raises."""
        if self.expected is None:
            raise ConfigError(f"cannot validate the schema: {type(self).__name__} declares none")
        return await validate_schema(self.backend, self.expected)

    async def close(self) -> None:
        """Close; a running sync is stopped and delivers what is queued first (at most
        30 seconds; what is left stays in the outbox for the next run)."""
        if self.sync is not None:
            sync, self.sync = self.sync, None
            await sync.close()
        await self.backend.close()

    async def __aenter__(self: D) -> D:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class SyncDatabase:
    """All synchronous repositories over one SQLite connection."""

    __slots__ = ("connection",)

    repositories: ClassVar[SyncRepositoryTable] = {}
    migrations: ClassVar[Sequence[Migration]] = ()

    def __init__(self, connection: SqliteConnection) -> None:
        self.connection = connection
        for attribute, repository in self.repositories.items():
            setattr(self, attribute, repository(connection))

    @classmethod
    def open(cls: type[SD], config: Config | None = None) -> SD:
        """Open the configured SQLite database synchronously (PostgreSQL is async only)."""
        return cls(open_sync(config))

    def transaction(
        self, *, isolation: Isolation | None = None, readonly: bool = False
    ) -> SyncTransaction:
        """Run the calls in a ``with`` block in one transaction (nested: a savepoint)."""
        return self.connection.transaction(isolation=isolation, readonly=readonly)

    def savepoint(self, name: str) -> SyncTransaction:
        """A named savepoint inside the open transaction."""
        return self.connection.savepoint_block(name)

    def run_in_transaction(self, fn: Callable[[], T], *, retries: int = 5) -> T:
        """Run ``fn`` in a transaction, re-running it while SQLite stays busy."""
        return self.connection.run_in_transaction(fn, retries=retries)

    @property
    def transaction_stats(self) -> TransactionStats:
        return self.connection.transaction_stats

    def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied."""
        return self.connection.migrate(self.migrations)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self: SD) -> SD:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
