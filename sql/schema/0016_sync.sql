-- Background sync of the local database to a cloud PostgreSQL (aragora_repos.sync).
-- sync_outbox holds each committed change of a synced table (its table, primary key and
-- U or D), captured by triggers in the writing transaction, until the target has
-- committed it (the row's values are read when it is delivered); sync_dead_letter the changes
-- the target refused past the retries, and those of the same row waiting behind them;
-- sync_local this database's id as a sync source and its counters. On the target,
-- sync_state holds each source's high-water mark, written in the transaction that
-- applies a batch, so a batch sent twice changes nothing the second time.
-- migrate:up
CREATE TABLE sync_outbox (
    seq         BIGSERIAL PRIMARY KEY,
    table_name  TEXT NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('U', 'D')),
    row_key     TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    captured_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE sync_dead_letter (
    id          BIGSERIAL PRIMARY KEY,
    seq         BIGINT NOT NULL,
    table_name  TEXT NOT NULL,
    op          TEXT NOT NULL,
    row_key     TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    captured_at TIMESTAMPTZ NOT NULL,
    parked_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_sync_dead_letter_row ON sync_dead_letter (table_name, row_key, id);

CREATE TABLE sync_local (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE sync_state (
    source_id  TEXT PRIMARY KEY,
    last_seq   BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- aragora:synced debates
-- aragora:synced nomic_cycles
-- aragora:synced stream_events
-- aragora:synced agent_metrics

-- migrate:down
-- aragora:not-synced agent_metrics
-- aragora:not-synced stream_events
-- aragora:not-synced nomic_cycles
-- aragora:not-synced debates
DROP TABLE sync_state;
DROP TABLE sync_local;
DROP TABLE sync_dead_letter;
DROP TABLE sync_outbox;
