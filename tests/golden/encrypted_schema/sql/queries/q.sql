-- name: One :one
SELECT id FROM secrets WHERE id = $1;
