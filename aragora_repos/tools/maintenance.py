"""``aragora-repos maintenance``: data retention, in bounded batches, through the generated
repositories (so on both backends alike).

Three steps, each a loop of short transactions of at most ``batch`` rows, so none holds
a lock for long and a kill loses at most the batch in flight (which rolls back whole):

1. audit entries older than ``ARAGORA_AUDIT_RETENTION_DAYS`` (default 90) are removed,
   the one way rows leave the append-only ``audit_log`` (``Backend.allow_retention``);
2. usage events older than ``ARAGORA_USAGE_RETENTION_DAYS`` (default 90) are added to
   their month's totals in ``usage_monthly`` and removed in the same transaction, so
   billing history survives pruning and no event is counted twice;
3. token blacklist entries whose token has expired are removed.

Two processes may run it at once: a batch of usage events is claimed with ``FOR UPDATE
SKIP LOCKED`` on PostgreSQL (SQLite runs one writer at a time), so each event is rolled
up by exactly one of them, and deletes of rows the other already removed count nothing.
Month totals are written in key order, so two runs lock the ones they share in the same
order; a batch that still meets a deadlock or a serialization failure is run again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from aragora_repos.backends import Backend
from aragora_repos.transaction import Transaction

T = TypeVar("T")


class _Audit(Protocol):
    async def delete_audit_events_before(self, *, cutoff: datetime, lim: int) -> int: ...


class _Usage(Protocol):
    async def claim_usage_events_before(self, *, cutoff: datetime, lim: int) -> list[int]: ...

    async def roll_up_usage_events(self, *, ids: list[int]) -> int: ...

    async def delete_usage_events(self, *, ids: list[int]) -> int: ...


class _Auth(Protocol):
    async def delete_expired_tokens_batch(self, *, now_at: datetime, lim: int) -> int: ...


class Maintained(Protocol):
    """What maintenance needs of a generated package's ``Database`` (Aragora's has it)."""

    @property
    def backend(self) -> Backend: ...

    @property
    def audit(self) -> _Audit: ...

    @property
    def usage(self) -> _Usage: ...

    @property
    def auth(self) -> _Auth: ...

    def transaction(self) -> Transaction: ...

    async def run_in_transaction(self, fn: Callable[[], Awaitable[T]]) -> T: ...


@dataclass(slots=True)
class MaintenanceReport:
    """Rows each step removed (and rolled up), and the batches it took."""

    audit_removed: int = 0
    usage_rolled_up: int = 0
    """Usage events added to ``usage_monthly`` (and then removed)."""
    usage_removed: int = 0
    tokens_removed: int = 0
    batches: int = 0
    seconds: float = 0.0

    def render(self) -> str:
        return "\n".join(
            [
                f"audit entries removed: {self.audit_removed:,}",
                f"usage events rolled up into usage_monthly and removed: {self.usage_removed:,}",
                f"expired token blacklist entries removed: {self.tokens_removed:,}",
                f"{self.batches:,} batches in {self.seconds:.1f} s",
            ]
        )


async def run_maintenance(
    db: Maintained,
    *,
    audit_days: float = 90.0,
    usage_days: float = 90.0,
    batch: int = 1000,
    now: datetime | None = None,
) -> MaintenanceReport:
    """Run the three retention steps (see the module docstring); ``now`` for tests."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    report = MaintenanceReport()
    audit_cutoff = now - timedelta(days=audit_days)
    usage_cutoff = now - timedelta(days=usage_days)

    # Each batch is one transaction, run again whole after a deadlock or serialization
    # failure; what it removed is counted once it has committed.
    async def audit_batch() -> int:
        # audit_log is append-only: this transaction may delete rows older than this.
        await db.backend.allow_retention(audit_cutoff)
        return await db.audit.delete_audit_events_before(cutoff=audit_cutoff, lim=batch)

    async def usage_batch() -> tuple[int, int]:
        ids = await db.usage.claim_usage_events_before(cutoff=usage_cutoff, lim=batch)
        if not ids:
            return 0, 0
        await db.usage.roll_up_usage_events(ids=ids)
        return len(ids), await db.usage.delete_usage_events(ids=ids)

    async def token_batch() -> int:
        return await db.auth.delete_expired_tokens_batch(now_at=now, lim=batch)

    while True:
        removed = await db.run_in_transaction(audit_batch)
        report.batches += 1
        report.audit_removed += removed
        if removed < batch:
            break
    while True:
        claimed, removed = await db.run_in_transaction(usage_batch)
        report.usage_rolled_up += claimed
        report.usage_removed += removed
        report.batches += 1
        if claimed < batch:
            break
    while True:
        removed = await db.run_in_transaction(token_batch)
        report.batches += 1
        report.tokens_removed += removed
        if removed < batch:
            break
    report.seconds = time.perf_counter() - started
    return report
