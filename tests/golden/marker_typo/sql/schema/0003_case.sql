-- Migrate:Up
CREATE INDEX idx_authors_name ON authors (name);
--migrate:down
DROP INDEX idx_authors_name;
