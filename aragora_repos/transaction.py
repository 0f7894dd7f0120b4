"""Transaction options, counters and the retry loop shared by both backends.

The retry loop follows PostgreSQL's advice for serialization failures
(mvcc-serialization-failure-handling.html): "retry the complete transaction, including all
logic that decides which SQL to issue". So it re-runs the caller's whole function, only at
the outermost level (a savepoint cannot recover from 40001: the snapshot belongs to the
whole transaction), with capped exponential backoff and full jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, fields
from enum import StrEnum
from types import TracebackType
from typing import TypeVar

from aragora_repos import errors
from aragora_repos.abc import TxDriver
from aragora_repos.transaction_options import Isolation, TxOptions

__all__ = [
    "Isolation",
    "Rollback",
    "Transaction",
    "TransactionConfig",
    "TransactionStats",
    "TxOptions",
    "TxState",
]

T = TypeVar("T")


class TxState(StrEnum):
    """The life of one transaction or savepoint block."""

    NEW = "new"
    ACTIVE = "active"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


class Rollback(Exception):
    """Raise inside ``transaction()`` or ``savepoint()`` to roll that block back on purpose.

    The block that catches it (the innermost) rolls back and swallows it; code after the
    ``async with`` continues normally.
    """


@dataclass(frozen=True, slots=True)
class TransactionConfig:
    """Defaults for ``run_in_transaction`` and ``transaction``.

    Attributes:
        retries: re-runs after the first attempt (so ``retries + 1`` attempts at most).
        base_delay: seconds; attempt ``i`` (from 0) sleeps a uniform draw in
            ``[0, min(max_delay, base_delay * 2**i)]`` ("full jitter").
        max_delay: cap on one sleep, in seconds.
        isolation: the default isolation level (None: the server's default).
        timeout: default seconds a transaction may run before it is rolled back.
    """

    retries: int = 5
    base_delay: float = 0.01
    max_delay: float = 1.0
    isolation: Isolation | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.retries < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise errors.ConfigError(
                "invalid TransactionConfig: retries, base_delay and max_delay must be >= 0"
            )


@dataclass(slots=True)
class TransactionStats:
    """Counters for one database object (outermost transactions only; savepoints are
    not transactions)."""

    started: int = 0
    committed: int = 0
    rolled_back: int = 0
    retried: int = 0
    deadlocks: int = 0
    serialization_failures: int = 0
    exhausted: int = 0
    commit_unknown: int = 0
    timeouts: int = 0

    def snapshot(self) -> TransactionStats:
        return TransactionStats(**{f.name: getattr(self, f.name) for f in fields(self)})


#: Errors after which re-running the whole transaction is safe and may succeed. A lost
#: connection is here because the server rolls back a transaction whose COMMIT it never
#: received; a loss during COMMIT is CommitOutcomeUnknown, which is never retried.
RETRYABLE: tuple[type[errors.DatabaseError], ...] = (
    errors.SerializationFailure,
    errors.DeadlockDetected,
    errors.ConnectionFailure,
    errors.DatabaseBusy,
)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, errors.CommitOutcomeUnknown):
        return False
    if isinstance(exc, errors.ConnectionFailure) and exc.sqlstate == "57014":
        return False
    return isinstance(exc, RETRYABLE) or getattr(exc, "retryable", False) is True


def backoff(attempt: int, base_delay: float, max_delay: float, rng: random.Random) -> float:
    """Seconds to sleep before re-run ``attempt + 1`` (full jitter)."""
    return rng.uniform(0.0, min(max_delay, base_delay * (2**attempt)))


async def retry_loop(
    attempt: Callable[[], Awaitable[T]],
    *,
    retries: int,
    base_delay: float,
    max_delay: float,
    stats: TransactionStats,
    rng: random.Random,
) -> T:
    """Call ``attempt`` until it succeeds, fails with a non-retryable error, or
    ``retries`` re-runs have failed (then RetriesExhausted, chained to the last error)."""
    for i in range(retries + 1):
        try:
            return await attempt()
        except errors.DatabaseError as exc:
            if not is_retryable(exc):
                raise
            if isinstance(exc, errors.DeadlockDetected):
                stats.deadlocks += 1
            elif isinstance(exc, errors.SerializationFailure):
                stats.serialization_failures += 1
            if i == retries:
                stats.exhausted += 1
                raise errors.RetriesExhausted(
                    f"cannot commit the transaction: {i + 1} attempt(s) failed, "
                    f"the last with {type(exc).__name__} ({exc.sqlstate})",
                    attempts=i + 1,
                    sqlstate=exc.sqlstate,
                ) from exc
            stats.retried += 1
            await asyncio.sleep(backoff(i, base_delay, max_delay, rng))
    raise AssertionError("unreachable")  # pragma: no cover


async def run_in_transaction(
    fn: Callable[[], Awaitable[T]],
    *,
    outermost: Callable[[], Transaction] | None,
    nested: Callable[[], Transaction],
    config: TransactionConfig,
    stats: TransactionStats,
    rng: random.Random,
    retries: int | None,
    base_delay: float | None,
    max_delay: float | None,
) -> T:
    """The body of both backends' ``run_in_transaction``: with no ``outermost`` (a
    transaction is already open) ``fn`` runs once in a savepoint; otherwise each attempt
    opens ``outermost()`` and the whole of ``fn`` is retried. A ``Rollback`` raised by
    ``fn`` rolls back and propagates, so the result is never silently missing."""
    if outermost is None:
        block = nested()
        block.swallow_rollback = False
        async with block:
            result = await fn()
        return result
    opener = outermost

    async def attempt() -> T:
        tx = opener()
        tx.swallow_rollback = False
        async with tx:
            value = await fn()
        return value

    return await retry_loop(
        attempt,
        retries=config.retries if retries is None else retries,
        base_delay=config.base_delay if base_delay is None else base_delay,
        max_delay=config.max_delay if max_delay is None else max_delay,
        stats=stats,
        rng=rng,
    )


_SAVEPOINT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def savepoint_name(name: str) -> str:
    """A validated savepoint identifier (letters, digits, underscore; at most 63 bytes)."""
    if not _SAVEPOINT_NAME.fullmatch(name):
        raise errors.InterfaceError(
            f"cannot create savepoint {name!r}: expected letters, digits and underscores, "
            "starting with a letter or underscore, at most 63 characters"
        )
    return name


class Transaction:
    """One ``async with db.transaction(...)`` or ``db.savepoint(name)`` block.

    The outermost block owns a connection (PostgreSQL) or the write lock (SQLite) and
    runs BEGIN / COMMIT / ROLLBACK; a nested block is a savepoint on the same connection.
    The state machine refuses misuse instead of guessing:

    * a block object is entered once; a statement after its end raises InterfaceError;
    * a transaction is used only by the task that opened it (a child task inherits the
      context, and sharing one connection between tasks corrupts it);
    * a nested block cannot change isolation, read-only or deferrable;
    * a serialization failure, deadlock, lost connection or cancellation inside a
      savepoint is not recoverable there (the snapshot belongs to the whole transaction,
      rails#44127): the outermost block then refuses to commit and re-raises it.

    Raising :class:`Rollback` rolls the innermost block back and is swallowed there.
    """

    __slots__ = (
        "_deadline",
        "_driver",
        "_host_var",
        "_name",
        "_new_driver",
        "_options",
        "_stats",
        "_token",
        "depth",
        "doomed",
        "root",
        "state",
        "swallow_rollback",
        "task",
    )

    def __init__(
        self,
        host_var: ContextVar[Transaction | None],
        new_driver: Callable[[], TxDriver],
        stats: TransactionStats,
        options: TxOptions,
        *,
        savepoint: str | None = None,
        swallow_rollback: bool = True,
    ) -> None:
        self._host_var = host_var
        self._new_driver = new_driver
        self._stats = stats
        self._options = options
        self._name = savepoint_name(savepoint) if savepoint is not None else None
        self._driver: TxDriver | None = None
        self._deadline: asyncio.Timeout | None = None
        self._token: Token[Transaction | None] | None = None
        self.swallow_rollback = swallow_rollback
        self.state = TxState.NEW
        self.root: Transaction = self
        self.depth = 0
        self.doomed: errors.DatabaseError | None = None
        self.task: asyncio.Task[object] | None = None

    @property
    def is_savepoint(self) -> bool:
        return self.root is not self

    @property
    def name(self) -> str | None:
        """The savepoint name (None for the outermost block)."""
        return self._name

    @property
    def driver(self) -> TxDriver:
        if self.root._driver is None:
            raise errors.InterfaceError("cannot use the transaction: it has not begun")
        return self.root._driver

    def check_usable(self) -> TxDriver:
        """The driver, if a statement may run in this transaction now."""
        root = self.root
        if root.state is not TxState.ACTIVE or self.state is not TxState.ACTIVE:
            raise errors.InterfaceError(
                f"cannot run a statement: the transaction is {self.state.value}"
            )
        if root.task is not asyncio.current_task():
            raise errors.InterfaceError(
                "cannot run a statement in a transaction opened by another task"
            )
        return self.driver

    def doom(self, exc: errors.DatabaseError) -> None:
        """Mark the whole transaction as unable to commit."""
        if self.root.doomed is None:
            self.root.doomed = exc

    async def __aenter__(self) -> Transaction:
        if self.state is not TxState.NEW:
            raise errors.InterfaceError(
                f"cannot enter a transaction block twice (it is {self.state.value})"
            )
        parent = self._host_var.get()
        if parent is not None and parent.root.state is not TxState.ACTIVE:
            parent = None  # a stale context value, e.g. a task created inside a block
        if parent is None:
            if self._name is not None:
                raise errors.InterfaceError(
                    f"cannot create savepoint {self._name}: no transaction is open"
                )
            await self._begin_root()
        else:
            await self._begin_savepoint(parent)
        self.task = asyncio.current_task()
        self._token = self._host_var.set(self)
        self.state = TxState.ACTIVE
        return self

    async def _begin_root(self) -> None:
        driver = self._new_driver()
        await driver.begin(self._options)
        self._driver = driver
        self._stats.started += 1
        if self._options.timeout is not None:
            self._deadline = asyncio.timeout(self._options.timeout)
            await self._deadline.__aenter__()

    async def _begin_savepoint(self, parent: Transaction) -> None:
        opts, root_opts = self._options, parent.root._options
        if (opts.isolation is not None and opts.isolation != root_opts.isolation) or (
            opts.deferrable and not root_opts.deferrable
        ):
            raise errors.TransactionError(
                "cannot change isolation or deferrable in a nested transaction block"
            )
        if opts.readonly and not root_opts.readonly:
            raise errors.TransactionError(
                "cannot make a nested block read-only inside a read-write transaction"
            )
        if opts.timeout is not None:
            raise errors.TransactionError("cannot set a timeout on a nested transaction block")
        driver = parent.check_usable()
        self.root = parent.root
        self.depth = parent.depth + 1
        if self._name is None:
            self._name = f"sp_{self.depth}"
        await driver.savepoint(self._name)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._token is not None:
            # ValueError: exited in another context, where there is nothing to restore.
            with contextlib.suppress(ValueError):
                self._host_var.reset(self._token)
            self._token = None
        if self.is_savepoint:
            return await self._exit_savepoint(exc)
        timed_out = False
        if self._deadline is not None:
            try:
                await self._deadline.__aexit__(exc_type, exc, tb)
            except TimeoutError:
                timed_out = True
        return await self._exit_root(exc, timed_out)

    async def _exit_root(self, exc: BaseException | None, timed_out: bool) -> bool:
        driver = self.driver
        stats = self._stats
        try:
            if exc is None and self.doomed is None:
                if not driver.is_open():
                    self.state = TxState.FAILED
                    stats.rolled_back += 1
                    raise errors.TransactionError(
                        "cannot commit: a statement inside the block ended the transaction"
                    )
                try:
                    await driver.commit()
                except errors.CommitOutcomeUnknown:
                    self.state = TxState.FAILED
                    stats.commit_unknown += 1
                    raise
                except BaseException:
                    self.state = TxState.ROLLED_BACK
                    stats.rolled_back += 1
                    raise
                self.state = TxState.COMMITTED
                stats.committed += 1
                return False
            if timed_out or isinstance(exc, asyncio.CancelledError):
                await driver.abandon()
            else:
                await driver.rollback()
            self.state = TxState.ROLLED_BACK
            stats.rolled_back += 1
            if timed_out:
                stats.timeouts += 1
                raise errors.TransactionTimeout(
                    f"cannot finish the transaction: it ran past its timeout of "
                    f"{self._options.timeout} s and was rolled back"
                ) from exc
            if exc is None and self.doomed is not None:
                doom = self.doomed
                raise type(doom)(
                    f"cannot commit: a nested block failed with {type(doom).__name__}: {doom}",
                    sqlstate=doom.sqlstate,
                ) from doom
            return isinstance(exc, Rollback) and self.swallow_rollback
        finally:
            self._driver = None
            await asyncio.shield(driver.close())

    async def _exit_savepoint(self, exc: BaseException | None) -> bool:
        root = self.root
        assert self._name is not None
        if root.state is not TxState.ACTIVE or root._driver is None:
            self.state = TxState.FAILED
            return False
        driver = root._driver
        if isinstance(exc, asyncio.CancelledError):
            self.doom(errors.TransactionError("cannot commit: a nested block was cancelled"))
            self.state = TxState.FAILED
            return False
        if isinstance(exc, errors.DatabaseError) and (
            is_retryable(exc) or isinstance(exc, errors.CommitOutcomeUnknown)
        ):
            self.doom(exc)
            self.state = TxState.FAILED
            return False
        if not driver.is_open():
            self.state = TxState.FAILED
            failure = errors.TransactionError(
                "cannot finish the savepoint: the transaction is no longer open"
            )
            self.doom(failure)
            if exc is None:
                raise failure
            return False
        if exc is None:
            await driver.release(self._name)
            self.state = TxState.COMMITTED
            return False
        await driver.rollback_to(self._name)
        await driver.release(self._name)
        self.state = TxState.ROLLED_BACK
        return isinstance(exc, Rollback) and self.swallow_rollback

    def __repr__(self) -> str:
        kind = f"savepoint {self._name}" if self.is_savepoint else "transaction"
        return f"<{kind} {self.state.value}>"
