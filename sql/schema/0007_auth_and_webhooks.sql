-- Users database additions: JWT revocation and outgoing webhooks.
-- migrate:up
CREATE TABLE token_blacklist (
    jti        TEXT PRIMARY KEY,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    reason     TEXT,
    revoked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX idx_token_blacklist_expires ON token_blacklist (expires_at);

CREATE TABLE webhooks (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    url            TEXT NOT NULL,
    secret         TEXT NOT NULL,
    events         TEXT[] NOT NULL DEFAULT '{}',
    active         BOOLEAN NOT NULL DEFAULT TRUE,
    failure_count  INTEGER NOT NULL DEFAULT 0,
    last_triggered_at TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_webhooks_org ON webhooks (org_id, created_at);

-- migrate:down
DROP TABLE webhooks;
DROP TABLE token_blacklist;
