-- name: GetAuthor :one
SELECT id FROM authors WHERE id = $1;

-- name: GetAuthor :one
SELECT name FROM authors WHERE id = $1;
