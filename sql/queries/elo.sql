-- name: GetRating :one
SELECT * FROM ratings WHERE agent_name = $1 AND domain = $2;

-- name: EnsureRating :one
INSERT INTO ratings (agent_name, domain, elo) VALUES ($1, $2, $3)
ON CONFLICT (agent_name, domain) DO UPDATE SET agent_name = EXCLUDED.agent_name
RETURNING *;

-- name: ApplyMatchResult :one
-- One side of a match: the new rating and the win/loss/draw count.
UPDATE ratings
SET elo = sqlc.arg(elo),
    wins = wins + CASE WHEN sqlc.arg(outcome)::text = 'win' THEN 1 ELSE 0 END,
    losses = losses + CASE WHEN sqlc.arg(outcome)::text = 'loss' THEN 1 ELSE 0 END,
    draws = draws + CASE WHEN sqlc.arg(outcome)::text = 'draw' THEN 1 ELSE 0 END,
    debates_count = debates_count + 1,
    updated_at = now()
WHERE agent_name = sqlc.arg(agent_name) AND domain = sqlc.arg(domain)
RETURNING *;

-- name: RecordMatch :one
INSERT INTO matches (debate_id, winner, participants, domain, scores, elo_changes)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: GetMatchByDebate :one
SELECT * FROM matches WHERE debate_id = $1;

-- name: ListRecentMatches :many
SELECT * FROM matches WHERE domain = $1 ORDER BY created_at DESC, id DESC LIMIT sqlc.arg(lim);

-- name: AppendEloHistory :exec
INSERT INTO elo_history (agent_name, domain, elo, debate_id) VALUES ($1, $2, $3, $4);

-- name: GetEloHistory :many
SELECT * FROM elo_history WHERE agent_name = $1 AND domain = $2 ORDER BY id DESC LIMIT sqlc.arg(lim);

-- name: Leaderboard :many
SELECT agent_name, elo, wins, losses, draws, debates_count,
       (wins::float8 / NULLIF(wins + losses + draws, 0))::float8 AS win_rate
FROM ratings
WHERE domain = $1
ORDER BY elo DESC, agent_name
LIMIT sqlc.arg(lim) OFFSET sqlc.arg(off);

-- name: RecordCalibrationPrediction :one
INSERT INTO calibration_predictions (tournament_id, predictor_agent, predicted_winner, confidence)
VALUES ($1, $2, $3, $4)
ON CONFLICT (tournament_id, predictor_agent) DO UPDATE
SET predicted_winner = EXCLUDED.predicted_winner, confidence = EXCLUDED.confidence
RETURNING *;

-- name: ListCalibrationPredictions :many
SELECT * FROM calibration_predictions WHERE tournament_id = $1 ORDER BY predictor_agent;

-- name: RecordDomainCalibration :one
INSERT INTO domain_calibration (agent_name, domain, total_predictions, total_correct, brier_sum)
VALUES (sqlc.arg(agent_name), sqlc.arg(domain), 1, CASE WHEN sqlc.arg(correct)::boolean THEN 1 ELSE 0 END, sqlc.arg(brier)::float8)
ON CONFLICT (agent_name, domain) DO UPDATE
SET total_predictions = domain_calibration.total_predictions + 1,
    total_correct = domain_calibration.total_correct + EXCLUDED.total_correct,
    brier_sum = domain_calibration.brier_sum + EXCLUDED.brier_sum,
    updated_at = now()
RETURNING *;

-- name: GetCalibrationSummary :many
SELECT domain, total_predictions, total_correct,
       (brier_sum / NULLIF(total_predictions, 0))::float8 AS brier_score
FROM domain_calibration WHERE agent_name = $1 ORDER BY domain;
