-- name: ReserveSlugSuffix :one
-- Atomically takes the next number for a slug base: 0 for the first debate, then 1, 2...
INSERT INTO debate_slug_counters (base, used)
VALUES (sqlc.arg(base), 0)
ON CONFLICT (base) DO UPDATE SET used = debate_slug_counters.used + 1
RETURNING used;

-- name: InsertDebate :one
INSERT INTO debates (id, slug, task, agents, final_answer, consensus_reached, confidence,
                     rounds_used, duration_seconds, grounded_verdict)
VALUES (sqlc.arg(id), sqlc.arg(slug), sqlc.arg(task), sqlc.arg(agents), sqlc.narg(final_answer),
        sqlc.arg(consensus_reached), sqlc.narg(confidence), sqlc.narg(rounds_used),
        sqlc.narg(duration_seconds), sqlc.narg(grounded_verdict))
RETURNING *;

-- name: UpdateDebateResult :one
UPDATE debates
SET final_answer = sqlc.narg(final_answer),
    consensus_reached = sqlc.arg(consensus_reached),
    confidence = sqlc.narg(confidence),
    rounds_used = sqlc.narg(rounds_used),
    duration_seconds = sqlc.narg(duration_seconds),
    grounded_verdict = sqlc.narg(grounded_verdict)
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: GetDebate :one
SELECT * FROM debates WHERE id = $1;

-- name: GetDebateBySlug :one
SELECT * FROM debates WHERE slug = $1;

-- name: ListRecentDebates :many
SELECT * FROM debates ORDER BY created_at DESC, id DESC LIMIT sqlc.arg(lim) OFFSET sqlc.arg(off);

-- name: SearchDebates :many
-- Case-insensitive substring search over the task and the final answer.
SELECT * FROM debates
WHERE task ILIKE '%' || sqlc.arg(pattern) || '%' OR final_answer ILIKE '%' || sqlc.arg(pattern) || '%'
ORDER BY created_at DESC, id DESC
LIMIT sqlc.arg(lim);

-- name: IncrementDebateViews :one
UPDATE debates SET view_count = view_count + 1 WHERE slug = $1 RETURNING view_count;

-- name: DeleteDebate :execrows
DELETE FROM debates WHERE id = $1;

-- name: CountDebates :one
SELECT count(*) AS debates FROM debates;

-- name: GetDebatesByIds :many
-- Any number of ids: one statement, bound as one array (json_each on SQLite), no chunking.
SELECT * FROM debates WHERE id = ANY(sqlc.arg(ids)::text[]) ORDER BY id;

-- name: ExistingDebateIds :many
SELECT id FROM debates WHERE id = ANY(sqlc.arg(ids)::text[]) ORDER BY id;

-- name: DebateStats :one
SELECT count(*) AS total,
       count(*) FILTER (WHERE consensus_reached) AS with_consensus,
       avg(confidence) AS avg_confidence,
       COALESCE(sum(view_count), 0)::bigint AS views
FROM debates;

-- name: AddTrace :one
INSERT INTO traces (id, debate_id, agent, round, event_type, content, data)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: ListTraces :many
SELECT * FROM traces WHERE debate_id = $1 ORDER BY round, created_at, id;

-- name: RecordPosition :one
INSERT INTO positions (debate_id, agent, round, claim, confidence, changed)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (debate_id, agent, round) DO UPDATE
SET claim = EXCLUDED.claim, confidence = EXCLUDED.confidence, changed = EXCLUDED.changed
RETURNING *;

-- name: ListPositions :many
SELECT * FROM positions WHERE debate_id = $1 ORDER BY round, agent;

-- name: CountPositionChanges :many
SELECT agent, count(*) FILTER (WHERE changed) AS changes, count(*) AS positions
FROM positions WHERE debate_id = $1 GROUP BY agent ORDER BY agent;

-- name: SaveArtifact :one
INSERT INTO debate_artifacts (loop_id, cycle_number, phase, task, agents, transcript,
                              consensus_reached, confidence, winning_proposal, vote_tally)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING *;

-- name: ListArtifacts :many
SELECT * FROM debate_artifacts WHERE loop_id = $1 ORDER BY cycle_number, id;

-- name: GetArtifact :one
SELECT * FROM debate_artifacts WHERE id = $1;
