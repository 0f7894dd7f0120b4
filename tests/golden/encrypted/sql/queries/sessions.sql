-- name: CreateSession :one
INSERT INTO sessions (token, user_name) VALUES ($1, $2) RETURNING *;

-- name: GetSession :one
SELECT token, user_name, hits FROM sessions WHERE token = $1;

-- name: TouchSession :one
UPDATE sessions SET hits = hits + 1 WHERE token = $1 AND hits < sqlc.arg(max_hits)
RETURNING hits;

-- name: ListSessions :many
SELECT * FROM sessions WHERE user_name = $1 ORDER BY token;

-- name: SessionByToken :many
SELECT s.user_name, s.hits FROM sessions s WHERE (s.token = $1 AND s.hits >= 0);

-- name: EndSession :execrows
DELETE FROM sessions WHERE token = $1;

-- name: ForgetSession :exec
DELETE FROM sessions WHERE $1 = token;

-- name: SaveInvite :one
INSERT INTO invites (code, note) VALUES ($1, $2)
ON CONFLICT (code) DO UPDATE SET note = EXCLUDED.note
RETURNING *;

-- name: InviteByCode :one
SELECT id, code, note FROM invites WHERE code = $1;
