"""Transactions for both backends and both APIs: one state machine.

The state machine (:class:`_Block`) decides what a block does on entry and exit (BEGIN or
SAVEPOINT, COMMIT, RELEASE, ROLLBACK TO, which error to raise, which counter to bump) and
names each driver call it needs as a step; :class:`Transaction` runs the steps with
``await`` and :class:`SyncTransaction` runs the same steps directly, so the asynchronous
API of either backend and SQLite's synchronous API share every decision. Re-running a
whole transaction is :mod:`aragora_repos.retry`.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, fields
from enum import StrEnum
from types import TracebackType
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from aragora_repos import errors
from aragora_repos.errors import is_retryable

__all__ = [
    "Isolation",
    "Rollback",
    "SyncTransaction",
    "Transaction",
    "TransactionConfig",
    "TransactionStats",
    "TxDriver",
    "TxOptions",
    "TxState",
]

T = TypeVar("T")
B = TypeVar("B", bound="_Block")


class Isolation(StrEnum):
    """PostgreSQL isolation levels (transaction-iso.html). SQLite has only SERIALIZABLE."""

    READ_COMMITTED = "read_committed"
    REPEATABLE_READ = "repeatable_read"
    SERIALIZABLE = "serializable"

    @property
    def sql(self) -> str:
        return self.value.replace("_", " ").upper()


class TxOptions(NamedTuple):
    """What one block asks for (a tuple: it is built on every ``transaction()`` call)."""

    isolation: Isolation | None = None
    readonly: bool = False
    deferrable: bool = False
    timeout: float | None = None


class TxDriver(Protocol):
    """What the state machine needs from a backend: one object per outermost block.

    ``begin`` acquires whatever the transaction holds (a pooled connection, a lock);
    ``close`` gives it back and is called exactly once, whatever happened. For
    :class:`Transaction` the methods other than ``is_open`` are coroutines; for
    :class:`SyncTransaction` they are plain calls.
    """

    def begin(self, options: TxOptions) -> Any: ...

    def commit(self) -> Any:
        """COMMIT; raise CommitOutcomeUnknown if the connection is lost meanwhile."""

    def rollback(self) -> Any:
        """ROLLBACK; if that fails, make sure nothing stays open (``abandon``)."""

    def abandon(self) -> Any:
        """After a cancellation: end the transaction without waiting on the server."""

    def savepoint(self, name: str) -> Any: ...

    def release(self, name: str) -> Any: ...

    def rollback_to(self, name: str) -> Any: ...

    def is_open(self) -> bool:
        """Whether the server still has this transaction open (from the wire, not SQL)."""

    def close(self) -> Any: ...


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
    ``with`` continues normally.
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


_SAVEPOINT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def savepoint_name(name: str) -> str:
    """A validated savepoint identifier (letters, digits, underscore; at most 63 bytes)."""
    if not _SAVEPOINT_NAME.fullmatch(name):
        raise errors.InterfaceError(
            f"cannot create savepoint {name!r}: expected letters, digits and underscores, "
            "starting with a letter or underscore, at most 63 characters"
        )
    return name


class Host(Protocol[B]):
    """Where the open block is found: a ContextVar (async), or a connection's slot."""

    def get(self) -> B | None: ...

    def set(self, value: B | None) -> Any: ...

    def reset(self, token: Any) -> None: ...


class Slot(Generic[B]):
    """A :class:`Host` held by one synchronous connection (its thread owns it)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: B | None = None

    def get(self) -> B | None:
        return self.value

    def set(self, value: B | None) -> B | None:
        previous, self.value = self.value, value
        return previous

    def reset(self, token: B | None) -> None:
        self.value = token


class _Call(NamedTuple):
    """One driver call a step needs: ``fn(*args)``, awaited by the async runner."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    shield: bool = False


_Steps = Generator[_Call, None, T]


