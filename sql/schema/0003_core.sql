-- Core database: debates and what they produce (Aragora critique store and debate storage).
-- migrate:up
CREATE TABLE debates (
    id                TEXT PRIMARY KEY,
    slug              TEXT NOT NULL UNIQUE,
    task              TEXT NOT NULL,
    agents            TEXT[] NOT NULL DEFAULT '{}',
    final_answer      TEXT,
    consensus_reached BOOLEAN NOT NULL DEFAULT FALSE,
    confidence        DOUBLE PRECISION,
    rounds_used       INTEGER,
    duration_seconds  DOUBLE PRECISION,
    grounded_verdict  JSONB,
    view_count        INTEGER NOT NULL DEFAULT 0 CHECK (view_count >= 0),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_debates_created_at ON debates (created_at);

-- Next free numeric suffix per slug base: taking one is a single atomic upsert.
CREATE TABLE debate_slug_counters (
    base TEXT PRIMARY KEY,
    used INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE traces (
    id         TEXT PRIMARY KEY,
    debate_id  TEXT NOT NULL REFERENCES debates (id) ON DELETE CASCADE,
    agent      TEXT NOT NULL,
    round      INTEGER NOT NULL DEFAULT 0,
    event_type TEXT NOT NULL,
    content    TEXT NOT NULL DEFAULT '',
    data       JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_traces_debate ON traces (debate_id, round, created_at);

CREATE TABLE tournaments (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    format       TEXT NOT NULL DEFAULT 'round_robin',
    status       TEXT NOT NULL DEFAULT 'pending',
    participants TEXT[] NOT NULL DEFAULT '{}',
    standings    JSONB NOT NULL DEFAULT '{}'::jsonb,
    winner       TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at TIMESTAMPTZ
);

CREATE INDEX idx_tournaments_status ON tournaments (status, created_at);

CREATE TABLE positions (
    id         BIGSERIAL PRIMARY KEY,
    debate_id  TEXT NOT NULL REFERENCES debates (id) ON DELETE CASCADE,
    agent      TEXT NOT NULL,
    round      INTEGER NOT NULL,
    claim      TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    changed    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (debate_id, agent, round)
);

CREATE TABLE embeddings (
    id           TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL UNIQUE,
    source_type  TEXT NOT NULL,
    source_id    TEXT NOT NULL,
    model        TEXT NOT NULL,
    dimensions   INTEGER NOT NULL CHECK (dimensions > 0),
    vector       BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_embeddings_source ON embeddings (source_type, source_id);

CREATE TABLE debate_artifacts (
    id                BIGSERIAL PRIMARY KEY,
    loop_id           TEXT NOT NULL,
    cycle_number      INTEGER NOT NULL,
    phase             TEXT NOT NULL,
    task              TEXT NOT NULL,
    agents            TEXT[] NOT NULL DEFAULT '{}',
    transcript        JSONB NOT NULL DEFAULT '[]'::jsonb,
    consensus_reached BOOLEAN NOT NULL DEFAULT FALSE,
    confidence        DOUBLE PRECISION,
    winning_proposal  TEXT,
    vote_tally        JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_debate_artifacts_loop ON debate_artifacts (loop_id, cycle_number);

CREATE TABLE share_links (
    token       TEXT PRIMARY KEY,
    debate_id   TEXT NOT NULL REFERENCES debates (id) ON DELETE CASCADE,
    created_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    visibility  TEXT NOT NULL DEFAULT 'public',
    expires_at  TIMESTAMPTZ,
    view_count  INTEGER NOT NULL DEFAULT 0,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_share_links_debate ON share_links (debate_id);

-- migrate:down
DROP TABLE share_links;
DROP TABLE debate_artifacts;
DROP TABLE embeddings;
DROP TABLE positions;
DROP TABLE tournaments;
DROP TABLE traces;
DROP TABLE debate_slug_counters;
DROP TABLE debates;
