-- name: SearchNotes :many
SELECT id, title, created_at FROM notes
WHERE to_tsvector('simple', title) @@ phraseto_tsquery('simple', sqlc.arg(query))
ORDER BY id LIMIT sqlc.arg(lim);

-- name: CountNotes :one
SELECT count(*) AS notes FROM notes;
