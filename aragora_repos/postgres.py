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
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import asyncpg

from aragora_repos import errors
from aragora_repos.backup import pg_dump_backup
from aragora_repos.codec import json_text
from aragora_repos.config import Config, Secret, check_connection_policy
from aragora_repos.migrations import (
    ADVISORY_LOCK_KEY,
    SCHEMA_VERSION_POSTGRES,
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
    ReplicaStatus,
    log_slow,
)
from aragora_repos.transaction import (
    Transaction,
    TransactionConfig,
    TransactionStats,
    TxOptions,
    run_in_transaction,
)
from aragora_repos.transaction_options import Isolation
from aragora_repos.types import JSON

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]
    Lent: TypeAlias = PoolConnectionProxy[asyncpg.Record]
    BoundConnection: TypeAlias = Connection | Lent
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]


def _jsonb_encode(value: JSON) -> bytes:
    return b"\x01" + json_text(value).encode()  # jsonb binary format: version 1, then text


def _jsonb_decode(data: bytes) -> JSON:
    return json.loads(data[1:])  # type: ignore[no-any-return]


def _json_encode(value: JSON) -> bytes:
    return json_text(value).encode()


def _json_decode(data: bytes) -> JSON:
    return json.loads(data)  # type: ignore[no-any-return]


async def _init_connection(conn: Connection) -> None:
    # Binary codecs so COPY (copy_records_to_table) encodes JSON columns too.
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json", encoder=_json_encode, decoder=_json_decode, schema="pg_catalog", format="binary"
    )


#: SQLSTATEs that mean the session is gone: class 08, and admin_shutdown, crash_shutdown,
#: cannot_connect_now (errcodes-appendix.html).
_LOST = frozenset({"57P01", "57P02", "57P03"})


def _is_loss(exc: BaseException, conn: Lent | None = None) -> bool:
    """Whether ``exc`` means the connection is gone (not a statement error)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state.startswith("08") or state in _LOST
    if isinstance(exc, asyncpg.InterfaceError):
        return conn is not None and _gone(conn)
    return isinstance(exc, OSError | asyncpg.exceptions.InternalClientError)


def _map(exc: BaseException) -> errors.DatabaseError:
    if isinstance(exc, asyncpg.InvalidCachedStatementError):
        return errors.StatementCacheStale(
            f"cannot run the statement: {exc}; re-run the transaction", sqlstate=exc.sqlstate
        )
    if isinstance(exc, asyncpg.PostgresError):
        return errors.from_sqlstate(exc.sqlstate, str(exc))
    if isinstance(exc, asyncpg.DataError):  # a parameter the client cannot encode
        return errors.DataError(f"cannot encode a parameter: {exc}", sqlstate="22000")
    if isinstance(exc, asyncpg.InterfaceError):
        return errors.InterfaceError(f"cannot use the connection: {exc}")
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        return errors.ConnectionFailure(f"cannot use the connection: {exc}")
    return errors.ConnectionFailure(f"cannot reach postgresql: {type(exc).__name__}: {exc}")


#: Set while a connection is used for work that may change session state (transactions,
#: migrations): its release then runs asyncpg's full reset query.
_FULL_RESET: ContextVar[bool] = ContextVar("aragora_pg_full_reset", default=False)


#: Everything a session can carry to the next user, in one round trip. asyncpg's default
#: (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) leaves SET ROLE, SET SESSION
#: AUTHORIZATION, temporary tables and SQL-level PREPAREd statements behind; DISCARD ALL
#: would also drop asyncpg's own prepared statements, so only those PREPAREd from SQL
#: are deallocated.
RESET_QUERY = (
    "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; SELECT pg_advisory_unlock_all(); "
    "CLOSE ALL; UNLISTEN *; DISCARD TEMP; DISCARD SEQUENCES; "
    "DO $$DECLARE r record; BEGIN FOR r IN SELECT name FROM pg_prepared_statements "
    "WHERE from_sql LOOP EXECUTE format('DEALLOCATE %I', r.name); END LOOP; END$$"
)


async def _reset(conn: Connection) -> None:
    """Pool reset hook. asyncpg has already rolled back any open transaction and removed
    listeners (``Connection._reset``) before calling it. A single generated statement run
    outside a transaction cannot leave session state behind, so its release skips the
    reset query, which would otherwise cost a second round trip per call; releases from
    transactions, checkouts and migrations run :data:`RESET_QUERY`. If the reset fails or
    is cancelled, asyncpg terminates the connection instead of reusing it."""
    if _FULL_RESET.get():
        await conn.execute(RESET_QUERY)


#: UTC sessions: date_trunc and timestamptz text casts then agree with SQLite's storage form.
SESSION_SETTINGS = {"timezone": "UTC"}

T = TypeVar("T")
replica_log = logging.getLogger("aragora_repos.replicas")


class _HideDriverFrames(logging.Filter):
    """asyncpg's pool logs failed reconnects with ``exc_info`` (pool.py, "Failed to restore
    the pool connection floor"); a handler that records frame locals (error reporters do)
    would store the connection parameters, password included, from the driver's frames.
    The record keeps the exception's type and SQLSTATE, not its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            sqlstate = getattr(exc, "sqlstate", None)
            record.msg = f"{record.getMessage()} ({type(exc).__name__}" + (
                f", {sqlstate})" if sqlstate else ")"
            )
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("asyncpg.pool").addFilter(_HideDriverFrames())
_log = logging.getLogger("aragora_repos.migrations")
pool_log = logging.getLogger("aragora_repos.pool")

