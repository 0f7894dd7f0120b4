-- name: SearchNotes :many
SELECT n.id, n.title AS heading, n.id AS created_at FROM idx_notes_title_fts
JOIN notes n ON n.id = idx_notes_title_fts.rowid
WHERE idx_notes_title_fts.title MATCH sqlc.arg(words) ORDER BY n.id LIMIT sqlc.arg(lim);

-- name: Missing :one
SELECT count(*) AS notes FROM notes;
