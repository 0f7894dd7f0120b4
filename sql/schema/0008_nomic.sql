-- Nomic loop history: cycles, streamed events, metrics, rollbacks and evolution.
-- migrate:up
CREATE TABLE nomic_cycles (
    loop_id          TEXT NOT NULL,
    cycle_number     INTEGER NOT NULL,
    phase            TEXT NOT NULL,
    stage            TEXT NOT NULL DEFAULT '',
    started_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at     TIMESTAMPTZ,
    success          BOOLEAN,
    git_commit       TEXT,
    task_description TEXT,
    total_tasks      INTEGER NOT NULL DEFAULT 0,
    completed_tasks  INTEGER NOT NULL DEFAULT 0,
    error_message    TEXT,
    PRIMARY KEY (loop_id, cycle_number)
);

CREATE TABLE stream_events (
    id         BIGSERIAL PRIMARY KEY,
    loop_id    TEXT NOT NULL,
    cycle      INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    event_data JSONB NOT NULL DEFAULT '{}'::jsonb,
    agent      TEXT,
    timestamp  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_stream_events_loop ON stream_events (loop_id, cycle, id);

CREATE TABLE agent_metrics (
    id            BIGSERIAL PRIMARY KEY,
    loop_id       TEXT NOT NULL,
    cycle         INTEGER NOT NULL,
    agent_name    TEXT NOT NULL,
    model         TEXT,
    phase         TEXT NOT NULL,
    messages_sent INTEGER NOT NULL DEFAULT 0,
    proposals_made INTEGER NOT NULL DEFAULT 0,
    critiques_given INTEGER NOT NULL DEFAULT 0,
    votes_won     INTEGER NOT NULL DEFAULT 0,
    tokens_used   BIGINT NOT NULL DEFAULT 0,
    latency_ms    DOUBLE PRECISION,
    error_count   INTEGER NOT NULL DEFAULT 0,
    timestamp     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_agent_metrics_loop ON agent_metrics (loop_id, cycle, agent_name);
CREATE INDEX idx_agent_metrics_agent ON agent_metrics (agent_name, id);

CREATE TABLE nomic_rollbacks (
    id                 TEXT PRIMARY KEY,
    loop_id            TEXT NOT NULL,
    cycle_number       INTEGER NOT NULL,
    phase              TEXT NOT NULL,
    reason             TEXT NOT NULL,
    severity           TEXT NOT NULL DEFAULT 'medium',
    rolled_back_commit TEXT,
    preserved_branch   TEXT,
    files_affected     TEXT[] NOT NULL DEFAULT '{}',
    diff_summary       TEXT,
    error_message      TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_nomic_rollbacks_loop ON nomic_rollbacks (loop_id, cycle_number);

CREATE TABLE cycle_evolution (
    id               BIGSERIAL PRIMARY KEY,
    loop_id          TEXT NOT NULL,
    cycle_number     INTEGER NOT NULL,
    evolution_type   TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    prompt_changes   JSONB NOT NULL DEFAULT '{}'::jsonb,
    metrics_before   JSONB NOT NULL DEFAULT '{}'::jsonb,
    metrics_after    JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (loop_id, cycle_number) REFERENCES nomic_cycles (loop_id, cycle_number) ON DELETE CASCADE
);

CREATE INDEX idx_cycle_evolution_cycle ON cycle_evolution (loop_id, cycle_number, id);

CREATE TABLE cycle_file_changes (
    id            BIGSERIAL PRIMARY KEY,
    loop_id       TEXT NOT NULL,
    cycle_number  INTEGER NOT NULL,
    file_path     TEXT NOT NULL,
    change_type   TEXT NOT NULL,
    lines_added   INTEGER NOT NULL DEFAULT 0,
    lines_removed INTEGER NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (loop_id, cycle_number) REFERENCES nomic_cycles (loop_id, cycle_number) ON DELETE CASCADE
);

CREATE INDEX idx_cycle_file_changes_cycle ON cycle_file_changes (loop_id, cycle_number, id);

-- migrate:down
DROP TABLE cycle_file_changes;
DROP TABLE cycle_evolution;
DROP TABLE nomic_rollbacks;
DROP TABLE agent_metrics;
DROP TABLE stream_events;
DROP TABLE nomic_cycles;
