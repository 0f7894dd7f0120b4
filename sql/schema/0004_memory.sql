-- Memory database: continuum tiers, consensus and dissent, critiques and learned patterns.
-- migrate:up
CREATE TYPE memory_tier AS ENUM ('fast', 'medium', 'slow', 'glacial');

CREATE TABLE continuum_memory (
    id                  TEXT PRIMARY KEY,
    tier                memory_tier NOT NULL DEFAULT 'fast',
    content             TEXT NOT NULL,
    importance          DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    surprise_score      DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    consolidation_score DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    update_count        INTEGER NOT NULL DEFAULT 1,
    success_count       INTEGER NOT NULL DEFAULT 0,
    failure_count       INTEGER NOT NULL DEFAULT 0,
    semantic_centroid   BYTEA,
    last_promotion_at   TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    metadata            JSONB NOT NULL DEFAULT '{}'::jsonb,
    expires_at          TIMESTAMPTZ,
    red_line            BOOLEAN NOT NULL DEFAULT FALSE,
    red_line_reason     TEXT
);

CREATE INDEX idx_continuum_tier_importance ON continuum_memory (tier, importance, id);
CREATE INDEX idx_continuum_expires ON continuum_memory (expires_at);

CREATE TABLE tier_transitions (
    id             BIGSERIAL PRIMARY KEY,
    memory_id      TEXT NOT NULL REFERENCES continuum_memory (id) ON DELETE CASCADE,
    from_tier      memory_tier NOT NULL,
    to_tier        memory_tier NOT NULL,
    reason         TEXT,
    surprise_score DOUBLE PRECISION,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_tier_transitions_memory ON tier_transitions (memory_id, id);

CREATE TABLE consensus (
    id                   BIGSERIAL PRIMARY KEY,
    topic                TEXT NOT NULL,
    topic_hash           TEXT NOT NULL,
    conclusion           TEXT NOT NULL DEFAULT '',
    strength             TEXT NOT NULL DEFAULT 'moderate',
    confidence           DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    participating_agents TEXT[] NOT NULL DEFAULT '{}',
    agreeing_agents      TEXT[] NOT NULL DEFAULT '{}',
    domain               TEXT NOT NULL DEFAULT 'general',
    debate_id            TEXT REFERENCES debates (id) ON DELETE SET NULL,
    metadata             JSONB NOT NULL DEFAULT '{}'::jsonb,
    data                 JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_consensus_topic_hash ON consensus (topic_hash);
CREATE INDEX idx_consensus_domain ON consensus (domain, confidence);
CREATE INDEX idx_consensus_debate ON consensus (debate_id);
-- Full-text index on the topic (FTS5 external-content table on SQLite).
CREATE INDEX idx_consensus_topic_fts ON consensus USING gin (to_tsvector('simple', topic));

CREATE TABLE dissent (
    id              TEXT PRIMARY KEY,
    consensus_id    BIGINT REFERENCES consensus (id) ON DELETE CASCADE,
    debate_id       TEXT NOT NULL,
    agent_id        TEXT NOT NULL,
    dissent_type    TEXT NOT NULL,
    content         TEXT NOT NULL DEFAULT '',
    reasoning       TEXT,
    confidence      DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    acknowledged    BOOLEAN NOT NULL DEFAULT FALSE,
    acknowledged_by TEXT,
    acknowledged_at TIMESTAMPTZ,
    data            JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_dissent_debate ON dissent (debate_id, created_at);
CREATE INDEX idx_dissent_consensus ON dissent (consensus_id);
CREATE INDEX idx_dissent_open ON dissent (acknowledged, created_at);

CREATE TABLE verified_proofs (
    id                   TEXT PRIMARY KEY,
    debate_id            TEXT NOT NULL,
    proof_status         TEXT NOT NULL,
    language             TEXT NOT NULL,
    formal_statement     TEXT,
    is_verified          BOOLEAN NOT NULL DEFAULT FALSE,
    proof_hash           TEXT,
    translation_time_ms  DOUBLE PRECISION,
    proof_search_time_ms DOUBLE PRECISION,
    prover_version       TEXT,
    error_message        TEXT,
    data                 JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_verified_proofs_debate ON verified_proofs (debate_id, created_at);

CREATE TABLE critiques (
    id                  BIGSERIAL PRIMARY KEY,
    debate_id           TEXT NOT NULL REFERENCES debates (id) ON DELETE CASCADE,
    agent               TEXT NOT NULL,
    target_agent        TEXT,
    issues              JSONB NOT NULL DEFAULT '[]'::jsonb,
    suggestions         JSONB NOT NULL DEFAULT '[]'::jsonb,
    severity            DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    reasoning           TEXT,
    led_to_improvement  BOOLEAN NOT NULL DEFAULT FALSE,
    expected_usefulness DOUBLE PRECISION,
    actual_usefulness   DOUBLE PRECISION,
    prediction_error    DOUBLE PRECISION,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_critiques_debate ON critiques (debate_id, id);
CREATE INDEX idx_critiques_agent ON critiques (agent, id);

CREATE TABLE patterns (
    id                   TEXT PRIMARY KEY,
    issue_type           TEXT NOT NULL,
    issue_text           TEXT NOT NULL,
    suggestion_text      TEXT,
    success_count        INTEGER NOT NULL DEFAULT 0,
    failure_count        INTEGER NOT NULL DEFAULT 0,
    avg_severity         DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    surprise_score       DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    base_rate            DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    avg_prediction_error DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    prediction_count     INTEGER NOT NULL DEFAULT 0,
    example_task         TEXT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_patterns_type ON patterns (issue_type, success_count);
CREATE INDEX idx_patterns_updated ON patterns (updated_at);

CREATE TABLE patterns_archive (
    id                   TEXT PRIMARY KEY,
    issue_type           TEXT NOT NULL,
    issue_text           TEXT NOT NULL,
    suggestion_text      TEXT,
    success_count        INTEGER NOT NULL,
    failure_count        INTEGER NOT NULL,
    avg_severity         DOUBLE PRECISION NOT NULL,
    surprise_score       DOUBLE PRECISION NOT NULL,
    base_rate            DOUBLE PRECISION NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    archived_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    archive_reason       TEXT NOT NULL
);

CREATE TABLE agent_reputation (
    agent_name             TEXT PRIMARY KEY,
    proposals_made         INTEGER NOT NULL DEFAULT 0,
    proposals_accepted     INTEGER NOT NULL DEFAULT 0,
    critiques_given        INTEGER NOT NULL DEFAULT 0,
    critiques_valuable     INTEGER NOT NULL DEFAULT 0,
    total_predictions      INTEGER NOT NULL DEFAULT 0,
    total_prediction_error DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    calibration_score      DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_reputation_score ON agent_reputation (calibration_score);

-- migrate:down
DROP TABLE agent_reputation;
DROP TABLE patterns_archive;
DROP TABLE patterns;
DROP TABLE critiques;
DROP TABLE verified_proofs;
DROP TABLE dissent;
DROP INDEX idx_consensus_topic_fts;
DROP TABLE consensus;
DROP TABLE tier_transitions;
DROP TABLE continuum_memory;
DROP TYPE memory_tier;
