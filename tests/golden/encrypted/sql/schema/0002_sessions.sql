-- Deterministic columns: a key looked up by its value, and a unique code with an index.
-- migrate:up
CREATE TABLE sessions (
    token TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
);
-- aragora:encrypted sessions (token) deterministic

CREATE TABLE invites (
    id BIGSERIAL PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    note JSONB
);
-- aragora:encrypted invites (code) deterministic

CREATE INDEX invites_code_id ON invites (code, id);

-- migrate:down
DROP TABLE invites;
DROP TABLE sessions;
