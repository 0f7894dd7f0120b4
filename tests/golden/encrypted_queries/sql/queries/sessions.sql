-- name: EitherSession :many
SELECT user_name FROM sessions WHERE token = $1 OR user_name = $2;

-- name: NotSession :many
SELECT user_name FROM sessions WHERE NOT (token = $1);

-- name: SessionExists :one
SELECT EXISTS (SELECT 1 FROM sessions WHERE token = $1);

-- name: TokenPrefix :many
SELECT user_name FROM sessions WHERE token > $1;

-- name: EndSessions :batchexec
DELETE FROM sessions WHERE token = $1;

-- name: TwoSessions :many
SELECT a.user_name FROM sessions a, sessions b WHERE a.token = $1 AND b.token = $2;

-- name: GroupedTokens :many
SELECT token FROM sessions GROUP BY token;
