-- name: GetAuthor :one
SELECT * FROM authors WHERE id = $1;

-- name: ListAuthors :many
-- Authors by name, NULL bios last as PostgreSQL sorts them.
SELECT id, name, bio FROM authors WHERE mood = ANY(sqlc.arg(moods)::mood[]) ORDER BY bio, name;

-- name: CountAuthors :one
SELECT count(*) FROM authors;

-- name: CreateAuthor :one
INSERT INTO authors (name, bio, mood, tags, profile, external, born_on)
VALUES ($1, sqlc.narg(bio), $2, $3, $4, $5, $6)
RETURNING *;

-- name: RenameAuthor :execrows
UPDATE authors SET name = @name WHERE id = @id;

-- name: TouchAuthors :execresult
UPDATE authors SET created_at = now() - interval '1 day' WHERE id IN (sqlc.slice(ids));

-- name: DeleteAuthor :exec
DELETE FROM authors WHERE id = $1;

-- name: ImportAuthors :copyfrom
INSERT INTO authors (name, mood, tags) VALUES ($1, $2, $3);

-- name: LatestBio :one
SELECT max(bio) AS bio FROM authors;
