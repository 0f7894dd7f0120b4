-- The job queue (the seeds' PostgresJobQueueStore): enqueue with priority, a time to run
-- after and an idempotency key; workers claim batches under a visibility timeout,
-- complete, or fail with backoff until max_attempts sends a job to the dead letters;
-- jobs whose worker died are reclaimed when their lease runs out.
-- migrate:up
CREATE TABLE jobs (
    id              BIGSERIAL PRIMARY KEY,
    queue           TEXT NOT NULL DEFAULT 'default',
    kind            TEXT NOT NULL,
    payload         JSONB NOT NULL DEFAULT '{}'::jsonb,
    priority        INTEGER NOT NULL DEFAULT 0,
    run_after       TIMESTAMPTZ NOT NULL DEFAULT now(),
    idempotency_key TEXT,
    status          TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    locked_by       TEXT,
    locked_until    TIMESTAMPTZ,
    last_error      TEXT,
    result          JSONB,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ
);

CREATE UNIQUE INDEX idx_jobs_idempotency ON jobs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX idx_jobs_ready ON jobs (queue, status, priority, run_after, id);
CREATE INDEX idx_jobs_lease ON jobs (status, locked_until);

-- migrate:down
DROP TABLE jobs;
