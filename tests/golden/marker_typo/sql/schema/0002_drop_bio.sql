-- migrate:up
ALTER TABLE authors ADD COLUMN email TEXT;

-- migrate: down
ALTER TABLE authors DROP COLUMN bio;
