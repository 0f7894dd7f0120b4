-- name: RevokeToken :exec
INSERT INTO token_blacklist (jti, user_id, reason, expires_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (jti) DO NOTHING;

-- name: IsTokenRevoked :one
SELECT EXISTS (SELECT 1 FROM token_blacklist WHERE jti = $1) AS revoked;

-- name: RevokedAmong :many
-- Which of many token ids are revoked (one statement for any number of ids).
SELECT jti FROM token_blacklist WHERE jti = ANY(sqlc.arg(jtis)::text[]) ORDER BY jti;

-- name: PurgeExpiredTokens :execrows
DELETE FROM token_blacklist WHERE expires_at <= sqlc.arg(now_at);

-- name: CountRevokedTokensForUser :one
SELECT count(*) AS tokens FROM token_blacklist WHERE user_id = $1;

-- name: CreateWebhook :one
INSERT INTO webhooks (id, org_id, url, secret, events, active) VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: GetWebhook :one
SELECT * FROM webhooks WHERE id = $1;

-- name: ListWebhooksForOrg :many
SELECT * FROM webhooks WHERE org_id = $1 ORDER BY created_at, id;

-- name: ListActiveWebhooksForEvent :many
-- The active webhooks of an organization subscribed to an event: its name is in their
-- events, or they list '*' (every event). An empty list subscribes to nothing.
SELECT w.* FROM webhooks w
WHERE w.org_id = $1 AND w.active
  AND (sqlc.arg(event)::text = ANY(w.events) OR '*' = ANY(w.events))
ORDER BY w.id;

-- name: UpdateWebhook :one
UPDATE webhooks
SET url = COALESCE(sqlc.narg(url), url),
    events = COALESCE(sqlc.narg(events), events),
    active = COALESCE(sqlc.narg(active), active),
    updated_at = now()
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: RecordWebhookDelivery :one
-- Success resets the failure count; five failures in a row disable the hook.
UPDATE webhooks
SET failure_count = CASE WHEN sqlc.arg(ok)::boolean THEN 0 ELSE failure_count + 1 END,
    active = active AND (sqlc.arg(ok)::boolean OR failure_count + 1 < 5),
    last_triggered_at = now()
WHERE id = sqlc.arg(id)
RETURNING failure_count, active;

-- name: DeleteWebhook :execrows
DELETE FROM webhooks WHERE id = $1;

-- name: DeleteExpiredTokensBatch :execrows
-- At most lim blacklist entries whose token has expired (a token past its expiry is
-- refused anyway, so its entry is no longer needed).
DELETE FROM token_blacklist
WHERE jti IN (
    SELECT t.jti FROM token_blacklist t WHERE t.expires_at <= sqlc.arg(now_at) ORDER BY t.jti
    LIMIT sqlc.arg(lim)
);
