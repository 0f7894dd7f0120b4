-- Users and organizations (Aragora database documentation: users store).
-- migrate:up
CREATE TYPE user_role AS ENUM ('owner', 'admin', 'member', 'viewer');

CREATE TABLE users (
    id                 TEXT PRIMARY KEY,
    email              TEXT NOT NULL UNIQUE,
    password_hash      TEXT NOT NULL,
    password_salt      TEXT NOT NULL,
    name               TEXT NOT NULL DEFAULT '',
    org_id             TEXT,
    role               user_role NOT NULL DEFAULT 'member',
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at      TIMESTAMPTZ,
    is_active          BOOLEAN NOT NULL DEFAULT TRUE,
    email_verified     BOOLEAN NOT NULL DEFAULT FALSE,
    avatar_url         TEXT,
    preferences        JSONB NOT NULL DEFAULT '{}'::jsonb,
    locked_until       TIMESTAMPTZ,
    failed_login_count INTEGER NOT NULL DEFAULT 0 CHECK (failed_login_count >= 0),
    lockout_reason     TEXT,
    last_activity_at   TIMESTAMPTZ,
    last_debate_at     TIMESTAMPTZ
);

CREATE INDEX idx_users_org_id ON users (org_id);
CREATE INDEX idx_users_created_at ON users (created_at);

CREATE TABLE organizations (
    id                     TEXT PRIMARY KEY,
    name                   TEXT NOT NULL,
    slug                   TEXT NOT NULL UNIQUE,
    tier                   TEXT NOT NULL DEFAULT 'free',
    owner_id               TEXT REFERENCES users (id) ON DELETE SET NULL,
    stripe_customer_id     TEXT,
    stripe_subscription_id TEXT,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    settings               JSONB NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX idx_organizations_owner_id ON organizations (owner_id);

-- migrate:down
DROP TABLE organizations;
DROP TABLE users;
DROP TYPE user_role;
