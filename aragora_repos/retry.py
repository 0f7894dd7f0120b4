"""Re-running a whole transaction: which errors allow it, how long to wait, the loops.

The retry loop follows PostgreSQL's advice for serialization failures
(mvcc-serialization-failure-handling.html): "retry the complete transaction, including all
logic that decides which SQL to issue". So it re-runs the caller's whole function, only at
the outermost level (a savepoint cannot recover from 40001: the snapshot belongs to the
whole transaction), with capped exponential backoff and full jitter. The async and the
synchronous loop make the same decisions (:class:`Retry`); only their waiting differs.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from aragora_repos import errors
from aragora_repos.errors import is_retryable

if TYPE_CHECKING:
    from aragora_repos.transaction import (
        SyncTransaction,
        Transaction,
        TransactionConfig,
        TransactionStats,
    )

T = TypeVar("T")


def backoff(attempt: int, base_delay: float, max_delay: float, rng: random.Random) -> float:
    """Seconds to sleep before re-run ``attempt + 1`` (full jitter)."""
    return rng.uniform(0.0, min(max_delay, base_delay * (2**attempt)))


@dataclass(slots=True)
class Retry:
    """When to re-run a whole transaction, and how long to wait first."""

    retries: int
    base_delay: float
    max_delay: float
    stats: TransactionStats
    rng: random.Random

    def delay(self, exc: errors.DatabaseError, attempt: int) -> float | None:
        """Seconds to wait before re-running after ``exc`` ended attempt ``attempt``
        (from 0); None when ``exc`` is not retryable. Raises RetriesExhausted (chained to
        ``exc``) after the last attempt."""
        if not is_retryable(exc):
            return None
        stats = self.stats
        if isinstance(exc, errors.DeadlockDetected):
            stats.deadlocks += 1
        elif isinstance(exc, errors.SerializationFailure):
            stats.serialization_failures += 1
        if attempt >= self.retries:
            stats.exhausted += 1
            raise errors.RetriesExhausted(
                f"cannot commit the transaction: {attempt + 1} attempt(s) failed, "
                f"the last with {type(exc).__name__} ({exc.sqlstate})",
                attempts=attempt + 1,
                sqlstate=exc.sqlstate,
            ) from exc
        stats.retried += 1
        return backoff(attempt, self.base_delay, self.max_delay, self.rng)


async def run_in_transaction(
    fn: Callable[[], Awaitable[T]],
    *,
    outermost: Callable[[], Transaction] | None,
    nested: Callable[[], Transaction],
    retry: Retry,
) -> T:
    """The body of every async ``run_in_transaction``: with no ``outermost`` (a
    transaction is already open) ``fn`` runs once in a savepoint; otherwise each attempt
    opens ``outermost()`` and the whole of ``fn`` is retried as ``retry`` says. A
    ``Rollback`` raised by ``fn`` rolls back and propagates, so the result is never
    silently missing."""
    opener = nested if outermost is None else outermost
    for attempt in itertools.count():
        tx = opener()
        tx.swallow_rollback = False
        try:
            async with tx:
                value = await fn()
            return value
        except errors.DatabaseError as exc:
            wait = None if outermost is None else retry.delay(exc, attempt)
            if wait is None:
                raise
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def run_in_transaction_sync(
    fn: Callable[[], T],
    *,
    outermost: Callable[[], SyncTransaction] | None,
    nested: Callable[[], SyncTransaction],
    retry: Retry,
) -> T:
    """:func:`run_in_transaction` for the synchronous API: the same decisions, with
    ``time.sleep`` between attempts."""
    opener = nested if outermost is None else outermost
    for attempt in itertools.count():
        tx = opener()
        tx.swallow_rollback = False
        try:
            with tx:
                value = fn()
            return value
        except errors.DatabaseError as exc:
            wait = None if outermost is None else retry.delay(exc, attempt)
            if wait is None:
                raise
        time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def retry_for(
    config: TransactionConfig,
    stats: TransactionStats,
    rng: random.Random,
    *,
    retries: int | None = None,
    base_delay: float | None = None,
    max_delay: float | None = None,
) -> Retry:
    """The retry policy of one call: its own bounds where given, else ``config``'s."""
    return Retry(
        config.retries if retries is None else retries,
        config.base_delay if base_delay is None else base_delay,
        config.max_delay if max_delay is None else max_delay,
        stats,
        rng,
    )
