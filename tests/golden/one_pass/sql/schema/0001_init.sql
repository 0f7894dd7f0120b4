-- migrate:up
CREATE TYPE mood AS ENUM ('happy', 'sad', 'in-between');

CREATE TABLE authors (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    bio        TEXT,
    mood       mood NOT NULL DEFAULT 'happy',
    tags       TEXT[] NOT NULL DEFAULT '{}',
    profile    JSONB NOT NULL DEFAULT '{}'::jsonb,
    external   UUID,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    score      DOUBLE PRECISION,
    avatar     BYTEA,
    born_on    DATE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX idx_authors_name ON authors (lower(name));

-- migrate:down
DROP TABLE authors;
DROP TYPE mood;
