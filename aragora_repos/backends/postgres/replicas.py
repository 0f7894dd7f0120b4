"""Read replicas: which one serves a read, and the health checks that decide it.

A context that wrote at time W reads from a replica only once a health check that began
after W saw the replica's replay position reach the primary's WAL position, which
covers every commit acknowledged before W (``pg_current_wal_lsn`` vs
``pg_last_wal_replay_lsn``, functions-admin.html). Until then its reads go to the
primary. :meth:`Replicas.use_primary` and :meth:`Replicas.use_replica` force either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

from aragora_repos import errors
from aragora_repos.backends.postgres.pool import Lender, Replica
from aragora_repos.observability import ReplicaStatus

replica_log = logging.getLogger("aragora_repos.replicas")

_PRIMARY = "primary"
_REPLICA = "replica"
_BEHIND = (
    "SELECT pg_is_in_recovery(), "
    "pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn())::bigint"
)


class Replicas:
    """The replicas of one primary, round-robin among the healthy ones."""

    __slots__ = ("_last_write", "_route", "_rr", "_watcher", "check_interval", "members", "reads")

    def __init__(self, members: Sequence[Replica], check_interval: float) -> None:
        self.members = list(members)
        self.check_interval = check_interval
        self.reads = 0
        self._rr = 0
        self._route: ContextVar[str | None] = ContextVar(
            f"aragora_pg_route_{id(self)}", default=None
        )
        self._last_write: ContextVar[float] = ContextVar(
            f"aragora_pg_wrote_{id(self)}", default=0.0
        )
        self._watcher: asyncio.Task[None] | None = None

    def wrote(self) -> None:
        """This context has just written (its next reads wait for a caught-up replica)."""
        self._last_write.set(time.monotonic())

    @contextlib.contextmanager
    def use_primary(self) -> Iterator[None]:
        token = self._route.set(_PRIMARY)
        try:
            yield
        finally:
            self._route.reset(token)

    @contextlib.contextmanager
    def use_replica(self) -> Iterator[None]:
        token = self._route.set(_REPLICA)
        try:
            yield
        finally:
            self._route.reset(token)

    def for_read(self) -> Replica | None:
        """A replica that may serve this context's read now, or None (the primary)."""
        members = self.members
        if not members:
            return None
        route = self._route.get()
        if route == _PRIMARY:
            return None
        wrote = self._last_write.get()
        n = len(members)
        for i in range(n):
            replica = members[(self._rr + i) % n]
            if replica.healthy and (
                route == _REPLICA or wrote == 0.0 or replica.caught_up_at >= wrote
            ):
                self._rr = (self._rr + i + 1) % n
                return replica
        return None

    def eject(self, replica: Replica, reason: str) -> None:
        if replica.healthy or replica.last_error is None:
            replica_log.warning("replica %s ejected: %s", replica.name, reason)
        replica.healthy = False
        replica.caught_up_at = float("-inf")
        replica.last_error = reason

    async def check(self, primary: Lender) -> None:
        """One health check of every replica: reachable, still a standby, and caught up."""
        started = time.monotonic()
        sql = "SELECT pg_current_wal_lsn()::text"
        primary_lsn: str | None = None
        try:
            async with asyncio.timeout(1.0):
                row = await primary.run(sql, lambda c: c.fetchrow(sql))
            primary_lsn = row[0] if row is not None else None
        except (TimeoutError, errors.DatabaseError):
            primary_lsn = None
        for replica in self.members:
            await self._check_one(replica, primary_lsn, started)

    async def _check_one(self, replica: Replica, lsn: str | None, started: float) -> None:
        try:
            async with asyncio.timeout(1.0):
                row = await replica.lender.run(_BEHIND, lambda c: c.fetchrow(_BEHIND, lsn))
        except TimeoutError:
            self.eject(replica, "no answer within 1 s")
            return
        except errors.DatabaseError as exc:
            self.eject(replica, f"{type(exc).__name__}: {exc}")
            return
        assert row is not None
        if not row[0]:
            self.eject(replica, "not a standby (promoted?)")
            return
        behind = row[1]
        replica.lag_bytes = max(int(behind), 0) if behind is not None else None
        if not replica.healthy:
            replica_log.info("replica %s in service", replica.name)
        replica.healthy = True
        replica.last_error = None
        if behind is not None and behind <= 0:
            replica.caught_up_at = started

    def watch(self, primary: Lender) -> None:
        """Check every ``check_interval`` seconds until :meth:`close`."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self.check_interval)
                try:
                    await self.check(primary)
                except Exception:  # keep watching; each check records its own failure
                    continue

        self._watcher = asyncio.get_running_loop().create_task(loop())

    def status(self) -> tuple[ReplicaStatus, ...]:
        return tuple(r.status() for r in self.members)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for replica in self.members:
            await replica.lender.close()
            await replica.pool.close()
