"""What a PostgreSQL connection is lent as: a transaction's driver, a session, a listener."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncpg

from aragora_repos import errors
from aragora_repos.backends.postgres.driver import (
    DRIVER_ERRORS,
    gone,
    is_loss,
    map_error,
    terminate,
)
from aragora_repos.transaction import TxOptions

if TYPE_CHECKING:
    from aragora_repos.backends.postgres.driver import BoundConnection, Lent
    from aragora_repos.backends.postgres.pool import Lender
    from aragora_repos.backends.postgres.replicas import Replicas


class PgTx:
    """The transaction driver: one pooled primary connection from BEGIN to release."""

    __slots__ = ("conn", "lender", "readonly", "replicas", "rollback_timeout")

    def __init__(self, lender: Lender, replicas: Replicas, rollback_timeout: float) -> None:
        self.lender = lender
        self.replicas = replicas
        self.rollback_timeout = rollback_timeout
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
        lender = self.lender
        for attempt in range(3):
            conn = await lender.take()
            try:
                await conn.execute(sql)
            except BaseException as exc:
                terminate(conn)
                await lender.discard(conn)
                if isinstance(exc, DRIVER_ERRORS):
                    # A dead pooled connection (server restart) is replaced: BEGIN has
                    # no effect, so trying again on a new connection is always safe.
                    if is_loss(exc, conn) and attempt < 2:
                        continue
                    raise map_error(exc) from exc
                raise
            self.conn = conn
            return
        raise AssertionError("unreachable")  # pragma: no cover

    async def commit(self) -> None:
        conn = self.connection
        if gone(conn):
            # Lost before COMMIT was sent: the server rolled the transaction back.
            raise errors.ConnectionFailure(
                "cannot commit: the connection was lost before COMMIT; the server rolled "
                "the transaction back"
            )
        try:
            status = await conn.execute("COMMIT")
        except asyncio.CancelledError:
            terminate(conn)
            raise
        except DRIVER_ERRORS as exc:
            if isinstance(exc, asyncpg.InterfaceError) and gone(conn):
                raise errors.ConnectionFailure(
                    "cannot commit: the connection was lost before COMMIT was sent; the "
                    "server rolled the transaction back"
                ) from exc
            if is_loss(exc, conn):
                raise errors.CommitOutcomeUnknown(
                    "cannot tell whether the transaction committed: the connection was lost "
                    "while COMMIT was in flight; check for its effects before running it again"
                ) from exc
            raise map_error(exc) from exc
        finally:
            if not self.readonly:
                self.replicas.wrote()
        if status == "ROLLBACK":
            raise errors.TransactionError(
                "cannot commit: an earlier error aborted the transaction; it was rolled back",
                sqlstate="25P02",
            )

    async def rollback(self) -> None:
        conn = self.connection
        try:
            if not gone(conn):
                await asyncio.wait_for(conn.execute("ROLLBACK"), self.rollback_timeout)
        except asyncio.CancelledError:
            terminate(conn)
            raise
        except (TimeoutError, *DRIVER_ERRORS):
            terminate(conn)  # the server rolls back a transaction whose session ends
        finally:
            if not self.readonly:
                self.replicas.wrote()

    async def abandon(self) -> None:
        # After a cancellation the connection may be mid-statement: terminating it is the
        # only state that is certain (the server rolls back; psycopg_pool closes ACTIVE).
        terminate(self.connection)
        if not self.readonly:
            self.replicas.wrote()

    async def _run(self, sql: str) -> None:
        try:
            await self.connection.execute(sql)
        except DRIVER_ERRORS as exc:
            raise map_error(exc) from exc

    async def savepoint(self, name: str) -> None:
        await self._run(f'SAVEPOINT "{name}"')

    async def release(self, name: str) -> None:
        await self._run(f'RELEASE SAVEPOINT "{name}"')

    async def rollback_to(self, name: str) -> None:
        await self._run(f'ROLLBACK TO SAVEPOINT "{name}"')

    def is_open(self) -> bool:
        conn = self.conn
        return conn is not None and not gone(conn) and conn.is_in_transaction()

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await self.lender.discard(conn, full_reset=True)


class Session:
    """A primary connection checked out with :meth:`PostgresDatabase.connection`.

    Session state (SET, SET ROLE, temporary tables, PREPARE, LISTEN, advisory locks,
    cursors) is reset when it goes back; any call after that raises InterfaceError.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: BoundConnection) -> None:
        self._conn: BoundConnection | None = conn

    def _live(self) -> BoundConnection:
        if self._conn is None:
            raise errors.InterfaceError("cannot use the connection: it was released to the pool")
        return self._conn

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self._live().fetch(sql, *args)
        except DRIVER_ERRORS as exc:
            raise map_error(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self._live().fetchrow(sql, *args)
        except DRIVER_ERRORS as exc:
            raise map_error(exc) from exc

    async def fetchval(self, sql: str, *args: Any) -> Any:
        try:
            return await self._live().fetchval(sql, *args)
        except DRIVER_ERRORS as exc:
            raise map_error(exc) from exc

    async def execute(self, sql: str, *args: Any) -> str:
        try:
            return await self._live().execute(sql, *args)
        except DRIVER_ERRORS as exc:
            raise map_error(exc) from exc

    @property
    def raw(self) -> BoundConnection:
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
