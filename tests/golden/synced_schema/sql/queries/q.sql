-- name: One :one
SELECT id FROM twice WHERE id = $1;
