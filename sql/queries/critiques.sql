-- name: StoreDebateResult :one
-- The critique store's debate record (same table as the debate store).
INSERT INTO debates (id, slug, task, final_answer, consensus_reached, confidence, rounds_used,
                     duration_seconds, grounded_verdict)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO UPDATE
SET final_answer = EXCLUDED.final_answer, consensus_reached = EXCLUDED.consensus_reached,
    confidence = EXCLUDED.confidence, rounds_used = EXCLUDED.rounds_used,
    duration_seconds = EXCLUDED.duration_seconds, grounded_verdict = EXCLUDED.grounded_verdict
RETURNING id;

-- name: StoreCritique :one
INSERT INTO critiques (debate_id, agent, target_agent, issues, suggestions, severity, reasoning,
                       led_to_improvement, expected_usefulness, actual_usefulness,
                       prediction_error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING *;

-- name: ListCritiquesForDebate :many
SELECT * FROM critiques WHERE debate_id = $1 ORDER BY id;

-- name: ListCritiquesByAgent :many
SELECT * FROM critiques WHERE agent = $1 ORDER BY id DESC LIMIT sqlc.arg(lim);

-- name: MarkCritiqueOutcome :one
UPDATE critiques
SET led_to_improvement = sqlc.arg(led_to_improvement),
    actual_usefulness = sqlc.narg(actual_usefulness),
    prediction_error = abs(COALESCE(expected_usefulness, 0) - COALESCE(sqlc.narg(actual_usefulness)::float8, 0))
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: UpsertPattern :one
INSERT INTO patterns (id, issue_type, issue_text, suggestion_text, avg_severity, example_task)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE
SET suggestion_text = COALESCE(EXCLUDED.suggestion_text, patterns.suggestion_text),
    avg_severity = (patterns.avg_severity + EXCLUDED.avg_severity) / 2,
    updated_at = now()
RETURNING *;

-- name: RecordPatternOutcome :one
-- Counts a success or failure; the surprise score is how far the outcome was from the
-- pattern's base rate, the base rate its running success share.
UPDATE patterns
SET success_count = success_count + CASE WHEN sqlc.arg(success)::boolean THEN 1 ELSE 0 END,
    failure_count = failure_count + CASE WHEN sqlc.arg(success)::boolean THEN 0 ELSE 1 END,
    surprise_score = abs((CASE WHEN sqlc.arg(success)::boolean THEN 1.0 ELSE 0.0 END) - base_rate),
    base_rate = (success_count + CASE WHEN sqlc.arg(success)::boolean THEN 1 ELSE 0 END)::float8
                / (success_count + failure_count + 1),
    avg_severity = GREATEST(0.0, LEAST(1.0, (avg_severity * (success_count + failure_count)
                   + sqlc.arg(severity)::float8) / (success_count + failure_count + 1))),
    updated_at = now()
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: GetPattern :one
SELECT * FROM patterns WHERE id = $1;

-- name: TopPatterns :many
-- Most useful patterns of a type (or all types when the type is NULL).
SELECT * FROM patterns
WHERE sqlc.narg(issue_type)::text IS NULL OR issue_type = sqlc.narg(issue_type)
ORDER BY success_count DESC, id
LIMIT sqlc.arg(lim);

-- name: ArchiveStalePatterns :execrows
-- Adaptive forgetting, step 1: copy patterns untouched since the cutoff that never proved useful.
INSERT INTO patterns_archive (id, issue_type, issue_text, suggestion_text, success_count,
                              failure_count, avg_severity, surprise_score, base_rate,
                              created_at, updated_at, archive_reason)
SELECT p.id, p.issue_type, p.issue_text, p.suggestion_text, p.success_count, p.failure_count,
       p.avg_severity, p.surprise_score, p.base_rate, p.created_at, p.updated_at, sqlc.arg(reason)
FROM patterns p
WHERE p.updated_at < sqlc.arg(cutoff)::timestamptz AND p.success_count <= sqlc.arg(max_successes)::int
ON CONFLICT (id) DO NOTHING;

-- name: DeleteArchivedPatterns :execrows
-- Adaptive forgetting, step 2 (same transaction): drop what step 1 archived.
DELETE FROM patterns WHERE id IN (SELECT id FROM patterns_archive);

-- name: ListArchivedPatterns :many
SELECT * FROM patterns_archive ORDER BY archived_at DESC, id LIMIT sqlc.arg(lim);

-- name: UpdateReputation :one
INSERT INTO agent_reputation (agent_name, proposals_made, proposals_accepted, critiques_given,
                              critiques_valuable, total_predictions, total_prediction_error)
VALUES (sqlc.arg(agent_name), sqlc.arg(proposals_made), sqlc.arg(proposals_accepted),
        sqlc.arg(critiques_given), sqlc.arg(critiques_valuable), sqlc.arg(predictions),
        sqlc.arg(prediction_error))
ON CONFLICT (agent_name) DO UPDATE
SET proposals_made = agent_reputation.proposals_made + EXCLUDED.proposals_made,
    proposals_accepted = agent_reputation.proposals_accepted + EXCLUDED.proposals_accepted,
    critiques_given = agent_reputation.critiques_given + EXCLUDED.critiques_given,
    critiques_valuable = agent_reputation.critiques_valuable + EXCLUDED.critiques_valuable,
    total_predictions = agent_reputation.total_predictions + EXCLUDED.total_predictions,
    total_prediction_error = agent_reputation.total_prediction_error + EXCLUDED.total_prediction_error,
    calibration_score = 1.0 - LEAST(1.0, (agent_reputation.total_prediction_error + EXCLUDED.total_prediction_error)
        / NULLIF(agent_reputation.total_predictions + EXCLUDED.total_predictions, 0)),
    updated_at = now()
RETURNING *;

-- name: GetReputation :one
SELECT * FROM agent_reputation WHERE agent_name = $1;

-- name: ListReputations :many
SELECT * FROM agent_reputation ORDER BY calibration_score DESC, agent_name;

-- name: CritiqueStats :one
SELECT
    (SELECT count(*) FROM critiques) AS critiques,
    (SELECT count(*) FROM patterns) AS patterns,
    (SELECT count(*) FROM debates) AS debates,
    (SELECT (count(*) FILTER (WHERE consensus_reached)::float8 / NULLIF(count(*), 0))::float8
     FROM debates) AS consensus_rate,
    (SELECT avg(confidence) FROM debates) AS avg_confidence;
