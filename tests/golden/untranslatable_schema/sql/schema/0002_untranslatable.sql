-- migrate:up
ALTER TABLE authors ALTER COLUMN name TYPE varchar(200) USING upper(name);
CREATE INDEX idx_authors_tags ON authors USING gin (tags);
ALTER TABLE authors ADD COLUMN id2 BIGSERIAL;
-- migrate:down
SELECT 1;
