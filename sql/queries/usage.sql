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

-- name: ClaimUsageEventsBefore :many
-- A batch of events older than the cutoff for the roll-up, in a transaction: rows another
-- process has claimed are skipped on PostgreSQL (SQLite runs one writer at a time).
SELECT id FROM usage_events
WHERE timestamp < sqlc.arg(cutoff)
ORDER BY id
LIMIT sqlc.arg(lim)
FOR UPDATE SKIP LOCKED;

-- name: RollUpUsageEvents :execrows
-- Adds the claimed events to their month's totals (run before DeleteUsageEvents, in the
-- same transaction). The totals are written in key order, so two runs at once lock the
-- rows they share in the same order and neither waits for the other in a cycle.
INSERT INTO usage_monthly (org_id, month, event_type, total)
SELECT org_id, date_trunc('month', timestamp)::timestamptz, event_type, sum(count)::bigint
FROM usage_events
WHERE id = ANY(sqlc.arg(ids)::bigint[])
GROUP BY org_id, date_trunc('month', timestamp)::timestamptz, event_type
ORDER BY 1, 2, 3
ON CONFLICT (org_id, month, event_type) DO UPDATE
SET total = usage_monthly.total + EXCLUDED.total;

-- name: DeleteUsageEvents :execrows
DELETE FROM usage_events WHERE id = ANY(sqlc.arg(ids)::bigint[]);

-- name: ListUsageMonthly :many
-- The rolled-up history of an organization from a month on.
SELECT month, event_type, total FROM usage_monthly
WHERE org_id = $1 AND month >= sqlc.arg(since)
ORDER BY month, event_type;
