"""PostgreSQL backend: an asyncpg pool for the primary and one per read replica.

Routing: inside ``transaction()`` every statement runs on the transaction's primary
connection. Outside, a statement the generator marked read-only goes to a healthy replica
that has replayed everything this context wrote (see :meth:`PostgresDatabase.use_primary`
and :meth:`PostgresDatabase.use_replica` to force either); writes go to the primary.

Read-your-writes without waiting: a context that wrote at time W reads from a replica
only once a health check that began after W saw the replica's replay position reach the
primary's WAL position, which covers every commit acknowledged before W
(``pg_current_wal_lsn`` vs ``pg_last_wal_replay_lsn``, functions-admin.html). Until
then its reads go to the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import asyncpg

from aragora_repos import errors
from aragora_repos.backends.base import Backend, Planner
from aragora_repos.backends.postgres.driver import (
    DRIVER_ERRORS,
    connect_one,
    create_pool,
    gone,
    is_loss,
    map_error,
    rows_of,
)
from aragora_repos.backends.postgres.migrate import (
    COUNT_TABLES,
    applied_versions,
    run_plan,
    stamp,
)
from aragora_repos.backends.postgres.pool import Lender, Replica
from aragora_repos.backends.postgres.replicas import Replicas
from aragora_repos.backends.postgres.session import Listener, PgTx, Session
from aragora_repos.backup import pg_dump_backup
from aragora_repos.config import Config, Secret, check_connection_policy
from aragora_repos.migrations import Applied, Migration
from aragora_repos.observability import (
    BackendCapabilities,
    BackendType,
    PoolStats,
    ReplicaStatus,
    log_slow,
)
from aragora_repos.transaction import TransactionConfig

if TYPE_CHECKING:
    from aragora_repos.backends.postgres.driver import BoundConnection, Lent, Pool

T = TypeVar("T")

_ROUTE_PRIMARY = "primary"
_ROUTE_REPLICA = "replica"


async def _cursor(
    conn: Lent, sql: str, args: Sequence[Any], prefetch: int
) -> AsyncIterator[asyncpg.Record]:
    try:
        async for row in conn.cursor(sql, *args, prefetch=prefetch):
            yield row
    except DRIVER_ERRORS as exc:
        raise map_error(exc) from exc


async def note_pooler(pool: asyncpg.Pool[asyncpg.Record], pooler: str) -> bool:
    """Whether a pooler sits between this process and the server, from the server's own
    answers: the backend a statement runs on is not the one the connection was told of
    at startup (a pooler answers the startup itself). Behind one with
    ``ARAGORA_POSTGRES_POOLER`` unset, say so: a transaction pooler makes asyncpg's named
    prepared statements fail later, far from the cause."""
    async with pool.acquire() as conn:
        told = conn.get_server_pid()
        runs = await conn.fetchval("SELECT pg_backend_pid()")
    pooled: bool = told != runs
    if pooled and pooler == "none":
        log.warning(
            "a connection pooler sits between this process and PostgreSQL (statements run "
            "on backend %s, the connection was opened as %s); if it pools by transaction "
            "(PgBouncer's transaction mode, Supabase's port 6543), set "
            "ARAGORA_POSTGRES_POOLER=transaction",
            runs,
            told,
        )
    elif pooled:
        log.info("connected through a %s pooler", pooler)
    return pooled


log = logging.getLogger("aragora_repos.postgres")

#: Default collations that order text by code point (UTF-8 byte order), as SQLite does.
BYTE_ORDER = frozenset({"c", "posix", "c.utf-8", "c.utf8", "ucs_basic", "pg_c_utf8"})


async def check_collation(pool: asyncpg.Pool[asyncpg.Record]) -> None:
    """Refuse a database whose default collation orders text otherwise than SQLite.

    The rule, on both backends: text sorts and compares by code point. SQLite's BINARY
    collation does; PostgreSQL does under ``C``, ``POSIX`` or ``C.UTF-8`` (Supabase's
    hosted default). Under ``en_US.UTF-8`` or an ICU locale PostgreSQL orders
    ``ada, bob, Bob, Émile, Zed`` where SQLite orders ``Bob, Zed, ada, bob, Émile``, so
    every ORDER BY, ``<`` and ``min()`` over text would answer differently.

    Raises:
        ConfigError: naming the collation and how to create a database that passes, or
            ``ARAGORA_POSTGRES_COLLATION=any`` to accept the difference.
    """
    row = await pool.fetchrow(
        "SELECT to_jsonb(d) - 'datacl' AS info FROM pg_database d "
        "WHERE d.datname = current_database()"
    )
    raw = row["info"] if row is not None else None
    info: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    provider = info.get("datlocprovider", "c")
    locale = info.get("daticulocale") or info.get("datlocale") or info.get("datcollate") or ""
    collate = info.get("datcollate", "")
    if provider == "c" and str(collate).lower() in BYTE_ORDER:
        return
    if provider == "b" and str(locale).lower() in BYTE_ORDER:
        return
    kind = {"i": "ICU", "b": "builtin", "c": "libc"}.get(str(provider), str(provider))
    raise errors.ConfigError(
        f"database {info.get('datname', '?')!r} orders text by the {kind} collation "
        f"{locale or collate!r}; this project orders text by code point on both backends "
        "(as SQLite does). Create the database with LOCALE_PROVIDER libc LOCALE 'C.UTF-8' "
        "(CREATE DATABASE ... TEMPLATE template0 LOCALE 'C.UTF-8'), or set "
        "ARAGORA_POSTGRES_COLLATION=any to accept that text order differs from SQLite's"
    )


class PostgresDatabase(Backend):
    """The primary pool, replica pools and routing; transactions, retry and the health
    report come from :class:`Backend`."""

    kind = BackendType.POSTGRES
    dialect = "postgres"

    __slots__ = (
        "__weakref__",
        "_direct",
        "_dsn",
        "_lender",
        "_lock_timeout",
        "_migration_lock_timeout",
        "_pool",
        "_pooler",
        "_queries",
        "_reads",
        "_replica_reads",
        "_replicas",
        "_rollback_timeout",
        "_slow_ms",
        "_writes",
    )

    def __init__(
        self,
        pool: Pool,
        dsn: Secret,
        *,
        lock_timeout: float = 5.0,
        migration_lock_timeout: float = 300.0,
        pool_timeout: float = 30.0,
        slow_query_ms: float | None = 1000.0,
        transaction_config: TransactionConfig | None = None,
        replicas: Sequence[Replica] = (),
        check_interval: float = 0.5,
        pooler: str = "none",
        direct_dsn: Secret | None = None,
    ) -> None:
        super().__init__(transaction_config)
        self._pooler = pooler
        self._direct = direct_dsn
        self._pool = pool
        self._lender = Lender(pool, timeout=pool_timeout, label=str(dsn))
        self._dsn = dsn
        self._lock_timeout = lock_timeout
        self._migration_lock_timeout = migration_lock_timeout
        self._rollback_timeout = 5.0
        self._slow_ms = slow_query_ms
        self._replicas = Replicas(replicas, check_interval)
        self._queries = self._reads = self._writes = self._replica_reads = 0

    @classmethod
    async def open(
        cls,
        dsn: Secret,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
        replicas: Sequence[Secret] = (),
        pool_timeout: float = 30.0,
        slow_query_ms: float | None = 1000.0,
        transaction_config: TransactionConfig | None = None,
        replica_check_interval: float = 0.5,
        migration_lock_timeout: float = 300.0,
        pooler: str = "none",
        direct_dsn: Secret | None = None,
        collation: str = "check",
    ) -> PostgresDatabase:
        """Open the primary pool (failing if the primary is unreachable) and a pool per
        replica (a replica that is down starts ejected and returns when it answers).

        ``collation="check"``: the database must order text by code point, as SQLite does
        (see :func:`check_collation`); ``"any"`` skips the check."""
        pool = await create_pool(dsn, min_size, max_size, timeout, pooler=pooler)
        try:
            if collation == "check":
                await check_collation(pool)
            await note_pooler(pool, pooler)
        except BaseException:
            await pool.close()
            raise
        if direct_dsn is not None:
            check_connection_policy(direct_dsn)
        replica_list = []
        for replica in replicas:
            rpool = await create_pool(replica, 0, max_size, timeout, pooler=pooler)
            replica_list.append(Replica(rpool, str(replica), pool_timeout))
        db = cls(
            pool,
            dsn,
            migration_lock_timeout=migration_lock_timeout,
            pool_timeout=pool_timeout,
            slow_query_ms=slow_query_ms,
            transaction_config=transaction_config,
            replicas=replica_list,
            check_interval=replica_check_interval,
            pooler=pooler,
            direct_dsn=direct_dsn,
        )
        if replica_list:
            await db.check_replicas()
            db._replicas.watch(db._lender)
        return db

    @classmethod
    async def from_config(cls, config: Config) -> PostgresDatabase:
        if config.dsn is None:
            raise errors.ConfigError("cannot open postgresql: no DSN is configured")
        db = await cls.open(
            config.dsn,
            min_size=config.pool_min,
            max_size=config.pool_max,
            timeout=config.timeout if config.timeout > 0 else 10.0,
            replicas=config.replicas,
            pool_timeout=config.pool_timeout,
            slow_query_ms=config.slow_query_ms,
            migration_lock_timeout=config.migration_lock_timeout,
            pooler=config.pooler,
            direct_dsn=config.direct_dsn,
            collation=config.collation,
        )
        db.keys = config.encryption
        return db

    # --- routing ------------------------------------------------------------------------

    def use_primary(self) -> contextlib.AbstractContextManager[None]:
        """Send this context's reads to the primary."""
        return self._replicas.use_primary()

    def use_replica(self) -> contextlib.AbstractContextManager[None]:
        """Send this context's reads to a healthy replica even right after its own writes
        (accepting replication lag); the primary still serves them when none is healthy."""
        return self._replicas.use_replica()

    async def check_replicas(self) -> None:
        """One health check of every replica: reachable, still a standby, and caught up."""
        await self._replicas.check(self._lender)

    def _new_driver(self) -> PgTx:
        return PgTx(self._lender, self._replicas, self._rollback_timeout)

    # --- statements (called by generated repositories) ---------------------------------

    async def _single(
        self, sql: str, op: Callable[[BoundConnection], Awaitable[T]], readonly: bool
    ) -> T:
        self._queries += 1
        tx = self._tx.get()
        if tx is not None:
            conn = tx.check_usable()
            assert isinstance(conn, PgTx)
            started = time.perf_counter()
            lent = conn.connection
            try:
                return await op(lent)
            except DRIVER_ERRORS as exc:
                if is_loss(exc, lent) and not isinstance(exc, asyncpg.PostgresError):
                    # The session is gone, so the server has rolled the transaction back.
                    raise errors.ConnectionFailure(
                        f"cannot run the statement: the connection was lost ({exc})"
                    ) from exc
                raise map_error(exc) from exc
            finally:
                if self._slow_ms is not None:
                    elapsed = (time.perf_counter() - started) * 1000
                    if elapsed > self._slow_ms:
                        log_slow(sql, elapsed, "postgres")
        if readonly:
            return await self._read(sql, op)
        return await self._write(sql, op)

    async def _read(self, sql: str, op: Callable[[BoundConnection], Awaitable[T]]) -> T:
        """A read outside a transaction: a replica when eligible, else the primary. A
        read has no effect, so a lost connection is retried (replica: at once on the
        primary; primary: twice more after 50 and 100 ms)."""
        self._reads += 1
        failures = 0
        while True:
            replica = self._replicas.for_read()
            if replica is not None:
                try:
                    result = await replica.lender.run(sql, op, self._slow_ms)
                except (errors.ConnectionFailure, errors.PoolTimeout) as exc:
                    self._replicas.eject(replica, type(exc).__name__)
                    continue
                replica.reads += 1
                self._replica_reads += 1
                return result
            try:
                return await self._lender.run(sql, op, self._slow_ms)
            except errors.ConnectionFailure:
                failures += 1
                if failures > 2:
                    raise
                await asyncio.sleep(0.05 * failures)

    async def _write(self, sql: str, op: Callable[[BoundConnection], Awaitable[T]]) -> T:
        """A write outside a transaction, on the primary. Retried only when no statement
        was sent; a connection lost mid-statement leaves the outcome unknown and raises."""
        self._writes += 1
        failures = 0
        try:
            while True:
                try:
                    return await self._lender.run(sql, op, self._slow_ms)
                except errors.ConnectionUnavailable:
                    failures += 1
                    if failures > 2:
                        raise
                    await asyncio.sleep(0.05 * failures)
        finally:
            self._replicas.wrote()

    def _flat_ok(self, readonly: bool) -> bool:
        """Whether a statement can take the flat path: outside a transaction, an idle
        connection at hand, and no replica to route a read to."""
        return (
            bool(self._lender.idle)
            and self._tx.get() is None
            and not (readonly and self._replicas.members)
        )

    async def _flat(self, name: str, sql: str, args: Sequence[Any], readonly: bool) -> Any:
        """One statement outside a transaction on an idle connection, called on asyncpg's
        connection itself: what ``_single`` -> ``_read``/``_write`` -> ``Lender.run``
        do for it, in one frame (those layers cost about 5 us a call against a 130 us
        round trip). Anything unusual (a connection that has gone, an error a retry
        may cure) goes the long way, which keeps every rule of the layers."""
        lender = self._lender

        def long_way() -> Awaitable[Any]:
            return self._single(sql, lambda c: getattr(c, name)(sql, *args), readonly)

        lent = lender.idle.pop()
        con: asyncpg.Connection | None = cast(Any, lent)._con
        if con is None or con.is_closed():
            lender.idle.append(lent)  # the long way drops it and takes another
            return await long_way()
        self._queries += 1
        if readonly:
            self._reads += 1
        else:
            self._writes += 1
        started = time.perf_counter()
        try:
            result = await getattr(con, name)(sql, *args)
        except BaseException as exc:
            error = await lender.failed(lent, exc)
            if error is exc:
                raise
            if isinstance(error, errors.ConnectionUnavailable) or (
                readonly and isinstance(error, errors.ConnectionFailure)
            ):
                # Nothing ran (or only a read did): the long way retries as it would have.
                return await long_way()
            raise error from exc
        finally:
            if not readonly:
                self._replicas.wrote()
            if self._slow_ms is not None:
                elapsed = (time.perf_counter() - started) * 1000
                if elapsed > self._slow_ms:
                    log_slow(sql, elapsed, "postgres")
        if not lender.put(lent):
            await lender.discard(lent)
        return result

    async def fetchrow(
        self, sql: str, args: Sequence[Any], *, readonly: bool = False
    ) -> asyncpg.Record | None:
        if self._flat_ok(readonly):
            row: asyncpg.Record | None = await self._flat("fetchrow", sql, args, readonly)
            return row
        return await self._single(sql, lambda c: c.fetchrow(sql, *args), readonly)

    async def fetch(
        self, sql: str, args: Sequence[Any], *, readonly: bool = False
    ) -> list[asyncpg.Record]:
        if self._flat_ok(readonly):
            rows: list[asyncpg.Record] = await self._flat("fetch", sql, args, readonly)
            return rows
        return await self._single(sql, lambda c: c.fetch(sql, *args), readonly)

    async def stream(
        self, sql: str, args: Sequence[Any], *, readonly: bool = False, prefetch: int = 500
    ) -> AsyncIterator[asyncpg.Record]:
        """The rows of a read as they come, ``prefetch`` at a time through a server-side
        cursor, never all in memory. A cursor lives in a transaction: the caller's, or a
        read-only one of its own that ends with the iteration (or when a stream left half
        read is collected)."""
        tx = self._tx.get()
        if tx is not None:
            driver = tx.check_usable()
            assert isinstance(driver, PgTx)
            async for row in _cursor(driver.connection, sql, args, prefetch):
                yield row
            return
        if not readonly:
            # A statement that writes (INSERT ... RETURNING) has no cursor: its rows come
            # whole, once it is done.
            for row in await self.fetch(sql, args):
                yield row
            return
        # A connection and a read-only transaction of its own, held without the task's
        # context: a stream left half read is closed when it is collected, which asyncio
        # does in another task, and that must still roll back and give the connection back.
        lender = self._lender
        conn = await lender.take()
        try:
            transaction = conn.transaction(readonly=True)
            try:
                await transaction.start()
            except DRIVER_ERRORS as exc:
                raise map_error(exc) from exc
            try:
                async for row in _cursor(conn, sql, args, prefetch):
                    yield row
            finally:
                with contextlib.suppress(*DRIVER_ERRORS):
                    await transaction.rollback()
        finally:
            await lender.discard(conn)

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement; return the number of rows it affected."""
        if self._flat_ok(False):
            status: str = await self._flat("execute", sql, args, False)
            return rows_of(status)
        return rows_of(await self._single(sql, lambda c: c.execute(sql, *args), False))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run a statement per row (asyncpg pipelines them; atomic); return len(rows)."""
        await self._single(sql, lambda c: c.executemany(sql, rows), False)
        return len(rows)

    async def copy_records(
        self, table: str, columns: Sequence[str], records: Iterable[Sequence[Any]]
    ) -> int:
        """Bulk insert with binary COPY; return the number of rows copied.

        ``records`` is streamed to the server as it is iterated (a generator is never
        held whole in memory). COPY is one statement, so it lands whole or not at all;
        once its rows have started to be read it is not re-sent, since an iterator
        cannot be read twice.
        """
        started = False

        def op(c: BoundConnection) -> Awaitable[str]:
            nonlocal started
            if started:
                raise errors.ConnectionFailure(
                    f"cannot copy into {table}: the connection was lost after its rows "
                    "began to be read; nothing was committed, run it again"
                )
            started = True
            return c.copy_records_to_table(table, records=records, columns=list(columns))

        try:
            return rows_of(await self._single(f"COPY {table}", op, False))
        except UnicodeEncodeError as exc:
            # asyncpg encodes COPY rows itself and lets this through bare; a statement's
            # argument of the same text is a DataError (as on SQLite).
            raise errors.DataError(
                f"invalid input for COPY into {table}: text that is not UTF-8 ({exc.reason})",
                sqlstate="22000",
            ) from None

    @contextlib.asynccontextmanager
    async def _checkout(self) -> AsyncIterator[Lent]:
        """A primary connection for work that may change session state; on release it
        gets the full reset and returns to the pool."""
        lender = self._lender
        conn = await lender.take()
        try:
            yield conn
        finally:
            await lender.discard(conn, full_reset=True)

    @contextlib.asynccontextmanager
    async def _session(self, what: str) -> AsyncIterator[BoundConnection]:
        """A connection with a session of its own for ``what``: a pool checkout, or,
        behind a transaction pooler, a direct connection to the server (refused with
        what to set when none is configured)."""
        if self._pooler != "transaction":
            async with self._checkout() as lent:
                yield lent
            return
        if self._direct is None:
            raise errors.ConfigError(
                f"cannot {what} through a transaction pooler (ARAGORA_POSTGRES_POOLER="
                "transaction): it needs a session of its own, and the pooler hands the "
                "server session to another client after each transaction; set "
                "ARAGORA_POSTGRES_DIRECT_DSN to the server's own address (Supabase: the "
                "direct connection, port 5432)"
            )
        conn = await connect_one(self._direct)
        try:
            yield conn
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Session]:
        """``async with db.connection() as conn:`` a primary connection of your own.

        Whatever session state it gathers is reset on release, and the session object
        refuses every call after the block.
        """
        async with self._session("check out a connection") as conn:
            session = Session(conn)
            try:
                yield session
            finally:
                session._conn = None

    # --- capabilities, locks, notifications -------------------------------------------

    @property
    def capabilities(self) -> BackendCapabilities:
        return BackendCapabilities(
            backend=BackendType.POSTGRES,
            concurrent_writes=True,
            advisory_locks=True,
            listen_notify=True,
            jsonb=True,
            full_text_search=True,
            read_replicas=bool(self._replicas.members),
            savepoints=True,
            returning=True,
            async_pool=True,
        )

    @contextlib.asynccontextmanager
    async def advisory_lock(
        self, key: int, *, timeout: float | None = None, poll: float = 0.05
    ) -> AsyncIterator[None]:
        """Hold PostgreSQL advisory lock ``key`` for the block (explicit-locking.html
        §13.3.5). Inside a transaction it is a transaction-level lock; outside, a session
        lock on a connection of its own. Waits by polling ``pg_try_advisory_lock``: a
        waiter blocked in ``pg_advisory_lock`` can be picked as a deadlock victim.

        Raises:
            OperationalError: (55P03) the lock was not free within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        tx = self._tx.get()

        async def acquire(conn: BoundConnection, fn: str) -> None:
            while not await conn.fetchval(f"SELECT {fn}($1)", key):
                if deadline is not None and time.monotonic() >= deadline:
                    raise errors.OperationalError(
                        f"cannot take advisory lock {key}: still held after {timeout} s",
                        sqlstate="55P03",
                    )
                await asyncio.sleep(poll)

        if tx is not None:
            driver = tx.check_usable()
            assert isinstance(driver, PgTx)
            await acquire(driver.connection, "pg_try_advisory_xact_lock")
            yield
            return
        async with self._session(f"hold advisory lock {key} outside a transaction") as conn:
            await acquire(conn, "pg_try_advisory_lock")
            try:
                yield
            finally:
                if not gone(conn):
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[Listener]:
        """``async with db.listen("events") as events:`` then ``await events.get()``."""
        listener = Listener()
        async with self._session(f"LISTEN on {channel}") as conn:
            await conn.add_listener(channel, listener._push)
            try:
                yield listener
            finally:
                if not gone(conn):
                    await conn.remove_listener(channel, listener._push)

    async def notify(self, channel: str, payload: str = "") -> None:
        """``pg_notify(channel, payload)``; delivered when the current transaction commits."""
        await self.execute("SELECT pg_notify($1, $2)", (channel, payload))

    # --- health ------------------------------------------------------------------------

    def pool_stats(self) -> PoolStats:
        pool, lender = self._pool, self._lender
        total = pool.get_size()
        idle = min(total, lender.free())
        return PoolStats(
            total=total,
            active=total - idle,
            idle=idle,
            max_size=pool.get_max_size(),
            waits=lender.waits,
            timeouts=lender.timeouts,
            queries=self._queries,
            reads=self._reads,
            writes=self._writes,
            replica_reads=self._replica_reads,
        )

    def replica_status(self) -> tuple[ReplicaStatus, ...]:
        return self._replicas.status()

    def _healthy(self) -> bool:
        return not self._closed and not self._pool.is_closing()

    async def _probe(self) -> tuple[int, int | None]:
        with self.use_primary():
            row = await self.fetchrow(
                "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = "
                "current_schema() AND tablename <> 'schema_version'), "
                "to_regclass('schema_version') IS NOT NULL",
                (),
                readonly=True,
            )
        assert row is not None
        version = await self.schema_version() if row[1] else None
        return int(row[0]), version

    # --- migrations and housekeeping ---------------------------------------------------

    async def applied(self) -> dict[int, Applied]:
        with self.use_primary():
            return await self._single("applied", applied_versions, True)

    async def stamp(self, migrations: Sequence[Migration]) -> list[int]:
        try:
            async with self._session("stamp (the migration lock is a session lock)") as conn:
                return await stamp(conn, migrations, self._migration_lock_timeout)
        except DRIVER_ERRORS as exc:
            raise map_error(exc) from exc

    async def repair(self) -> list[int]:
        """Forget interrupted migrations so they run again; return their versions."""
        rows = await self.fetch(
            "DELETE FROM schema_version WHERE NOT success RETURNING version", ()
        )
        return sorted(r[0] for r in rows)

    async def _run_plan(
        self,
        planner: Planner,
        on_statement: Callable[[str], None] | None,
        backup_to: Path | None = None,
        on_backup: Callable[[Path | None], None] | None = None,
    ) -> list[int]:
        try:
            async with self._session("migrate (the migration lock is a session lock)") as conn:
                return await run_plan(
                    conn,
                    planner,
                    dsn=self._dsn,
                    lock_timeout=self._lock_timeout,
                    migration_lock_timeout=self._migration_lock_timeout,
                    on_statement=on_statement,
                    backup_to=backup_to,
                    on_backup=on_backup,
                    keys=self.keys,
                )
        except DRIVER_ERRORS as exc:
            raise map_error(exc) from exc

    async def _allow_retention(self, cutoff: datetime) -> None:
        # Transaction-local, so it holds behind a transaction pooler too.
        await self.execute(
            "SELECT set_config('aragora.retention_cutoff', $1, true)", (cutoff.isoformat(),)
        )

    async def backup(self, root: Path) -> Path | None:
        """``pg_dump --format=custom`` into a new folder under ``root``, verified; None
        when pg_dump is missing."""
        tables = await self._single("count tables", lambda c: c.fetchval(COUNT_TABLES), True)
        return await asyncio.to_thread(pg_dump_backup, self._dsn, root, tables=int(tables))

    async def schema_version(self) -> int | None:
        try:
            with self.use_primary():
                value = await self._single(
                    "schema_version",
                    lambda c: c.fetchval("SELECT max(version) FROM schema_version WHERE success"),
                    True,
                )
        except errors.ProgrammingError as exc:
            if exc.sqlstate == "42P01":  # no schema_version table yet
                return None
            raise
        return int(value) if value is not None else None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._lender.close()
        await self._pool.close()
        await self._replicas.close()

    def __repr__(self) -> str:
        n = len(self._replicas.members)
        replicas = f", replicas={n}" if n else ""
        return f"PostgresDatabase({str(self._dsn)!r}{replicas})"
