-- name: AppendAuditEvent :one
INSERT INTO audit_log (user_id, org_id, action, resource_type, resource_id, details, ip_address, user_agent)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id;

-- name: AppendAuditEvents :copyfrom
INSERT INTO audit_log (timestamp, user_id, org_id, action, resource_type, resource_id, details, ip_address, user_agent)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: GetAuditEvent :one
SELECT * FROM audit_log WHERE id = $1;

-- name: ListAuditEventsByUser :many
SELECT * FROM audit_log
WHERE user_id = $1
ORDER BY timestamp DESC, id DESC
LIMIT sqlc.arg(lim);

-- name: ListAuditEventsByOrg :many
SELECT * FROM audit_log
WHERE org_id = $1
ORDER BY timestamp DESC, id DESC
LIMIT sqlc.arg(lim) OFFSET sqlc.arg(off);

-- name: ListAuditEventsInRange :many
SELECT * FROM audit_log
WHERE timestamp >= sqlc.arg(start_time) AND timestamp < sqlc.arg(end_time)
ORDER BY timestamp, id;

-- name: CountAuditEventsByAction :many
SELECT action, count(*) AS events, max(timestamp) AS last_seen
FROM audit_log
WHERE org_id = $1
GROUP BY action
ORDER BY events DESC, action;

-- name: AppendAuditEventsBatch :batchexec
-- The same insert as AppendAuditEvents, one statement per row (executemany).
INSERT INTO audit_log (timestamp, user_id, org_id, action, resource_type, resource_id, details, ip_address, user_agent)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: DeleteAuditEventsBefore :execrows
-- Retention, in bounded batches: at most lim of the oldest entries before the cutoff.
-- audit_log is append-only: this runs in a transaction that allowed retention up to the
-- same cutoff (Backend.allow_retention), else it is refused.
DELETE FROM audit_log
WHERE id IN (
    SELECT a.id FROM audit_log a WHERE a.timestamp < sqlc.arg(cutoff) ORDER BY a.id
    LIMIT sqlc.arg(lim)
);
