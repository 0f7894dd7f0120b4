-- migrate:up
CREATE TYPE note_state AS ENUM ('draft', 'published');

CREATE TABLE notes (
    id         BIGSERIAL PRIMARY KEY,
    title      TEXT NOT NULL,
    body       TEXT,
    state      note_state NOT NULL DEFAULT 'draft',
    labels     TEXT[] NOT NULL DEFAULT '{}',
    meta       JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- migrate:down
DROP TABLE notes;
DROP TYPE note_state;
