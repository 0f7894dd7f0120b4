-- name: AddNote :exec
INSERT INTO notes (owner, n, body) VALUES ($1, $2, $3);
