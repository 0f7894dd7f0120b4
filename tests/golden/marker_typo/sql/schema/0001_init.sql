-- migrate:up
CREATE TABLE authors (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, bio TEXT);

-- migrate:down
DROP TABLE authors;
