-- migrate:up
CREATE TABLE sync_local (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sync_outbox (
    seq BIGSERIAL PRIMARY KEY,
    table_name TEXT NOT NULL,
    op TEXT NOT NULL,
    row_key TEXT NOT NULL,
    captured_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE notes (
    owner TEXT NOT NULL,
    n INTEGER NOT NULL,
    body TEXT,
    score DOUBLE PRECISION,
    blob BYTEA,
    PRIMARY KEY (owner, n)
);
-- aragora:synced notes

-- migrate:down
-- aragora:not-synced notes
DROP TABLE notes;
DROP TABLE sync_outbox;
DROP TABLE sync_local;
