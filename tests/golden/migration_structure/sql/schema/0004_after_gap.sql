-- migrate:up
ALTER TABLE authors ADD COLUMN bio TEXT;
-- migrate:down
ALTER TABLE authors DROP COLUMN bio;
-- migrate:up
ALTER TABLE authors ADD COLUMN email TEXT;
