"""The job queue on both backends: idempotent enqueue, claims by priority and time under
a lease, completion once, failure with backoff into the dead letters, reclaim of expired
leases, a lost lease rolling back the handler's writes, and re-driving a dead letter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aragora_db import Database
from aragora_repos.tools.jobs import backoff_ms, work_once
from tests.pg_server import eventually


async def _enqueue(db: Database, kind: str, **kw: Any) -> int:
    job = await db.jobs.enqueue_job(
        queue=kw.pop("queue", "q"),
        kind=kind,
        payload=kw.pop("payload", {"k": kind}),
        priority=kw.pop("priority", 0),
        run_after=kw.pop("run_after", None),
        idempotency_key=kw.pop("key", None),
        max_attempts=kw.pop("max_attempts", 3),
    )
    assert job is not None and not kw
    return job.id


async def test_enqueue_is_idempotent_per_queue_and_key(db: Database) -> None:
    first = await _enqueue(db, "a", key="k1")
    assert await _enqueue(db, "a-again", key="k1") == first
    assert await _enqueue(db, "a", key="k1", queue="other") != first
    assert await _enqueue(db, "b") != await _enqueue(db, "b")  # no key: two jobs
    job = await db.jobs.get_job(id=first)
    assert job is not None and job.kind == "a" and job.status == "queued"


async def test_claims_follow_priority_then_age_and_skip_future_jobs(db: Database) -> None:
    low = await _enqueue(db, "low")
    high = await _enqueue(db, "high", priority=5)
    await _enqueue(db, "later", priority=9, run_after=datetime.now(UTC) + timedelta(hours=1))
    mid = await _enqueue(db, "mid", priority=5)
    claimed = await db.jobs.claim_jobs(worker="w1", visibility_ms=60_000, queue="q", lim=2)
    assert sorted(j.id for j in claimed) == [high, mid]
    assert {(j.status, j.attempts, j.locked_by) for j in claimed} == {("running", 1, "w1")}
    rest = await db.jobs.claim_jobs(worker="w2", visibility_ms=60_000, queue="q", lim=10)
    assert [j.id for j in rest] == [low]  # the future job stays queued


async def test_complete_once_and_only_by_the_lease_holder(db: Database) -> None:
    job_id = await _enqueue(db, "a")
    await db.jobs.claim_jobs(worker="w1", visibility_ms=60_000, queue="q", lim=1)
    assert await db.jobs.complete_job(result={"ok": 1}, id=job_id, worker="w2") == 0
    assert await db.jobs.complete_job(result={"ok": 1}, id=job_id, worker="w1") == 1
    assert await db.jobs.complete_job(result={"ok": 2}, id=job_id, worker="w1") == 0
    job = await db.jobs.get_job(id=job_id)
    assert job is not None and (job.status, job.result) == ("done", {"ok": 1})
    assert job.finished_at is not None and job.locked_by is None


async def test_failures_back_off_then_go_to_the_dead_letters(db: Database) -> None:
    job_id = await _enqueue(db, "a", max_attempts=2)
    [job] = await db.jobs.claim_jobs(worker="w", visibility_ms=60_000, queue="q", lim=1)
    status = await db.jobs.fail_job(delay_ms=0, error="boom 1", id=job_id, worker="w")
    assert status == "queued"
    [job] = await db.jobs.claim_jobs(worker="w", visibility_ms=60_000, queue="q", lim=1)
    assert job.attempts == 2
    assert await db.jobs.fail_job(delay_ms=0, error="boom 2", id=job_id, worker="w") == "dead"
    dead = await db.jobs.list_dead_jobs(queue="q", lim=10)
    assert [(d.id, d.last_error) for d in dead] == [(job_id, "boom 2")]
    counts = {c.status: c.jobs for c in await db.jobs.count_jobs_by_status(queue="q")}
    assert counts == {"dead": 1}
    assert await db.jobs.requeue_dead_job(id=job_id) == 1
    [again] = await db.jobs.claim_jobs(worker="w", visibility_ms=60_000, queue="q", lim=1)
    assert (again.id, again.attempts) == (job_id, 1)
    # A failure with a delay is not claimable before it.
    await db.jobs.fail_job(delay_ms=3_600_000, error="later", id=job_id, worker="w")
    assert await db.jobs.claim_jobs(worker="w", visibility_ms=1, queue="q", lim=1) == []
    assert [backoff_ms(n) for n in (1, 2, 3)] == [1000, 2000, 4000]
    assert backoff_ms(99) == 600_000


async def test_an_expired_lease_is_reclaimed_and_the_late_worker_loses(db: Database) -> None:
    job_id = await _enqueue(db, "a", max_attempts=5)
    await db.jobs.claim_jobs(worker="slow", visibility_ms=0, queue="q", lim=1)

    async def reclaimed() -> bool:
        return await db.jobs.reclaim_expired_jobs() == 1

    await eventually(reclaimed, "the expired lease to be reclaimed")
    [job] = await db.jobs.claim_jobs(worker="fast", visibility_ms=60_000, queue="q", lim=1)
    assert (job.id, job.attempts) == (job_id, 2)
    assert await db.jobs.complete_job(result=None, id=job_id, worker="slow") == 0
    assert await db.jobs.complete_job(result=None, id=job_id, worker="fast") == 1


async def test_a_worker_pass_commits_effects_with_completion(db: Database) -> None:
    ok = await _enqueue(db, "ok")
    bad = await _enqueue(db, "bad", max_attempts=1)
    effects: list[int] = []

    async def handler(job: Any) -> Any:
        if job.kind == "bad":
            raise RuntimeError("the handler failed")
        effects.append(job.id)
        return {"done": job.id}

    report = await work_once(db, handler, queue="q", worker="w", batch=10)
    assert (report.claimed, report.completed, report.dead) == (2, 1, 1)
    assert effects == [ok]
    done, dead = await db.jobs.get_job(id=ok), await db.jobs.get_job(id=bad)
    assert done is not None and done.result == {"done": ok}
    assert dead is not None and dead.status == "dead"
    assert dead.last_error == "RuntimeError: the handler failed"
