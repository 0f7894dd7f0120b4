-- migrate:up
-- only a comment here

-- migrate:down
