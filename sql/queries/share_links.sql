-- name: CreateShareLink :one
INSERT INTO share_links (token, debate_id, created_by, visibility, expires_at)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: GetActiveShareLink :one
-- A link that is neither revoked nor expired; counts the view.
UPDATE share_links SET view_count = view_count + 1
WHERE token = $1 AND NOT revoked AND (expires_at IS NULL OR expires_at > now())
RETURNING *;

-- name: ListShareLinksForDebate :many
SELECT * FROM share_links WHERE debate_id = $1 ORDER BY created_at, token;

-- name: RevokeShareLink :execrows
UPDATE share_links SET revoked = TRUE WHERE token = $1 AND NOT revoked;

-- name: DeleteExpiredShareLinks :execrows
DELETE FROM share_links WHERE expires_at IS NOT NULL AND expires_at <= sqlc.arg(now_at);
