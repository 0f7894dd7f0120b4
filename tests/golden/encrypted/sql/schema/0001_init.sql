-- migrate:up
CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    owner TEXT NOT NULL,
    label TEXT NOT NULL,
    token TEXT NOT NULL,
    scopes JSONB,
    UNIQUE (owner, label)
);
-- aragora:encrypted api_tokens (token, scopes) by (owner, label)

-- migrate:down
DROP TABLE api_tokens;
