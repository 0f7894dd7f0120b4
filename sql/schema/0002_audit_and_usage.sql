-- Audit trail and metered usage (Aragora database documentation: audit and billing).
-- migrate:up
CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    timestamp     TIMESTAMPTZ NOT NULL DEFAULT now(),
    user_id       TEXT,
    org_id        TEXT,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT,
    details       JSONB NOT NULL DEFAULT '{}'::jsonb,
    ip_address    TEXT,
    user_agent    TEXT
);

CREATE INDEX idx_audit_log_user_time ON audit_log (user_id, timestamp);
CREATE INDEX idx_audit_log_org_time ON audit_log (org_id, timestamp);
CREATE INDEX idx_audit_log_timestamp ON audit_log (timestamp);

CREATE TABLE usage_events (
    id         BIGSERIAL PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    count      INTEGER NOT NULL DEFAULT 1,
    metadata   JSONB NOT NULL DEFAULT '{}'::jsonb,
    timestamp  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_usage_events_org_time ON usage_events (org_id, timestamp);

-- migrate:down
DROP TABLE usage_events;
DROP TABLE audit_log;
