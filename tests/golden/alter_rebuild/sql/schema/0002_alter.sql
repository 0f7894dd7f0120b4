-- migrate:up
ALTER TABLE authors ADD COLUMN seen_at TIMESTAMPTZ NOT NULL DEFAULT now();
-- migrate:down
ALTER TABLE authors DROP COLUMN seen_at;
