-- name: GetAuthor :one
SELECT id, name FROM authors WHERE id = $1;

-- forgot the name line here
DELETE FROM authors WHERE id = $1;

-- name: ListAuthors :many
SELECT id, name FROM authors ORDER BY id;
UPDATE authors SET name = 'x';
