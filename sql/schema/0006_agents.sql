-- Agents database: personas, genomes, pairwise relationships and the genesis ledger.
-- migrate:up
CREATE TABLE personas (
    agent_name   TEXT PRIMARY KEY,
    description  TEXT NOT NULL DEFAULT '',
    traits       TEXT[] NOT NULL DEFAULT '{}',
    expertise    JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE genomes (
    genome_id      TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    traits         JSONB NOT NULL DEFAULT '{}'::jsonb,
    expertise      JSONB NOT NULL DEFAULT '{}'::jsonb,
    model_preference TEXT,
    parent_genomes TEXT[] NOT NULL DEFAULT '{}',
    generation     INTEGER NOT NULL DEFAULT 0,
    fitness_score  DOUBLE PRECISION NOT NULL DEFAULT 0.5,
    birth_debate_id TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_genomes_fitness ON genomes (fitness_score, genome_id);
CREATE INDEX idx_genomes_name ON genomes (name, generation);

-- One row per unordered pair, stored with agent_a < agent_b.
CREATE TABLE agent_relationships (
    agent_a                    TEXT NOT NULL,
    agent_b                    TEXT NOT NULL,
    debate_count               INTEGER NOT NULL DEFAULT 0,
    agreement_count            INTEGER NOT NULL DEFAULT 0,
    critique_count_a_to_b      INTEGER NOT NULL DEFAULT 0,
    critique_count_b_to_a      INTEGER NOT NULL DEFAULT 0,
    a_wins_over_b              INTEGER NOT NULL DEFAULT 0,
    b_wins_over_a              INTEGER NOT NULL DEFAULT 0,
    updated_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_a, agent_b),
    CHECK (agent_a < agent_b)
);

CREATE INDEX idx_relationships_b ON agent_relationships (agent_b);

CREATE TABLE genesis_events (
    seq             BIGSERIAL PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    event_type      TEXT NOT NULL,
    parent_event_id TEXT REFERENCES genesis_events (event_id),
    content_hash    TEXT NOT NULL,
    data            JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_genesis_type ON genesis_events (event_type, seq);

-- migrate:down
DROP TABLE genesis_events;
DROP TABLE agent_relationships;
DROP TABLE genomes;
DROP TABLE personas;
