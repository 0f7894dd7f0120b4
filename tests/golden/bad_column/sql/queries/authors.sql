-- name: GetAuthor :one
SELECT id, nmae FROM authors WHERE id = $1;

-- name: ListFromNowhere :many
SELECT id FROM nowhere;