class _Block:
    """The state machine of one block; subclasses run its steps.

    The outermost block owns a connection (PostgreSQL) or the write lock (SQLite) and
    runs BEGIN / COMMIT / ROLLBACK; a nested block is a savepoint on the same connection.
    The state machine refuses misuse instead of guessing:

    * a block object is entered once; a statement after its end raises InterfaceError;
    * a transaction is used only by the task (or thread) that opened it;
    * a nested block cannot change isolation, read-only or deferrable;
    * a serialization failure, deadlock, lost connection or cancellation inside a
      savepoint is not recoverable there (the snapshot belongs to the whole transaction,
      rails#44127): the outermost block then refuses to commit and re-raises it.

    Raising :class:`Rollback` rolls the innermost block back and is swallowed there.
    """

    __slots__ = (
        "_deadline",
        "_driver",
        "_host",
        "_hosted",
        "_name",
        "_new_driver",
        "_options",
        "_stats",
        "_token",
        "depth",
        "doomed",
        "owner",
        "root",
        "state",
        "swallow_rollback",
    )

    def __init__(
        self,
        host: Host[Any],
        new_driver: Callable[[], TxDriver],
        stats: TransactionStats,
        options: TxOptions,
        *,
        savepoint: str | None = None,
        swallow_rollback: bool = True,
    ) -> None:
        self._host = host
        self._new_driver = new_driver
        self._stats = stats
        self._options = options
        self._name = savepoint_name(savepoint) if savepoint is not None else None
        self._driver: TxDriver | None = None
        self._deadline: asyncio.Timeout | None = None
        self._token: Any = None
        self._hosted = False
        self.swallow_rollback = swallow_rollback
        self.state = TxState.NEW
        self.root: _Block = self
        self.depth = 0
        self.doomed: errors.DatabaseError | None = None
        self.owner: object = None

    @staticmethod
    def _current_owner() -> object:
        raise NotImplementedError

    @classmethod
    def adopted(
        cls: type[B], host: Host[Any], driver: TxDriver, stats: TransactionStats, options: TxOptions
    ) -> B:
        """An active outermost block for a transaction someone else began on ``driver``
        (it is never entered or exited: nested blocks become its savepoints)."""
        block = cls(host, lambda: driver, stats, options)
        block._driver = driver
        block.owner = cls._current_owner()
        block.state = TxState.ACTIVE
        return block

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
        if root.owner != self._current_owner():
            raise errors.InterfaceError(
                "cannot run a statement in a transaction opened by another task or thread"
            )
        return self.driver

    def doom(self, exc: errors.DatabaseError) -> None:
        """Mark the whole transaction as unable to commit."""
        if self.root.doomed is None:
            self.root.doomed = exc

    # --- steps -------------------------------------------------------------------------

    def _enter(self) -> _Steps[None]:
        if self.state is not TxState.NEW:
            raise errors.InterfaceError(
                f"cannot enter a transaction block twice (it is {self.state.value})"
            )
        parent = self._host.get()
        if parent is not None and parent.root.state is not TxState.ACTIVE:
            parent = None  # a stale context value, e.g. a task created inside a block
        if parent is None:
            if self._name is not None:
                raise errors.InterfaceError(
                    f"cannot create savepoint {self._name}: no transaction is open"
                )
            driver = self._new_driver()
            yield _Call(driver.begin, (self._options,))
            self._driver = driver
            self._stats.started += 1
        else:
            yield from self._enter_savepoint(parent)
        self.owner = self._current_owner()
        self._token = self._host.set(self)
        self._hosted = True
        self.state = TxState.ACTIVE

    def _enter_savepoint(self, parent: _Block) -> _Steps[None]:
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
        yield _Call(driver.savepoint, (self._name,))

    def _leave_host(self) -> None:
        if self._hosted:
            # Not contextlib.suppress: it costs a microsecond on every block.
            try:  # noqa: SIM105
                self._host.reset(self._token)
            except ValueError:  # a ContextVar exited in another context: nothing to restore
                pass
            self._hosted = False
            self._token = None

    def _exit(self, exc: BaseException | None, timed_out: bool) -> _Steps[bool]:
        """The steps that end this block (after it leaves its host)."""
        self._leave_host()
        if self.root is not self:
            return self._exit_savepoint(exc)
        return self._exit_root(exc, timed_out)

    def _exit_root(self, exc: BaseException | None, timed_out: bool) -> _Steps[bool]:
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
                    yield _Call(driver.commit)
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
                yield _Call(driver.abandon)
            else:
                yield _Call(driver.rollback)
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
            yield _Call(driver.close, shield=True)

    def _exit_savepoint(self, exc: BaseException | None) -> _Steps[bool]:
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
            yield _Call(driver.release, (self._name,))
            self.state = TxState.COMMITTED
            return False
        yield _Call(driver.rollback_to, (self._name,))
        yield _Call(driver.release, (self._name,))
        self.state = TxState.ROLLED_BACK
        return isinstance(exc, Rollback) and self.swallow_rollback

    def __repr__(self) -> str:
        kind = f"savepoint {self._name}" if self.is_savepoint else "transaction"
        return f"<{kind} {self.state.value}>"


def _drive_sync(steps: _Steps[T]) -> T:
    """Run the steps with plain calls."""
    send, throw = steps.send, steps.throw
    try:
        fn, args, _ = send(None)
        while True:
            try:
                fn(*args)
            except BaseException as exc:
                fn, args, _ = throw(exc)
            else:
                fn, args, _ = send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result


async def _drive_async(steps: _Steps[T]) -> T:
    """Run the steps, awaiting each call (a shielded one finishes even if cancelled)."""
    try:
        call = next(steps)
        while True:
            try:
                if call.shield:
                    await asyncio.shield(call.fn(*call.args))
                else:
                    await call.fn(*call.args)
            except BaseException as exc:
                call = steps.throw(exc)
            else:
                call = next(steps)
    except StopIteration as stop:
        result: T = stop.value
        return result


class Transaction(_Block):
    """One ``async with db.transaction(...)`` or ``db.savepoint(name)`` block (see
    :class:`_Block` for the rules); ``timeout`` cancels the block and rolls it back."""

    __slots__ = ()

    @staticmethod
    def _current_owner() -> object:
        return asyncio.current_task()

    @property
    def task(self) -> object:
        return self.root.owner

    async def __aenter__(self) -> Transaction:
        await _drive_async(self._enter())
        if not self.is_savepoint and self._options.timeout is not None:
            self._deadline = asyncio.timeout(self._options.timeout)
            await self._deadline.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        # bool | None, as contextlib's: a type checker then does not treat every block
        # as one that may swallow its exception (only Rollback is swallowed).
        timed_out = False
        if self._deadline is not None:
            try:
                await self._deadline.__aexit__(exc_type, exc, tb)
            except TimeoutError:
                timed_out = True
        return await _drive_async(self._exit(exc, timed_out))


class SyncTransaction(_Block):
    """One ``with conn.transaction(...)`` or ``conn.savepoint_block(name)`` block of the
    synchronous API: the same rules and counters as :class:`Transaction`, with plain
    calls and the thread as owner. Timeouts need the async API."""

    __slots__ = ()

    @staticmethod
    def _current_owner() -> object:
        return threading.get_ident()

    def __enter__(self) -> SyncTransaction:
        if self._options.timeout is not None:
            raise errors.TransactionError("cannot set a transaction timeout on the synchronous API")
        _drive_sync(self._enter())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return _drive_sync(self._exit(exc, False))
