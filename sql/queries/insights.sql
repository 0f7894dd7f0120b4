-- name: SaveInsight :one
INSERT INTO insights (id, debate_id, type, title, description, confidence, agents, evidence)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO UPDATE
SET title = EXCLUDED.title, description = EXCLUDED.description,
    confidence = EXCLUDED.confidence, agents = EXCLUDED.agents, evidence = EXCLUDED.evidence
RETURNING *;

-- name: GetInsight :one
SELECT * FROM insights WHERE id = $1;

-- name: ListInsightsByType :many
SELECT * FROM insights WHERE type = $1 ORDER BY created_at DESC, id LIMIT sqlc.arg(lim) OFFSET sqlc.arg(off);

-- name: ListInsightsForDebate :many
SELECT * FROM insights WHERE debate_id = $1 ORDER BY confidence DESC, id;

-- name: InsightTypeCounts :many
SELECT type, count(*) AS insights, avg(confidence) AS avg_confidence, max(created_at) AS latest
FROM insights GROUP BY type ORDER BY insights DESC, type;

-- name: DeleteInsight :execrows
DELETE FROM insights WHERE id = $1;
