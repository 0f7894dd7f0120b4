"""PostgreSQL backend on an asyncpg pool.

Outside a transaction a call runs on any pooled connection; inside ``transaction()`` the
connection is bound to the current context, and nested blocks become savepoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from aragora_repos import errors
from aragora_repos.codec import json_text
from aragora_repos.config import Secret, redact_dsn
from aragora_repos.migrations import (
    ADVISORY_LOCK_KEY,
    SCHEMA_VERSION_POSTGRES,
    Applied,
    Migration,
    Step,
    plan_down,
    plan_up,
)
from aragora_repos.transaction import Isolation
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


def _map(exc: BaseException) -> errors.DatabaseError:
    if isinstance(exc, asyncpg.PostgresError):
        return errors.from_sqlstate(exc.sqlstate, str(exc))
    if isinstance(exc, asyncpg.DataError):  # a parameter the client cannot encode
        return errors.DataError(f"cannot encode a parameter: {exc}", sqlstate="22000")
    if isinstance(exc, asyncpg.InterfaceError):
        return errors.InterfaceError(f"cannot use the connection: {exc}")
    return errors.ConnectionFailure(f"cannot reach postgresql: {type(exc).__name__}: {exc}")


#: Set while a connection is used for work that may change session state (transactions,
#: migrations): its release then runs asyncpg's full reset query.
_FULL_RESET: ContextVar[bool] = ContextVar("aragora_pg_full_reset", default=False)


async def _reset(conn: Connection) -> None:
    """Pool reset hook. asyncpg has already rolled back any open transaction and removed
    listeners (``Connection._reset``) before calling it. A single generated statement run
    outside a transaction cannot leave session state behind, so its release skips the
    reset query, which would otherwise cost a second round trip per call; releases from
    transactions and migrations run it (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL)."""
    if _FULL_RESET.get():
        query = conn.get_reset_query()
        if query:
            await conn.execute(query)


#: UTC sessions: date_trunc and timestamptz text casts then agree with SQLite's storage form.
SESSION_SETTINGS = {"timezone": "UTC"}

T = TypeVar("T")

_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


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
    return {r[0]: Applied(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows}


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


def pg_dump(dsn: Secret, directory: Path) -> Path | None:
    """Dump with pg_dump when installed; the password goes by PGPASSWORD, never argv."""
    binary = shutil.which("pg_dump") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"), reverse=True)), None
    )
    if binary is None:
        return None
    parts = urlsplit(dsn.reveal())
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    host = parts.hostname or "localhost"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    safe = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{(parts.path.strip('/') or 'postgres')}.dump"
    proc = subprocess.run(
        [binary, "--format=custom", f"--file={target}", safe],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise errors.MigrationError(
            f"cannot back up {redact_dsn(dsn.reveal())}: pg_dump "
            f"exited {proc.returncode}: {proc.stderr.strip()[:300]}"
        )
    return target


class _Lender:
    """Connections kept out of the asyncpg pool between single statements.

    ``Pool.fetchrow`` costs about 60 us more than the same call on a held connection on
    this machine kind (acquire, then a release shielded in a new task), against a
    150-200 us round trip. Here borrowing and returning an idle connection are list
    operations with no await. Every acquisition goes through :meth:`borrow`, and a
    connection is returned to the pool instead of the idle list while anyone waits, so
    idle connections never starve a waiter.
    """

    __slots__ = ("idle", "pool", "waiting")

    def __init__(self, pool: Pool) -> None:
        self.idle: list[Lent] = []
        self.pool = pool
        self.waiting = 0

    async def borrow(self) -> Lent:
        self.waiting += 1
        try:
            return await self.pool.acquire()
        finally:
            self.waiting -= 1

    def put(self, conn: Lent) -> bool:
        if self.waiting or conn.is_closed() or conn.is_in_transaction():
            return False
        self.idle.append(conn)
        return True

    async def discard(self, conn: Lent) -> None:
        await self.pool.release(conn)

    async def close(self) -> None:
        while self.idle:
            await self.pool.release(self.idle.pop())


class PostgresDatabase:
    """An asyncpg pool with JSON codecs, error mapping and context-bound transactions."""

    __slots__ = ("_conn", "_dsn", "_lender", "_lock_timeout", "_pool")

    def __init__(self, pool: Pool, dsn: Secret, *, lock_timeout: float = 5.0) -> None:
        self._pool = pool
        self._lender = _Lender(pool)
        self._dsn = dsn
        self._lock_timeout = lock_timeout
        self._conn: ContextVar[BoundConnection | None] = ContextVar(
            f"aragora_pg_conn_{id(self)}", default=None
        )

    @classmethod
    async def open(
        cls, dsn: Secret, *, min_size: int = 1, max_size: int = 10, timeout: float = 10.0
    ) -> PostgresDatabase:
        failure: errors.DatabaseError | None = None
        try:
            pool = await asyncpg.create_pool(
                dsn.reveal(),
                min_size=min_size,
                max_size=max_size,
                init=_init_connection,
                reset=_reset,
                timeout=timeout,
                server_settings=SESSION_SETTINGS,
            )
        except (TimeoutError, *_DRIVER_ERRORS) as exc:
            # Built from the exception type and the redacted DSN only, and raised outside
            # this block: the driver's frames (kept as __context__) hold the raw DSN.
            failure = (
                errors.from_sqlstate(exc.sqlstate, "")
                if isinstance(exc, asyncpg.PostgresError)
                else errors.ConnectionFailure("")
            )
            reason = type(exc).__name__ + (
                f" ({exc.sqlstate})" if isinstance(exc, asyncpg.PostgresError) else ""
            )
            failure = type(failure)(
                f"cannot connect to {redact_dsn(dsn.reveal())}: {reason}", sqlstate=failure.sqlstate
            )
        if failure is not None:
            raise failure
        assert pool is not None
        return cls(pool, dsn)

    # --- statements (called by generated repositories) ---------------------------------

    async def _single(self, op: Callable[[BoundConnection], Awaitable[T]]) -> T:
        """Run one operation on the transaction's connection, or on a lent one."""
        conn = self._conn.get()
        if conn is not None:
            try:
                return await op(conn)
            except _DRIVER_ERRORS as exc:
                raise _map(exc) from exc
        lender = self._lender
        lent = lender.idle.pop() if lender.idle else await lender.borrow()
        try:
            result = await op(lent)
        except BaseException as exc:
            # Back through asyncpg's release: it waits out a cancellation and terminates
            # a broken connection.
            await lender.discard(lent)
            if isinstance(exc, _DRIVER_ERRORS):
                raise _map(exc) from exc
            raise
        if not lender.put(lent):
            await lender.discard(lent)
        return result

    async def fetchrow(
        self, sql: str, args: Sequence[Any], *, readonly: bool = False
    ) -> asyncpg.Record | None:
        return await self._single(lambda c: c.fetchrow(sql, *args))

    async def fetch(
        self, sql: str, args: Sequence[Any], *, readonly: bool = False
    ) -> list[asyncpg.Record]:
        return await self._single(lambda c: c.fetch(sql, *args))

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement; return the number of rows it affected."""
        return _rows(await self._single(lambda c: c.execute(sql, *args)))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run a statement per row (asyncpg pipelines them; atomic); return len(rows)."""
        await self._single(lambda c: c.executemany(sql, rows))
        return len(rows)

    async def copy_records(
        self, table: str, columns: Sequence[str], records: Iterable[Sequence[Any]]
    ) -> int:
        """Bulk insert with binary COPY; return the number of rows copied."""
        return _rows(
            await self._single(
                lambda c: c.copy_records_to_table(table, records=records, columns=list(columns))
            )
        )

    @contextlib.asynccontextmanager
    async def _checkout(self) -> AsyncIterator[BoundConnection]:
        """A connection for work that may change session state (transactions,
        migrations); on release it gets asyncpg's full reset and returns to the pool."""
        lender = self._lender
        full = _FULL_RESET.set(True)
        conn = lender.idle.pop() if lender.idle else await lender.borrow()
        try:
            yield conn
        finally:
            await lender.discard(conn)
            _FULL_RESET.reset(full)

    # --- transactions ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(
        self, *, isolation: Isolation | None = None, readonly: bool = False
    ) -> AsyncIterator[None]:
        """``async with db.transaction():``; nested blocks become savepoints."""
        conn = self._conn.get()
        if conn is not None:
            if isolation is not None:
                raise errors.TransactionError("cannot set isolation on a nested transaction")
            try:
                async with conn.transaction():
                    yield
            except _DRIVER_ERRORS as exc:
                raise _map(exc) from exc
            return
        try:
            async with self._checkout() as acquired:
                token = self._conn.set(acquired)
                try:
                    async with acquired.transaction(
                        isolation=isolation.value if isolation else None, readonly=readonly
                    ):
                        yield
                finally:
                    self._conn.reset(token)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc

    # --- migrations and housekeeping ---------------------------------------------------

    async def applied(self) -> dict[int, Applied]:
        return await self._single(_applied)

    async def migrate(
        self,
        migrations: Sequence[Migration],
        *,
        target: int | None = None,
        on_statement: Callable[[str], None] | None = None,
    ) -> list[int]:
        """Apply pending migrations (up to ``target``); return the versions applied."""
        return await self._run_plan(
            lambda done: plan_up(migrations, done, "postgres", target), on_statement
        )

    async def migrate_down(
        self,
        migrations: Sequence[Migration],
        *,
        target: int,
        on_statement: Callable[[str], None] | None = None,
    ) -> list[int]:
        """Run down sections until the version is ``target``; return the versions undone."""
        return await self._run_plan(
            lambda done: plan_down(migrations, done, "postgres", target), on_statement
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
    ) -> list[int]:
        """Instances starting together serialise on an advisory lock taken by polling
        ``pg_try_advisory_lock``: a waiter blocked in ``pg_advisory_lock`` can be killed
        by the deadlock detector during ``CREATE INDEX CONCURRENTLY``."""
        done: list[int] = []
        try:
            async with self._checkout() as conn:
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY):
                    await asyncio.sleep(0.1)
                try:
                    await conn.execute(SCHEMA_VERSION_POSTGRES)
                    for step in planner(await _applied(conn)):
                        await _run_step(conn, step, self._lock_timeout, on_statement)
                        done.append(step.migration.version)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc
        return done

    async def backup(self, directory: Path) -> Path | None:
        """``pg_dump --format=custom`` into ``directory``; None when pg_dump is missing."""
        return await asyncio.to_thread(pg_dump, self._dsn, directory)

    async def schema_version(self) -> int | None:
        try:
            value = await self._single(
                lambda c: c.fetchval("SELECT max(version) FROM schema_version WHERE success")
            )
        except errors.ProgrammingError as exc:
            if exc.sqlstate == "42P01":  # no schema_version table yet
                return None
            raise
        return int(value) if value is not None else None

    async def close(self) -> None:
        await self._lender.close()
        await self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresDatabase({redact_dsn(self._dsn.reveal())!r})"
