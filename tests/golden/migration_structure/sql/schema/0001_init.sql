CREATE TABLE early (id BIGINT PRIMARY KEY);
-- migrate:up
CREATE TABLE authors (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL);
-- migrate:down
DROP TABLE authors;
