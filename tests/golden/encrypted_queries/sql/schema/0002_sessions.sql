-- migrate:up
CREATE TABLE sessions (
    token TEXT PRIMARY KEY,
    user_name TEXT NOT NULL
);
-- aragora:encrypted sessions (token) deterministic

-- migrate:down
DROP TABLE sessions;