#: InternalClientError: the protocol refuses a new operation on a session the server has
#: ended while it sat idle (the FATAL arrived, the EOF not yet); it is raised before
#: anything is sent.
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)


def _rows(status: str) -> int:
    """Rows affected from a command tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def _applied(conn: BoundConnection) -> dict[int, Applied]:
    """The ``schema_version`` rows; empty when the table does not exist yet."""
    if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
        return {}
    rows = await conn.fetch(
        "SELECT version, name, checksum, applied_at, execution_ms, success "
        "FROM schema_version ORDER BY version"
    )
    return {a.version: a for a in (applied_row(tuple(r)) for r in rows)}


async def _run_step(
    conn: BoundConnection,
    step: Step,
    lock_timeout: float,
    on_statement: Callable[[str], None] | None,
) -> None:
    """Run one step. A lock timeout makes a blocked ALTER fail fast instead of queueing
    every other query behind its ACCESS EXCLUSIVE request (explicit-locking.html)."""
    m = step.migration
    timeout = f"SET {{}} lock_timeout = '{int(lock_timeout * 1000)}ms'"
    started = time.perf_counter()

    async def run_statements() -> None:
        for statement in step.statements:
            if on_statement is not None:
                on_statement(statement)
            try:
                await conn.execute(statement)
            except asyncpg.PostgresError as exc:
                raise errors.MigrationError(
                    f"cannot apply {step.direction} {m.label} on postgresql: {exc} ({exc.sqlstate})"
                ) from exc

    if step.transactional:
        async with conn.transaction():
            # Created with the first step, so a failed first migration leaves no trace.
            await conn.execute(SCHEMA_VERSION_POSTGRES)
            await conn.execute(timeout.format("LOCAL"))
            await run_statements()
            if step.direction == "up":
                await conn.execute(
                    "INSERT INTO schema_version (version, name, checksum, execution_ms) "
                    "VALUES ($1, $2, $3, $4)",
                    m.version,
                    m.name,
                    m.checksum,
                    (time.perf_counter() - started) * 1000,
                )
            else:
                await conn.execute("DELETE FROM schema_version WHERE version = $1", m.version)
        return
    # Not transactional (CREATE INDEX CONCURRENTLY): mark the version dirty first, so an
    # interruption is detected by every later run until `migrate repair`.
    await conn.execute(SCHEMA_VERSION_POSTGRES)
    if step.direction == "up":
        await conn.execute(
            "INSERT INTO schema_version (version, name, checksum, success) "
            "VALUES ($1, $2, $3, FALSE)",
            m.version,
            m.name,
            m.checksum,
        )
    else:
        await conn.execute(
            "UPDATE schema_version SET success = FALSE WHERE version = $1", m.version
        )
    await conn.execute(timeout.format("SESSION"))
    try:
        await run_statements()
    finally:
        await conn.execute("RESET lock_timeout")
    if step.direction == "up":
        await conn.execute(
            "UPDATE schema_version SET success = TRUE, execution_ms = $2 WHERE version = $1",
            m.version,
            (time.perf_counter() - started) * 1000,
        )
    else:
        await conn.execute("DELETE FROM schema_version WHERE version = $1", m.version)


#: Ordinary tables pg_dump writes data for (not system or extension-owned ones).
COUNT_TABLES = """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                AND d.objid = c.oid AND d.deptype = 'e')"""


async def _take_migration_lock(conn: BoundConnection, timeout: float) -> None:
    """Poll ``pg_try_advisory_lock``; every few seconds say who holds it, and give up
    after ``timeout`` seconds with an error naming the holder."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    next_report = started + _LOCK_REPORT_EVERY
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY):
        now = loop.time()
        if now - started >= timeout or now >= next_report:
            holder = await conn.fetchrow(_LOCK_HOLDER, ADVISORY_LOCK_KEY)
            who = (
                "an unknown session"
                if holder is None
                else f"pid {holder[0]} ({holder[1] or 'no application name'}, "
                f"state {holder[2]}, since {holder[3]:%Y-%m-%d %H:%M:%S %Z})"
            )
            if now - started >= timeout:
                raise errors.MigrationError(
                    f"cannot migrate: another migrator holds the migration lock: {who}; "
                    f"gave up after {timeout:g} s (ARAGORA_MIGRATION_LOCK_TIMEOUT)"
                )
            _log.warning("waiting for the migration lock, held by %s", who)
            next_report = now + _LOCK_REPORT_EVERY
        await asyncio.sleep(0.1)


