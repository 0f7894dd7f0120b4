"""Connections lent between single statements, and the replicas' pools."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import asyncpg

from aragora_repos import errors
from aragora_repos.backends.postgres.driver import (
    DRIVER_ERRORS,
    FULL_RESET,
    gone,
    map_error,
    terminate,
)
from aragora_repos.observability import ReplicaStatus, log_slow

if TYPE_CHECKING:
    from aragora_repos.backends.postgres.driver import BoundConnection, Lent, Pool

T = TypeVar("T")

pool_log = logging.getLogger("aragora_repos.pool")


class Lender:
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
            await self._drop(stale)
        while self.idle:
            conn = self.idle.pop()
            if not gone(conn):
                return conn
            await self._drop(conn)
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
                except DRIVER_ERRORS as exc:
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
        except DRIVER_ERRORS as exc:
            # Built outside the handler: the driver's connect frames hold the raw DSN.
            mapped = map_error(exc)
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

    async def run(
        self,
        sql: str,
        op: Callable[[BoundConnection], Awaitable[T]],
        slow_ms: float | None = None,
    ) -> T:
        """Run ``op`` on a lent connection and return it to the idle list afterwards;
        driver errors are mapped, and a run slower than ``slow_ms`` is logged."""
        lender = self
        lent = lender.idle.pop() if lender.idle else None
        if lent is None or gone(lent):
            lent = await lender.take(lent)
        started = time.perf_counter()
        try:
            result = await op(lent)
        except BaseException as exc:
            error = await lender.failed(lent, exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            if slow_ms is not None:
                elapsed = (time.perf_counter() - started) * 1000
                if elapsed > slow_ms:
                    log_slow(sql, elapsed, "postgres")
        if not lender.put(lent):
            await lender.discard(lent)
        return result

    async def failed(self, lent: Lent, exc: BaseException) -> BaseException:
        """Give back a connection whose statement raised ``exc``; return what to raise.
        The connection goes back through asyncpg's release, which waits out a
        cancellation and terminates a broken connection."""
        if isinstance(exc, asyncpg.exceptions.InternalClientError):
            terminate(lent)
            await self.discard(lent)
            return errors.ConnectionUnavailable(f"cannot use the connection: {exc}")
        await self.discard(lent)
        if isinstance(exc, DRIVER_ERRORS):
            if isinstance(exc, asyncpg.InterfaceError) and gone(lent):
                return errors.ConnectionUnavailable(f"cannot use the connection: {exc}")
            return map_error(exc)
        return exc

    def put(self, conn: Lent) -> bool:
        if self.waiting or self.closed or gone(conn) or conn.is_in_transaction():
            return False
        self.idle.append(conn)
        return True

    async def discard(self, conn: Lent, *, full_reset: bool = False) -> None:
        """Give ``conn`` back to the pool, with :data:`RESET_QUERY` when it may carry
        session state. If the reset fails, asyncpg terminates the connection (the pool
        opens a new one later) and re-raises; the caller's work is done by then, so
        that failure is not the caller's."""
        token = FULL_RESET.set(full_reset)
        try:
            with contextlib.suppress(*DRIVER_ERRORS):
                await self.pool.release(conn)
        finally:
            FULL_RESET.reset(token)

    async def _drop(self, conn: Lent) -> None:
        """Return a connection the server may have ended. asyncpg hands the holder of a
        connection it sees closed back to the pool by itself (``Connection._cleanup``);
        seen closed before that cleanup ran, a release can meet the holder already free
        (InternalClientError), which only means it is back."""
        with contextlib.suppress(*DRIVER_ERRORS):
            await self.pool.release(conn)

    async def close(self) -> None:
        self.closed = True
        while self.idle:
            await self._drop(self.idle.pop())

    def free(self) -> int:
        return len(self.idle) + self.pool.get_idle_size()


class Replica:
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
        self.lender = Lender(pool, timeout=timeout, label=name)
        self.healthy = False
        self.caught_up_at = float("-inf")
        self.lag_bytes: int | None = None
        self.last_error: str | None = None
        self.reads = 0

    def status(self) -> ReplicaStatus:
        return ReplicaStatus(self.name, self.healthy, self.reads, self.lag_bytes, self.last_error)
