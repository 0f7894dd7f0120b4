"""PostgreSQL backend on an asyncpg pool.

Outside a transaction a call runs on any pooled connection; inside ``transaction()`` the
connection is bound to the current context, and nested blocks become savepoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from aragora_repos import errors
from aragora_repos.codec import encode_json
from aragora_repos.config import Secret, redact_dsn
from aragora_repos.migrations import (
    ADVISORY_LOCK_KEY,
    SCHEMA_VERSION_POSTGRES,
    Migration,
    pending,
)
from aragora_repos.transaction import Isolation
from aragora_repos.types import JSON

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]
    BoundConnection: TypeAlias = Connection | PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]


def _jsonb_encode(value: JSON) -> bytes:
    return b"\x01" + encode_json(value).encode()  # jsonb binary format: version 1, then text


def _jsonb_decode(data: bytes) -> JSON:
    return json.loads(data[1:])  # type: ignore[no-any-return]


def _json_encode(value: JSON) -> bytes:
    return encode_json(value).encode()


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


#: UTC sessions: date_trunc and timestamptz text casts then agree with SQLite's storage form.
SESSION_SETTINGS = {"timezone": "UTC"}

_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def _rows(status: str) -> int:
    """Rows affected from a command tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresDatabase:
    """An asyncpg pool with JSON codecs, error mapping and context-bound transactions."""

    __slots__ = ("_conn", "_dsn", "_pool")

    def __init__(self, pool: Pool, dsn: Secret) -> None:
        self._pool = pool
        self._dsn = dsn
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

    async def fetchrow(
        self, sql: str, args: Sequence[Any], *, readonly: bool = False
    ) -> asyncpg.Record | None:
        conn = self._conn.get()
        try:
            if conn is None:
                return await self._pool.fetchrow(sql, *args)
            return await conn.fetchrow(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc

    async def fetch(
        self, sql: str, args: Sequence[Any], *, readonly: bool = False
    ) -> list[asyncpg.Record]:
        conn = self._conn.get()
        try:
            if conn is None:
                return await self._pool.fetch(sql, *args)
            return await conn.fetch(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement; return the number of rows it affected."""
        conn = self._conn.get()
        try:
            if conn is None:
                status = await self._pool.execute(sql, *args)
            else:
                status = await conn.execute(sql, *args)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc
        return _rows(status)

    async def copy_records(
        self, table: str, columns: Sequence[str], records: Iterable[Sequence[Any]]
    ) -> int:
        """Bulk insert with binary COPY; return the number of rows copied."""
        conn = self._conn.get()
        try:
            if conn is None:
                async with self._pool.acquire() as acquired:
                    status = await acquired.copy_records_to_table(
                        table, records=records, columns=list(columns)
                    )
            else:
                status = await conn.copy_records_to_table(
                    table, records=records, columns=list(columns)
                )
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc
        return _rows(status)

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
            async with self._pool.acquire() as acquired:
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

    async def migrate(self, migrations: Sequence[Migration]) -> list[int]:
        """Apply pending migrations, each with its version row in one transaction.

        Instances starting together serialise on an advisory lock taken by polling
        ``pg_try_advisory_lock``: a waiter blocked in ``pg_advisory_lock`` can be killed
        by the deadlock detector during ``CREATE INDEX CONCURRENTLY``.
        """
        applied: list[int] = []
        try:
            async with self._pool.acquire() as conn:
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY):
                    await asyncio.sleep(0.1)
                try:
                    await conn.execute(SCHEMA_VERSION_POSTGRES)
                    rows = await conn.fetch("SELECT version, checksum FROM schema_version")
                    for m in pending(migrations, {r[0]: r[1] for r in rows}):
                        started = time.perf_counter()
                        async with conn.transaction():
                            try:
                                await conn.execute(m.postgres_up)
                            except asyncpg.PostgresError as exc:
                                raise errors.MigrationError(
                                    f"cannot apply migration {m.version:04d}_{m.name} on "
                                    f"postgresql: {exc} ({exc.sqlstate})"
                                ) from exc
                            await conn.execute(
                                "INSERT INTO schema_version (version, name, checksum, "
                                "execution_ms) VALUES ($1, $2, $3, $4)",
                                m.version,
                                m.name,
                                m.checksum,
                                (time.perf_counter() - started) * 1000,
                            )
                        applied.append(m.version)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc
        return applied

    async def schema_version(self) -> int | None:
        try:
            value = await self._pool.fetchval(
                "SELECT max(version) FROM schema_version "
                "WHERE to_regclass('schema_version') IS NOT NULL"
            )
        except asyncpg.UndefinedTableError:
            return None
        except _DRIVER_ERRORS as exc:
            raise _map(exc) from exc
        return int(value) if value is not None else None

    async def close(self) -> None:
        await self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresDatabase({redact_dsn(self._dsn.reveal())!r})"
