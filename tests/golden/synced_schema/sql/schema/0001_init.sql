-- migrate:up
CREATE TABLE early (id TEXT PRIMARY KEY);
-- aragora:synced early
CREATE TABLE sync_local (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sync_outbox (
    seq BIGSERIAL PRIMARY KEY,
    table_name TEXT NOT NULL,
    op TEXT NOT NULL,
    row_key TEXT NOT NULL
);
CREATE TABLE keyless (body TEXT);
-- aragora:synced keyless
-- aragora:synced missing
-- aragora:synced sync_outbox
CREATE TABLE twice (id TEXT PRIMARY KEY);
-- aragora:synced twice
-- aragora:synced twice
ALTER TABLE twice RENAME TO thrice;
-- aragora:not-synced early
-- aragora:sinced early

-- migrate:down
DROP TABLE twice;
DROP TABLE keyless;
DROP TABLE sync_outbox;
DROP TABLE sync_local;
DROP TABLE early;
