"""Running the job queue (``sql/queries/jobs.sql``): one worker pass over a queue.

:func:`work_once` reclaims jobs whose lease ran out, claims a batch under a visibility
timeout, and runs each job's handler in a transaction that also completes the job: the
handler's own database writes commit together with the completion, or not at all. If
the lease was lost meanwhile (the worker stalled past its visibility timeout and the
job went to another worker), completing finds nothing and the transaction rolls back,
so a job's effects are applied exactly once. A handler that raises fails the attempt:
the job is queued again after :func:`backoff_ms`, or goes to the dead letters after its
``max_attempts``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aragora_repos.transaction import Transaction


class _Job(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def attempts(self) -> int: ...


class _Jobs(Protocol):
    async def reclaim_expired_jobs(self) -> int: ...

    async def claim_jobs(
        self, *, worker: str, visibility_ms: int, queue: str, lim: int
    ) -> list[Any]: ...

    async def complete_job(self, *, result: Any, id: int, worker: str) -> int: ...

    async def fail_job(self, *, delay_ms: int, error: str, id: int, worker: str) -> str | None: ...


class Queued(Protocol):
    """What a worker needs of a generated package's ``Database`` (Aragora's has it)."""

    @property
    def jobs(self) -> _Jobs: ...

    def transaction(self) -> Transaction: ...


class LeaseLost(Exception):
    """Raised inside the completion transaction to roll back a job whose lease was lost."""


def backoff_ms(attempts: int, *, base_ms: int = 1000, cap_ms: int = 600_000) -> int:
    """Exponential backoff after the ``attempts``-th failed attempt: base, 2x, 4x ... capped."""
    return int(min(cap_ms, base_ms * 2 ** max(0, min(attempts - 1, 40))))


@dataclass(slots=True)
class PassReport:
    reclaimed: int = 0
    claimed: int = 0
    completed: int = 0
    failed: int = 0
    dead: int = 0
    lost: int = 0
    """Jobs whose lease was lost before completion: their effects were rolled back."""


async def work_once(
    db: Queued,
    handler: Callable[[Any], Awaitable[Any]],
    *,
    queue: str = "default",
    worker: str,
    batch: int = 10,
    visibility_ms: int = 30_000,
    base_backoff_ms: int = 1000,
) -> PassReport:
    """One pass: reclaim expired leases, claim up to ``batch`` jobs, run each."""
    report = PassReport()
    report.reclaimed = await db.jobs.reclaim_expired_jobs()
    jobs = await db.jobs.claim_jobs(
        worker=worker, visibility_ms=visibility_ms, queue=queue, lim=batch
    )
    report.claimed = len(jobs)
    for job in sorted(jobs, key=lambda j: j.id):
        try:
            async with db.transaction():
                result = await handler(job)
                if await db.jobs.complete_job(result=result, id=job.id, worker=worker) != 1:
                    raise LeaseLost(job.id)
            report.completed += 1
        except LeaseLost:
            report.lost += 1
        except Exception as exc:  # the handler's failure: this attempt fails, not the pass
            status = await db.jobs.fail_job(
                delay_ms=backoff_ms(job.attempts, base_ms=base_backoff_ms),
                error=f"{type(exc).__name__}: {exc}"[:2000],
                id=job.id,
                worker=worker,
            )
            if status == "dead":
                report.dead += 1
            elif status is None:
                report.lost += 1
            else:
                report.failed += 1
    return report
