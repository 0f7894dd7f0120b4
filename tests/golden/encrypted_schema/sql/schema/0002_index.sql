-- migrate:up
CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    secret TEXT NOT NULL
);
-- aragora:encrypted keys (secret)
CREATE INDEX keys_secret ON keys (secret);

-- migrate:down
DROP TABLE keys;
