-- name: EnqueueJob :one
-- A new job; with an idempotency key already queued on this queue, the existing job is
-- returned instead (nothing is enqueued twice).
INSERT INTO jobs (queue, kind, payload, priority, run_after, idempotency_key, max_attempts)
VALUES (sqlc.arg(queue), sqlc.arg(kind), sqlc.arg(payload), sqlc.arg(priority),
        coalesce(sqlc.narg(run_after)::timestamptz, now()), sqlc.narg(idempotency_key),
        sqlc.arg(max_attempts))
ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL
DO UPDATE SET updated_at = jobs.updated_at
RETURNING *;

-- name: ClaimJobs :many
-- Up to lim ready jobs of a queue (highest priority first, then oldest), leased to a
-- worker for visibility_ms (taken between 0 and one day): no other worker gets them until
-- the lease runs out. Rows another worker is claiming are skipped on PostgreSQL; SQLite
-- has one writer at a time.
UPDATE jobs
SET status = 'running', locked_by = sqlc.arg(worker)::text,
    locked_until = now() + least(greatest(sqlc.arg(visibility_ms)::bigint, 0), 86400000)
        * interval '1 millisecond',
    attempts = attempts + 1, updated_at = now()
WHERE id IN (
    SELECT j.id FROM jobs j
    WHERE j.queue = sqlc.arg(queue) AND j.status = 'queued' AND j.run_after <= now()
    ORDER BY j.priority DESC, j.run_after, j.id
    LIMIT sqlc.arg(lim)
    FOR UPDATE SKIP LOCKED
)
RETURNING *;

-- name: CompleteJob :execrows
-- 1 when this worker still held the job; 0 when its lease was lost (the job was
-- reclaimed, perhaps claimed by another worker) or it was completed already: the
-- caller's transaction should then roll back its effects.
UPDATE jobs
SET status = 'done', result = sqlc.narg(result), finished_at = now(), updated_at = now(),
    locked_by = NULL, locked_until = NULL
WHERE id = sqlc.arg(id) AND status = 'running' AND locked_by = sqlc.arg(worker)::text;

-- name: FailJob :one
-- A failed attempt: queued again after delay_ms (taken between 0 and 30 days), or to the
-- dead letters once it has had max_attempts. No row when this worker no longer held it.
UPDATE jobs
SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
    run_after = CASE WHEN attempts >= max_attempts THEN run_after
                     ELSE now() + least(greatest(sqlc.arg(delay_ms)::bigint, 0), 2592000000)
                                  * interval '1 millisecond' END,
    finished_at = CASE WHEN attempts >= max_attempts THEN now() ELSE NULL END,
    last_error = sqlc.arg(error)::text, locked_by = NULL, locked_until = NULL, updated_at = now()
WHERE id = sqlc.arg(id) AND status = 'running' AND locked_by = sqlc.arg(worker)::text
RETURNING status;

-- name: ReclaimExpiredJobs :execrows
-- Jobs whose worker's lease ran out (it died or stalled): queued again, or to the dead
-- letters once they have had max_attempts.
UPDATE jobs
SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,
    finished_at = CASE WHEN attempts >= max_attempts THEN now() ELSE NULL END,
    last_error = coalesce(last_error, 'lease expired'),
    locked_by = NULL, locked_until = NULL, updated_at = now()
WHERE status = 'running' AND locked_until < now();

-- name: GetJob :one
SELECT * FROM jobs WHERE id = $1;

-- name: CountJobsByStatus :many
SELECT status, count(*) AS jobs FROM jobs WHERE queue = $1 GROUP BY status ORDER BY status;

-- name: ListDeadJobs :many
SELECT * FROM jobs WHERE queue = $1 AND status = 'dead' ORDER BY finished_at, id LIMIT sqlc.arg(lim);

-- name: RequeueDeadJob :execrows
-- Re-drive a dead letter: queued again now, with its attempts counted afresh.
UPDATE jobs
SET status = 'queued', attempts = 0, run_after = now(), finished_at = NULL, updated_at = now()
WHERE id = $1 AND status = 'dead';
