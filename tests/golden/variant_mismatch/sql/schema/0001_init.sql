-- migrate:up
CREATE TABLE notes (
    id BIGSERIAL PRIMARY KEY,
    title TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_notes_title_fts ON notes USING gin (to_tsvector('simple', title));
-- migrate:down
DROP TABLE notes;
