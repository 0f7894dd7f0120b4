-- name: GetAuthor :one
SELECT id FROM authors WHERE;
