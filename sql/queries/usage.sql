-- name: RecordUsageEvent :one
INSERT INTO usage_events (org_id, event_type, count, metadata)
VALUES ($1, $2, $3, $4)
RETURNING *;

-- name: SumUsageSince :many
SELECT event_type, sum(count)::bigint AS total
FROM usage_events
WHERE org_id = $1 AND timestamp >= sqlc.arg(since)
GROUP BY event_type
ORDER BY event_type;

-- name: PruneUsageEventsBefore :execrows
DELETE FROM usage_events WHERE timestamp < sqlc.arg(cutoff);

-- name: MonthlyUsageByOrg :many
-- Usage per event type in each calendar month (UTC) from a start time.
SELECT date_trunc('month', timestamp)::timestamptz AS month, event_type, sum(count)::bigint AS total
FROM usage_events
WHERE org_id = $1 AND timestamp >= sqlc.arg(since)
GROUP BY month, event_type
ORDER BY month, event_type;

-- name: PruneUsageOlderThanDays :execrows
DELETE FROM usage_events WHERE timestamp < now() - sqlc.arg(days)::int * interval '1 day';
