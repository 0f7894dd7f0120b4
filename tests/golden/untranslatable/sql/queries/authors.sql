-- name: ByIds :many
SELECT id FROM authors
WHERE id = ANY(ARRAY[1, 2]::bigint[]);

-- name: ByWeek :many
SELECT date_trunc('week', created_at) AS week FROM authors;

-- name: Unknown :many
SELECT soundex(name) AS code FROM authors;