_LOCK_REPORT_EVERY = 5.0
#: The session holding our advisory lock (a bigint key shows as classid/objid halves).
_LOCK_HOLDER = """SELECT a.pid, a.application_name, a.state, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.classid::bigint = ($1::bigint >> 32) AND l.objid::bigint = ($1::bigint & 4294967295)
LIMIT 1"""


def _terminate(conn: Lent) -> None:
    if not _gone(conn):
        conn.terminate()


def _gone(conn: Lent) -> bool:
    """Whether a lent proxy can no longer be used. When the server ends a session,
    asyncpg returns its holder to the pool by itself and detaches the proxy
    (``Connection._cleanup``), after which every proxy method raises; so the proxy's
    own attribute is read instead of calling into it."""
    inner: Connection | None = cast(Any, conn)._con
    return inner is None or inner.is_closed()


class _Lender:
    """Connections kept out of the asyncpg pool between single statements.

    ``Pool.fetchrow`` costs about 60 us more than the same call on a held connection on
    this machine kind (acquire, then a release shielded in a new task), against a
    150-200 us round trip. Here borrowing and returning an idle connection are list
    operations with no await. Every acquisition goes through :meth:`take`, and a
    connection is returned to the pool instead of the idle list while anyone waits, so
    idle connections never starve a waiter.
    """

    __slots__ = ("closed", "idle", "label", "pool", "timeout", "timeouts", "waiting", "waits")

    def __init__(self, pool: Pool, *, timeout: float, label: str) -> None:
        self.idle: list[Lent] = []
        self.pool = pool
        self.timeout = timeout
        self.label = label
        self.waiting = 0
        self.waits = 0
        self.timeouts = 0
        self.closed = False

    async def take(self, stale: Lent | None = None) -> Lent:
        """An open connection: from the idle list, else from the pool within ``timeout``.

        Raises:
            PoolTimeout: none became free in time.
            ConnectionFailure: a new connection could not be opened (nothing was sent).
        """
        if stale is not None:
            await self.pool.release(stale)
        while self.idle:
            conn = self.idle.pop()
            if not _gone(conn):
                return conn
            await self.pool.release(conn)
        if self.closed:
            raise errors.PoolClosed("cannot use the database: it is closed")
        pool = self.pool
        if pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size():
            self.waits += 1
        self.waiting += 1
        failure: errors.DatabaseError | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        refusals = 0
        try:
            while True:
                try:
                    return await pool.acquire(timeout=max(0.0, deadline - loop.time()))
                except _DRIVER_ERRORS as exc:
                    full = getattr(exc, "sqlstate", None) == "53300"
                    if not full or loop.time() >= deadline:
                        raise
                # The server is at max_connections: another client's connection will go;
                # wait with capped, jittered backoff inside the pool timeout.
                refusals += 1
                pool_log.info(
                    "%s refused a new connection (max_connections, 53300); retrying", self.label
                )
                delay = random.uniform(0.0, min(0.5, 0.01 * 2**refusals))
                await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        except TimeoutError:
            self.timeouts += 1
            failure = errors.PoolTimeout(
                f"cannot get a connection to {self.label} within {self.timeout} s "
                f"({pool.get_size()} of {pool.get_max_size()} in use or opening"
                + (f"; the server refused {refusals} for max_connections" if refusals else "")
                + ")"
            )
        except _DRIVER_ERRORS as exc:
            # Built outside the handler: the driver's connect frames hold the raw DSN.
            mapped = _map(exc)
            reason = (
                f"{type(exc).__name__} ({mapped.sqlstate})"
                if mapped.sqlstate
                else type(exc).__name__
            )
            failure = (
                errors.ConnectionUnavailable(
                    f"cannot connect to {self.label}: {reason}", sqlstate=mapped.sqlstate
                )
                if isinstance(mapped, errors.ConnectionFailure | errors.InterfaceError)
                else type(mapped)(
                    f"cannot connect to {self.label}: {reason}", sqlstate=mapped.sqlstate
                )
            )
        finally:
            self.waiting -= 1
        if refusals and isinstance(failure, errors.TooManyConnections):
            self.timeouts += 1
        raise failure

    def put(self, conn: Lent) -> bool:
        if self.waiting or self.closed or _gone(conn) or conn.is_in_transaction():
            return False
        self.idle.append(conn)
        return True

    async def discard(self, conn: Lent, *, full_reset: bool = False) -> None:
        """Give ``conn`` back to the pool, with :data:`RESET_QUERY` when it may carry
        session state. If the reset fails, asyncpg terminates the connection (the pool
        opens a new one later) and re-raises; the caller's work is done by then, so
        that failure is not the caller's."""
        token = _FULL_RESET.set(full_reset)
        try:
            with contextlib.suppress(*_DRIVER_ERRORS):
                await self.pool.release(conn)
        finally:
            _FULL_RESET.reset(token)

    async def close(self) -> None:
        self.closed = True
        while self.idle:
            await self.pool.release(self.idle.pop())

    def free(self) -> int:
        return len(self.idle) + self.pool.get_idle_size()


