-- Every annotation kind, and every result shape: a table's model (shared by the queries
-- returning it), a row class, a scalar, a nullable scalar.

-- name: AddNote :one
INSERT INTO notes (title, body, labels, meta) VALUES ($1, $2, $3, $4)
RETURNING id, title, body, state, labels, meta, created_at;

-- name: GetNote :one
SELECT id, title, body, state, labels, meta, created_at FROM notes WHERE id = $1;

-- name: ListNotes :many
-- Newest first (ids are given in insertion order).
SELECT id, title, body, state, labels, meta, created_at FROM notes
WHERE id IN (sqlc.slice('ids')) ORDER BY id DESC;

-- name: NoteTitles :many
SELECT id, title FROM notes WHERE state = $1 ORDER BY id;

-- name: CountNotes :one
SELECT count(*) FROM notes;

-- name: NoteBody :one
SELECT body FROM notes WHERE id = $1;

-- name: Publish :exec
UPDATE notes SET state = 'published' WHERE id = $1;

-- name: DeleteDrafts :execrows
DELETE FROM notes WHERE state = 'draft';

-- name: Retitle :execresult
UPDATE notes SET title = $2 WHERE id = $1;

-- name: CopyNotes :copyfrom
INSERT INTO notes (title, body, labels, meta) VALUES ($1, $2, $3, $4);

-- name: LabelNotes :batchexec
UPDATE notes SET labels = $2 WHERE id = $1;
