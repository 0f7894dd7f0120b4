-- Problems of every stage in one file: sqlc refuses two queries, translation one, the
-- SQLite check one; the good query between them generates nothing since the run fails.

-- name: BadColumn :one
SELECT id, nmae FROM authors WHERE id = $1;

-- name: Good :many
SELECT id, name FROM authors ORDER BY id;

-- name: BadTable :one
SELECT id FROM nowhere WHERE id = $1;

-- name: MonthInterval :many
SELECT id FROM authors WHERE created_at > now() - interval '1 month';

-- name: UnknownFunction :one
SELECT no_such_function(id)::text AS v FROM authors WHERE id = $1;
