-- migrate:up
CREATE TABLE tags (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL
);
-- aragora:encrypted tags (label) deterministic
-- aragora:encrypted tags (label) by (id) deterministic

CREATE TABLE codes (
    code TEXT PRIMARY KEY
);
CREATE TABLE uses (
    id TEXT PRIMARY KEY,
    code TEXT NOT NULL REFERENCES codes (code)
);
-- aragora:encrypted codes (code) deterministic

-- migrate:down
DROP TABLE uses;
DROP TABLE codes;
DROP TABLE tags;