class _Replica:
    __slots__ = (
        "caught_up_at",
        "healthy",
        "lag_bytes",
        "last_error",
        "lender",
        "name",
        "pool",
        "reads",
    )

    def __init__(self, pool: Pool, name: str, timeout: float) -> None:
        self.pool = pool
        self.name = name
        self.lender = _Lender(pool, timeout=timeout, label=name)
        self.healthy = False
        self.caught_up_at = float("-inf")
        self.lag_bytes: int | None = None
        self.last_error: str | None = None
        self.reads = 0

    def status(self) -> ReplicaStatus:
        return ReplicaStatus(self.name, self.healthy, self.reads, self.lag_bytes, self.last_error)


class _PgTx:
    """The transaction driver: one pooled primary connection from BEGIN to release."""

    __slots__ = ("conn", "db", "readonly")

    def __init__(self, db: PostgresDatabase) -> None:
        self.db = db
        self.conn: Lent | None = None
        self.readonly = False

    @property
    def connection(self) -> Lent:
        if self.conn is None:
            raise errors.InterfaceError("cannot use the transaction: it holds no connection")
        return self.conn

    async def begin(self, options: TxOptions) -> None:
        self.readonly = options.readonly
        sql = "BEGIN"
        if options.isolation is not None:
            sql += f" ISOLATION LEVEL {options.isolation.sql}"
        if options.readonly:
            sql += " READ ONLY"
        if options.deferrable:
            sql += " DEFERRABLE"
        if options.timeout is not None:
            # The server stops a statement or an idle session at the deadline too, so a
            # client that stalls cannot keep locks (runtime-config-client.html).
            ms = max(1, int(options.timeout * 1000))
            sql += (
                f"; SET LOCAL statement_timeout = {ms}"
                f"; SET LOCAL idle_in_transaction_session_timeout = {ms}"
            )
        lender = self.db._lender
        for attempt in range(3):
            conn = await lender.take()
            try:
                await conn.execute(sql)
            except BaseException as exc:
                _terminate(conn)
                await lender.discard(conn)
                if isinstance(exc, _DRIVER_ERRORS):
                    # A dead pooled connection (server restart) is replaced: BEGIN has
                    # no effect, so trying again on a new connection is always safe.
                    if _is_loss(exc, conn) and attempt < 2:
                        continue
                    raise _map(exc) from exc
                raise
            self.conn = conn
            return
        raise AssertionError("unreachable")  # pragma: no cover

    async def commit(self) -> None:
        conn = self.connection
        if _gone(conn):
            # Lost before COMMIT was sent: the server rolled the transaction back.
            raise errors.ConnectionFailure(
                "cannot commit: the connection was lost before COMMIT; the server rolled "
                "the transaction back"
            )
        try:
            status = await conn.execute("COMMIT")
        except asyncio.CancelledError:
            _terminate(conn)
            raise
        except _DRIVER_ERRORS as exc:
            if isinstance(exc, asyncpg.InterfaceError) and _gone(conn):
                raise errors.ConnectionFailure(
                    "cannot commit: the connection was lost before COMMIT was sent; the "
                    "server rolled the transaction back"
                ) from exc
            if _is_loss(exc, conn):
                raise errors.CommitOutcomeUnknown(
                    "cannot tell whether the transaction committed: the connection was lost "
                    "while COMMIT was in flight; check for its effects before running it again"
                ) from exc
            raise _map(exc) from exc
        finally:
            if not self.readonly:
                self.db._last_write.set(time.monotonic())
        if status == "ROLLBACK":
            raise errors.TransactionError(
                "cannot commit: an earlier error aborted the transaction; it was rolled back",
                sqlstate="25P02",
            )

    async def rollback(self) -> None:
        conn = self.connection
        try:
            if not _gone(conn):
                await asyncio.wait_for(conn.execute("ROLLBACK"), self.db._rollback_timeout)
        except asyncio.CancelledError:
            _terminate(conn)
            raise
        except (TimeoutError, *_DRIVER_ERRORS):
            _terminate(conn)  # the server rolls back a transaction whose session ends
        finally:
            if not self.readonly:
                self.db._last_write.set(time.monotonic())

    async def abandon(self) -> None:
        # After a cancellation the connection may be mid-statement: terminating it is the
        # only state that is certain (the server rolls back; psycopg_pool closes ACTIVE).
        _terminate(self.connection)
        if not self.readonly:
            self.db._last_write.set(time.monotonic())

    async def _run(self, sql: str) -> None:
        try:
            await self.connection.execute(sql)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc

    async def savepoint(self, name: str) -> None:
        await self._run(f'SAVEPOINT "{name}"')

    async def release(self, name: str) -> None:
        await self._run(f'RELEASE SAVEPOINT "{name}"')

    async def rollback_to(self, name: str) -> None:
        await self._run(f'ROLLBACK TO SAVEPOINT "{name}"')

    def is_open(self) -> bool:
        conn = self.conn
        return conn is not None and not _gone(conn) and conn.is_in_transaction()

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await self.db._lender.discard(conn, full_reset=True)


