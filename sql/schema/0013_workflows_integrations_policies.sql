-- The remaining stores of the seeds: workflows with their findings and checkpoints (a
-- workflow resumes after a crash from its latest checkpoint), per-organization
-- integration configs, and policy rules with their violations.
-- migrate:up
CREATE TYPE workflow_status AS ENUM
    ('pending', 'running', 'paused', 'completed', 'failed', 'cancelled');
CREATE TYPE finding_severity AS ENUM ('info', 'low', 'medium', 'high', 'critical');

CREATE TABLE workflows (
    id           TEXT PRIMARY KEY,
    org_id       TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    definition   JSONB NOT NULL DEFAULT '{}'::jsonb,
    status       workflow_status NOT NULL DEFAULT 'pending',
    created_by   TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);

CREATE INDEX idx_workflows_org ON workflows (org_id, created_at);
CREATE INDEX idx_workflows_created_by ON workflows (created_by);

CREATE TABLE workflow_findings (
    id           BIGSERIAL PRIMARY KEY,
    workflow_id  TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    severity     finding_severity NOT NULL,
    title        TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '',
    evidence     JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_workflow_findings_workflow ON workflow_findings (workflow_id, id);

CREATE TABLE workflow_checkpoints (
    workflow_id  TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    step         INTEGER NOT NULL CHECK (step >= 0),
    state        JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, step)
);

CREATE TABLE integrations (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    config       JSONB NOT NULL DEFAULT '{}'::jsonb,
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (org_id, provider)
);

CREATE TABLE policy_rules (
    id           TEXT PRIMARY KEY,
    org_id       TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    rule         JSONB NOT NULL,
    severity     finding_severity NOT NULL DEFAULT 'medium',
    enabled      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_policy_rules_org ON policy_rules (org_id, name);

CREATE TABLE policy_violations (
    id           BIGSERIAL PRIMARY KEY,
    rule_id      TEXT NOT NULL REFERENCES policy_rules (id) ON DELETE CASCADE,
    debate_id    TEXT REFERENCES debates (id) ON DELETE CASCADE,
    subject      TEXT NOT NULL,
    detail       JSONB NOT NULL DEFAULT '{}'::jsonb,
    resolved     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at  TIMESTAMPTZ
);

CREATE INDEX idx_policy_violations_rule ON policy_violations (rule_id, created_at);
CREATE INDEX idx_policy_violations_debate ON policy_violations (debate_id);

-- migrate:down
DROP TABLE policy_violations;
DROP TABLE policy_rules;
DROP TABLE integrations;
DROP TABLE workflow_checkpoints;
DROP TABLE workflow_findings;
DROP TABLE workflows;
DROP TYPE finding_severity;
DROP TYPE workflow_status;
