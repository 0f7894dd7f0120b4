"""Protocols the backends implement for the shared runtime pieces."""

from __future__ import annotations

from typing import Protocol

from aragora_repos.transaction_options import TxOptions


class TxDriver(Protocol):
    """What the transaction state machine needs from a backend connection.

    ``begin`` acquires whatever the transaction holds (a pooled connection, a lock);
    ``close`` gives it back and is called exactly once, whatever happened.
    """

    async def begin(self, options: TxOptions) -> None: ...

    async def commit(self) -> None:
        """COMMIT; raise CommitOutcomeUnknown if the connection is lost meanwhile."""

    async def rollback(self) -> None:
        """ROLLBACK; if that fails, make sure nothing stays open (``abandon``)."""

    async def abandon(self) -> None:
        """After a cancellation: end the transaction without waiting on the server."""

    async def savepoint(self, name: str) -> None: ...

    async def release(self, name: str) -> None: ...

    async def rollback_to(self, name: str) -> None: ...

    def is_open(self) -> bool:
        """Whether the server still has this transaction open (from the wire, not SQL)."""

    async def close(self) -> None: ...
