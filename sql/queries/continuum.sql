-- name: AddMemory :one
INSERT INTO continuum_memory (id, tier, content, importance, surprise_score, metadata, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE
SET content = EXCLUDED.content, importance = EXCLUDED.importance,
    surprise_score = EXCLUDED.surprise_score, metadata = EXCLUDED.metadata,
    expires_at = EXCLUDED.expires_at, update_count = continuum_memory.update_count + 1,
    updated_at = now()
RETURNING *;

-- name: GetMemory :one
SELECT * FROM continuum_memory WHERE id = $1;

-- name: ListMemoriesByTier :many
SELECT * FROM continuum_memory
WHERE tier = $1 AND (expires_at IS NULL OR expires_at > sqlc.arg(now_at))
ORDER BY importance DESC, id
LIMIT sqlc.arg(lim);

-- name: MoveMemoryTier :one
-- Promotion or demotion: only from the tier the caller saw, so concurrent moves do not race.
UPDATE continuum_memory
SET tier = sqlc.arg(to_tier), last_promotion_at = now(), updated_at = now()
WHERE id = sqlc.arg(id) AND tier = sqlc.arg(from_tier)
RETURNING *;

-- name: RecordTierTransition :one
INSERT INTO tier_transitions (memory_id, from_tier, to_tier, reason, surprise_score)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: ListTierTransitions :many
SELECT * FROM tier_transitions WHERE memory_id = $1 ORDER BY id;

-- name: RecordMemoryOutcome :one
UPDATE continuum_memory
SET success_count = success_count + CASE WHEN sqlc.arg(success)::boolean THEN 1 ELSE 0 END,
    failure_count = failure_count + CASE WHEN sqlc.arg(success)::boolean THEN 0 ELSE 1 END,
    consolidation_score = LEAST(1.0, consolidation_score + sqlc.arg(delta)::float8),
    updated_at = now()
WHERE id = sqlc.arg(id)
RETURNING success_count, failure_count, consolidation_score;

-- name: ExpireMemories :execrows
-- Removes expired memories, keeping red-line (protected) ones.
DELETE FROM continuum_memory
WHERE expires_at IS NOT NULL AND expires_at <= sqlc.arg(now_at) AND NOT red_line;

-- name: SetRedLine :execrows
UPDATE continuum_memory SET red_line = $2, red_line_reason = $3 WHERE id = $1;

-- name: CountMemoriesByTier :many
SELECT tier, count(*) AS memories, avg(importance) AS avg_importance
FROM continuum_memory GROUP BY tier ORDER BY tier;

-- name: DeleteMemory :execrows
DELETE FROM continuum_memory WHERE id = $1;