class Session:
    """A primary connection checked out with :meth:`PostgresDatabase.connection`.

    Session state (SET, SET ROLE, temporary tables, PREPARE, LISTEN, advisory locks,
    cursors) is reset when it goes back; any call after that raises InterfaceError.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Lent) -> None:
        self._conn: Lent | None = conn

    def _live(self) -> Lent:
        if self._conn is None:
            raise errors.InterfaceError("cannot use the connection: it was released to the pool")
        return self._conn

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self._live().fetch(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self._live().fetchrow(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc

    async def fetchval(self, sql: str, *args: Any) -> Any:
        try:
            return await self._live().fetchval(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc

    async def execute(self, sql: str, *args: Any) -> str:
        try:
            return await self._live().execute(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc

    @property
    def raw(self) -> Lent:
        """The asyncpg connection proxy (released with the session)."""
        return self._live()


class Notification:
    """One NOTIFY received by :meth:`PostgresDatabase.listen`."""

    __slots__ = ("channel", "payload", "pid")

    def __init__(self, channel: str, payload: str, pid: int) -> None:
        self.channel = channel
        self.payload = payload
        self.pid = pid

    def __repr__(self) -> str:
        return f"Notification({self.channel!r}, {self.payload!r}, pid={self.pid})"


class Listener:
    """Notifications on one channel, in arrival order."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Notification] = asyncio.Queue()

    def _push(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._queue.put_nowait(Notification(channel, str(payload), pid))

    async def get(self, timeout: float | None = None) -> Notification:
        """The next notification; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Notification:
        return await self._queue.get()


_ROUTE_PRIMARY = "primary"
_ROUTE_REPLICA = "replica"


class PostgresDatabase:
    """The primary pool, replica pools, routing, transactions and health."""

    __slots__ = (
        "__weakref__",
        "_check_interval",
        "_closed",
        "_dsn",
        "_last_write",
        "_lender",
        "_lock_timeout",
        "_migration_lock_timeout",
        "_pool",
        "_queries",
        "_reads",
        "_replica_reads",
        "_replicas",
        "_rollback_timeout",
        "_route",
        "_rr",
        "_slow_ms",
        "_tx",
        "_tx_config",
        "_tx_stats",
        "_watcher",
        "_writes",
        "rng",
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
        replicas: Sequence[_Replica] = (),
        check_interval: float = 0.5,
    ) -> None:
        self._pool = pool
        self._lender = _Lender(pool, timeout=pool_timeout, label=str(dsn))
        self._dsn = dsn
        self._lock_timeout = lock_timeout
        self._migration_lock_timeout = migration_lock_timeout
        self._rollback_timeout = 5.0
        self._slow_ms = slow_query_ms
        self._tx_config = transaction_config or TransactionConfig()
        self._tx_stats = TransactionStats()
        self._tx: ContextVar[Transaction | None] = ContextVar(
            f"aragora_pg_tx_{id(self)}", default=None
        )
        self._route: ContextVar[str | None] = ContextVar(
            f"aragora_pg_route_{id(self)}", default=None
        )
        self._last_write: ContextVar[float] = ContextVar(
            f"aragora_pg_wrote_{id(self)}", default=0.0
        )
        self._replicas = list(replicas)
        self._rr = 0
        self._queries = self._reads = self._writes = self._replica_reads = 0
        self._check_interval = check_interval
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False
        self.rng = random.Random()

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
    ) -> PostgresDatabase:
        """Open the primary pool (failing if the primary is unreachable) and a pool per
        replica (a replica that is down starts ejected and returns when it answers)."""
        pool = await _create_pool(dsn, min_size, max_size, timeout)
        replica_list = []
        for replica in replicas:
            rpool = await _create_pool(replica, 0, max_size, timeout)
            replica_list.append(_Replica(rpool, str(replica), pool_timeout))
        db = cls(
            pool,
            dsn,
            migration_lock_timeout=migration_lock_timeout,
            pool_timeout=pool_timeout,
            slow_query_ms=slow_query_ms,
            transaction_config=transaction_config,
            replicas=replica_list,
            check_interval=replica_check_interval,
        )
        if replica_list:
            await db.check_replicas()
            db._watcher = asyncio.get_running_loop().create_task(db._watch())
        return db

    @classmethod
    async def from_config(cls, config: Config) -> PostgresDatabase:
        if config.dsn is None:
            raise errors.ConfigError("cannot open postgresql: no DSN is configured")
        return await cls.open(
            config.dsn,
            min_size=config.pool_min,
            max_size=config.pool_max,
            timeout=config.timeout if config.timeout > 0 else 10.0,
            replicas=config.replicas,
            pool_timeout=config.pool_timeout,
            slow_query_ms=config.slow_query_ms,
            migration_lock_timeout=config.migration_lock_timeout,
        )

    # --- routing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def use_primary(self) -> Iterator[None]:
        """Send this context's reads to the primary."""
        token = self._route.set(_ROUTE_PRIMARY)
        try:
            yield
        finally:
            self._route.reset(token)

    @contextlib.contextmanager
    def use_replica(self) -> Iterator[None]:
        """Send this context's reads to a healthy replica even right after its own writes
        (accepting replication lag); the primary still serves them when none is healthy."""
        token = self._route.set(_ROUTE_REPLICA)
        try:
            yield
        finally:
            self._route.reset(token)

    def _replica_for_read(self) -> _Replica | None:
        replicas = self._replicas
        if not replicas:
            return None
        route = self._route.get()
        if route == _ROUTE_PRIMARY:
            return None
        wrote = self._last_write.get()
        n = len(replicas)
        for i in range(n):
            replica = replicas[(self._rr + i) % n]
            if replica.healthy and (
                route == _ROUTE_REPLICA or wrote == 0.0 or replica.caught_up_at >= wrote
            ):
                self._rr = (self._rr + i + 1) % n
                return replica
        return None

    def _eject(self, replica: _Replica, reason: str) -> None:
        if replica.healthy or replica.last_error is None:
            replica_log.warning("replica %s ejected: %s", replica.name, reason)
        replica.healthy = False
        replica.caught_up_at = float("-inf")
        replica.last_error = reason

    async def check_replicas(self) -> None:
        """One health check of every replica: reachable, still a standby, and caught up."""
        started = time.monotonic()
        primary_lsn: str | None = None
        try:
            async with asyncio.timeout(1.0):
                row = await self._lend(
                    self._lender,
                    "SELECT pg_current_wal_lsn()::text",
                    lambda c: c.fetchrow("SELECT pg_current_wal_lsn()::text"),
                    timed=False,
                )
            primary_lsn = row[0] if row is not None else None
        except (TimeoutError, errors.DatabaseError):
            primary_lsn = None
        for replica in self._replicas:
            await self._check_replica(replica, primary_lsn, started)

    async def _check_replica(self, replica: _Replica, lsn: str | None, started: float) -> None:
        sql = (
            "SELECT pg_is_in_recovery(), "
            "pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn())::bigint"
        )
        try:
            async with asyncio.timeout(1.0):
                row = await self._lend(
                    replica.lender, sql, lambda c: c.fetchrow(sql, lsn), timed=False
                )
        except TimeoutError:
            self._eject(replica, "no answer within 1 s")
            return
        except errors.DatabaseError as exc:
            self._eject(replica, f"{type(exc).__name__}: {exc}")
            return
        assert row is not None
        if not row[0]:
            self._eject(replica, "not a standby (promoted?)")
            return
        behind = row[1]
        replica.lag_bytes = max(int(behind), 0) if behind is not None else None
        if not replica.healthy:
            replica_log.info("replica %s in service", replica.name)
        replica.healthy = True
        replica.last_error = None
        if behind is not None and behind <= 0:
            replica.caught_up_at = started

    async def _watch(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._check_interval)
            try:
                await self.check_replicas()
            except Exception:  # keep watching; each check records its own failure
                continue

    # --- statements (called by generated repositories) ---------------------------------

    async def _lend(
        self,
        lender: _Lender,
        sql: str,
        op: Callable[[BoundConnection], Awaitable[T]],
        *,
        timed: bool = True,
    ) -> T:
        """Run ``op`` on a lent connection; return it to the idle list afterwards."""
        lent = lender.idle.pop() if lender.idle else None
        if lent is None or _gone(lent):
            lent = await lender.take(lent)
        started = time.perf_counter()
        try:
            result = await op(lent)
        except BaseException as exc:
            # Back through asyncpg's release: it waits out a cancellation and terminates
            # a broken connection.
            if isinstance(exc, asyncpg.exceptions.InternalClientError):
                _terminate(lent)
                await lender.discard(lent)
                raise errors.ConnectionUnavailable(f"cannot use the connection: {exc}") from exc
            await lender.discard(lent)
            if isinstance(exc, _DRIVER_ERRORS):
                if isinstance(exc, asyncpg.InterfaceError) and _gone(lent):
                    raise errors.ConnectionUnavailable(f"cannot use the connection: {exc}") from exc
                raise _map(exc) from exc
            raise
        finally:
            if timed and self._slow_ms is not None:
                elapsed = (time.perf_counter() - started) * 1000
                if elapsed > self._slow_ms:
                    log_slow(sql, elapsed, "postgres")
        if not lender.put(lent):
            await lender.discard(lent)
        return result

    async def _single(
        self, sql: str, op: Callable[[BoundConnection], Awaitable[T]], readonly: bool
    ) -> T:
        self._queries += 1
        tx = self._tx.get()
        if tx is not None:
            conn = tx.check_usable()
            assert isinstance(conn, _PgTx)
            started = time.perf_counter()
            lent = conn.connection
            try:
                return await op(lent)
            except _DRIVER_ERRORS as exc:
                if _is_loss(exc, lent) and not isinstance(exc, asyncpg.PostgresError):
                    # The session is gone, so the server has rolled the transaction back.
                    raise errors.ConnectionFailure(
                        f"cannot run the statement: the connection was lost ({exc})"
                    ) from exc
                raise _map(exc) from exc
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
            replica = self._replica_for_read()
            if replica is not None:
                try:
                    result = await self._lend(replica.lender, sql, op)
                except (errors.ConnectionFailure, errors.PoolTimeout) as exc:
                    self._eject(replica, type(exc).__name__)
                    continue
                replica.reads += 1
                self._replica_reads += 1
                return result
            try:
                return await self._lend(self._lender, sql, op)
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
                    return await self._lend(self._lender, sql, op)
                except errors.ConnectionUnavailable:
                    failures += 1
                    if failures > 2:
                        raise
                    await asyncio.sleep(0.05 * failures)
        finally:
            self._last_write.set(time.monotonic())

    async def fetchrow(
        self, sql: str, args: Sequence[Any], *, readonly: bool = False
    ) -> asyncpg.Record | None:
        return await self._single(sql, lambda c: c.fetchrow(sql, *args), readonly)

    async def fetch(
        self, sql: str, args: Sequence[Any], *, readonly: bool = False
    ) -> list[asyncpg.Record]:
        return await self._single(sql, lambda c: c.fetch(sql, *args), readonly)

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement; return the number of rows it affected."""
        return _rows(await self._single(sql, lambda c: c.execute(sql, *args), False))

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

        return _rows(await self._single(f"COPY {table}", op, False))

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
    async def connection(self) -> AsyncIterator[Session]:
        """``async with db.connection() as conn:`` a primary connection of your own.

        Whatever session state it gathers is reset on release, and the session object
        refuses every call after the block.
        """
        async with self._checkout() as conn:
            session = Session(conn)
            try:
                yield session
            finally:
                session._conn = None

    # --- transactions ------------------------------------------------------------------

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
                default from the TransactionConfig, else the server's).
            readonly: BEGIN ... READ ONLY.
            deferrable: with SERIALIZABLE READ ONLY, wait for a safe snapshot instead of
                risking a serialization failure.
            timeout: seconds; past it the block is cancelled and rolled back
                (TransactionTimeout), and the server enforces the same bound per statement.
        """
        nested = self._tx.get() is not None
        return Transaction(
            self._tx,
            lambda: _PgTx(self),
            self._tx_stats,
            TxOptions(
                isolation if (isolation is not None or nested) else self._tx_config.isolation,
                readonly,
                deferrable,
                timeout if (timeout is not None or nested) else self._tx_config.timeout,
            ),
        )

    def savepoint(self, name: str) -> Transaction:
        """``async with db.savepoint("before_import"):`` inside a transaction."""
        return Transaction(
            self._tx, lambda: _PgTx(self), self._tx_stats, TxOptions(), savepoint=name
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
        """Run ``fn`` in a transaction, re-running all of it after a serialization failure
        (40001), deadlock (40P01), stale statement cache or a connection lost before
        COMMIT. Only the outermost call retries: nested, ``fn`` runs once in a savepoint
        and errors propagate. ``Rollback`` raised by ``fn`` rolls back and propagates.

        Raises:
            RetriesExhausted: every attempt failed with a retryable error.
            CommitOutcomeUnknown: the connection died during COMMIT (never retried).
        """
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
            read_replicas=bool(self._replicas),
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
            assert isinstance(driver, _PgTx)
            await acquire(driver.connection, "pg_try_advisory_xact_lock")
            yield
            return
        async with self._checkout() as conn:
            await acquire(conn, "pg_try_advisory_lock")
            try:
                yield
            finally:
                if not _gone(conn):
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[Listener]:
        """``async with db.listen("events") as events:`` then ``await events.get()``."""
        listener = Listener()
        async with self._checkout() as conn:
            await conn.add_listener(channel, listener._push)
            try:
                yield listener
            finally:
                if not _gone(conn):
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

    def get_health_status(self) -> HealthStatus:
        """The pool's own view (no round trip)."""
        return HealthStatus(
            healthy=not self._closed and not self._pool.is_closing(),
            backend=BackendType.POSTGRES,
            pool=self.pool_stats(),
            transactions=self.transaction_stats,
            replicas=tuple(r.status() for r in self._replicas),
        )

    async def get_database_health(self, *, timeout: float = 5.0) -> DatabaseHealth:
        """Probe the primary: reachable, latency, schema version and table count."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                with self.use_primary():
                    row = await self.fetchrow(
                        "SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = "
                        "current_schema() AND tablename <> 'schema_version'), "
                        "to_regclass('schema_version') IS NOT NULL",
                        (),
                        readonly=True,
                    )
                latency = (time.perf_counter() - started) * 1000
                version = await self.schema_version() if row and row[1] else None
        except (TimeoutError, errors.DatabaseError) as exc:
            return DatabaseHealth(
                backend=BackendType.POSTGRES,
                reachable=False,
                latency_ms=None,
                schema_version=None,
                table_count=None,
                pool=self.pool_stats(),
                replicas=tuple(r.status() for r in self._replicas),
                error=f"{type(exc).__name__}: {exc}",
                transactions=self.transaction_stats,
            )
        assert row is not None
        return DatabaseHealth(
            backend=BackendType.POSTGRES,
            reachable=True,
            latency_ms=round(latency, 3),
            schema_version=version,
            table_count=int(row[0]),
            pool=self.pool_stats(),
            replicas=tuple(r.status() for r in self._replicas),
            transactions=self.transaction_stats,
        )

    # --- migrations and housekeeping ---------------------------------------------------

    async def applied(self) -> dict[int, Applied]:
        with self.use_primary():
            return await self._single("applied", _applied, True)

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

        With ``backup_to``, the instance that holds the migration lock and has pending
        steps dumps the database into a new folder there before any DDL (pg_dump, verified
        with pg_restore --list), and ``on_backup`` is told where (None: no pg_dump).
        """
        return await self._run_plan(
            lambda done: plan_up(migrations, done, "postgres", target),
            on_statement,
            backup_to,
            on_backup,
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
        """Run down sections until the version is ``target``; return the versions undone."""
        return await self._run_plan(
            lambda done: plan_down(migrations, done, "postgres", target),
            on_statement,
            backup_to,
            on_backup,
        )

    async def plan(
        self, migrations: Sequence[Migration], *, target: int | None = None, down: bool = False
    ) -> list[Step]:
        done = await self.applied()
        if down:
            return plan_down(migrations, done, "postgres", -1 if target is None else target)
        return plan_up(migrations, done, "postgres", target)

    async def repair(self) -> list[int]:
        """Forget interrupted migrations so they run again; return their versions."""
        rows = await self.fetch(
            "DELETE FROM schema_version WHERE NOT success RETURNING version", ()
        )
        return sorted(r[0] for r in rows)

    async def _run_plan(
        self,
        planner: Callable[[dict[int, Applied]], list[Step]],
        on_statement: Callable[[str], None] | None,
        backup_to: Path | None = None,
        on_backup: Callable[[Path | None], None] | None = None,
    ) -> list[int]:
        """Instances starting together serialise on an advisory lock taken by polling
        ``pg_try_advisory_lock``: a waiter blocked in ``pg_advisory_lock`` can be killed
        by the deadlock detector during ``CREATE INDEX CONCURRENTLY``. The holder plans
        under the lock, and backs up (when asked) only when it has steps to run."""
        done: list[int] = []
        try:
            async with self._checkout() as conn:
                await _take_migration_lock(conn, self._migration_lock_timeout)
                try:
                    steps = planner(await _applied(conn))
                    if steps and backup_to is not None:
                        tables = await conn.fetchval(COUNT_TABLES)
                        where = await asyncio.to_thread(
                            pg_dump_backup, self._dsn, backup_to, tables=int(tables)
                        )
                        if on_backup is not None:
                            on_backup(where)
                    for step in steps:
                        await _run_step(conn, step, self._lock_timeout, on_statement)
                        done.append(step.migration.version)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc
        return done

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
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._lender.close()
        await self._pool.close()
        for replica in self._replicas:
            await replica.lender.close()
            await replica.pool.close()

    def __repr__(self) -> str:
        replicas = f", replicas={len(self._replicas)}" if self._replicas else ""
        return f"PostgresDatabase({str(self._dsn)!r}{replicas})"


async def _create_pool(dsn: Secret, min_size: int, max_size: int, timeout: float) -> Pool:
    check_connection_policy(dsn)
    failure: errors.DatabaseError | None = None
    try:
        return await asyncpg.create_pool(
            dsn.reveal(),
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_reset,
            timeout=timeout,
            server_settings=SESSION_SETTINGS,
        )
    except (TimeoutError, *_DRIVER_ERRORS) as exc:
        failure = _connect_failure(exc, dsn)
    raise failure


async def connect_one(dsn: Secret, *, timeout: float = 10.0) -> Connection:
    """One asyncpg connection with this runtime's session settings and asyncpg's own
    codecs, for bulk work (COPY) that needs a connection of its own; connection errors
    are those of :meth:`PostgresDatabase.open`."""
    check_connection_policy(dsn)
    failure: errors.DatabaseError | None = None
    try:
        conn: Connection = await asyncpg.connect(
            dsn.reveal(), timeout=timeout, server_settings=SESSION_SETTINGS
        )
    except (TimeoutError, *_DRIVER_ERRORS) as exc:
        failure = _connect_failure(exc, dsn)
    else:
        return conn
    raise failure


def _connect_failure(exc: BaseException, dsn: Secret) -> errors.DatabaseError:
    """Built from the exception type and the redacted DSN only, and raised by the caller
    outside its ``except`` block: the driver's frames (kept as __context__) hold the raw DSN."""
    kind = (
        type(errors.from_sqlstate(exc.sqlstate, ""))
        if isinstance(exc, asyncpg.PostgresError)
        else errors.ConnectionFailure
    )
    sqlstate = exc.sqlstate if isinstance(exc, asyncpg.PostgresError) else None
    reason = type(exc).__name__ + (f" ({sqlstate})" if sqlstate else "")
    return kind(f"cannot connect to {dsn}: {reason}", sqlstate=sqlstate)
