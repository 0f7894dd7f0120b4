-- Analytics database: ELO ratings, matches, calibration and insights.
-- migrate:up
-- One row per agent and domain; the empty domain holds the overall rating.
CREATE TABLE ratings (
    agent_name            TEXT NOT NULL,
    domain                TEXT NOT NULL DEFAULT '',
    elo                   DOUBLE PRECISION NOT NULL DEFAULT 1500.0,
    wins                  INTEGER NOT NULL DEFAULT 0,
    losses                INTEGER NOT NULL DEFAULT 0,
    draws                 INTEGER NOT NULL DEFAULT 0,
    debates_count         INTEGER NOT NULL DEFAULT 0,
    critiques_accepted    INTEGER NOT NULL DEFAULT 0,
    critiques_total       INTEGER NOT NULL DEFAULT 0,
    calibration_correct   INTEGER NOT NULL DEFAULT 0,
    calibration_total     INTEGER NOT NULL DEFAULT 0,
    calibration_brier_sum DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_name, domain)
);

CREATE INDEX idx_ratings_leaderboard ON ratings (domain, elo, agent_name);

CREATE TABLE matches (
    id           BIGSERIAL PRIMARY KEY,
    debate_id    TEXT NOT NULL UNIQUE,
    winner       TEXT,
    participants TEXT[] NOT NULL,
    domain       TEXT NOT NULL DEFAULT '',
    scores       JSONB NOT NULL DEFAULT '{}'::jsonb,
    elo_changes  JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_matches_winner ON matches (winner);
CREATE INDEX idx_matches_domain ON matches (domain, created_at);

CREATE TABLE elo_history (
    id         BIGSERIAL PRIMARY KEY,
    agent_name TEXT NOT NULL,
    domain     TEXT NOT NULL DEFAULT '',
    elo        DOUBLE PRECISION NOT NULL,
    debate_id  TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_elo_history_agent ON elo_history (agent_name, domain, id);

CREATE TABLE calibration_predictions (
    id               BIGSERIAL PRIMARY KEY,
    tournament_id    TEXT NOT NULL,
    predictor_agent  TEXT NOT NULL,
    predicted_winner TEXT NOT NULL,
    confidence       DOUBLE PRECISION NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tournament_id, predictor_agent)
);

CREATE TABLE domain_calibration (
    agent_name        TEXT NOT NULL,
    domain            TEXT NOT NULL,
    total_predictions INTEGER NOT NULL DEFAULT 0,
    total_correct     INTEGER NOT NULL DEFAULT 0,
    brier_sum         DOUBLE PRECISION NOT NULL DEFAULT 0.0,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_name, domain)
);

CREATE TABLE insights (
    id          TEXT PRIMARY KEY,
    debate_id   TEXT,
    type        TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    confidence  DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    agents      TEXT[] NOT NULL DEFAULT '{}',
    evidence    JSONB NOT NULL DEFAULT '[]'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_insights_type ON insights (type, created_at);
CREATE INDEX idx_insights_debate ON insights (debate_id);

-- migrate:down
DROP TABLE insights;
DROP TABLE domain_calibration;
DROP TABLE calibration_predictions;
DROP TABLE elo_history;
DROP TABLE matches;
DROP TABLE ratings;
