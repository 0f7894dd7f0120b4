-- name: SaveCycle :one
INSERT INTO nomic_cycles (loop_id, cycle_number, phase, stage, task_description, total_tasks)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (loop_id, cycle_number) DO UPDATE
SET phase = EXCLUDED.phase, stage = EXCLUDED.stage,
    task_description = EXCLUDED.task_description, total_tasks = EXCLUDED.total_tasks
RETURNING *;

-- name: UpdateCyclePhase :one
UPDATE nomic_cycles SET phase = $3, stage = $4 WHERE loop_id = $1 AND cycle_number = $2
RETURNING *;

-- name: CompleteTask :one
UPDATE nomic_cycles SET completed_tasks = completed_tasks + 1
WHERE loop_id = $1 AND cycle_number = $2 AND completed_tasks < total_tasks
RETURNING completed_tasks, total_tasks;

-- name: FinishCycle :one
UPDATE nomic_cycles
SET completed_at = now(), success = sqlc.arg(success), git_commit = sqlc.narg(git_commit),
    error_message = sqlc.narg(error_message)
WHERE loop_id = sqlc.arg(loop_id) AND cycle_number = sqlc.arg(cycle_number)
RETURNING *;

-- name: GetCycle :one
SELECT * FROM nomic_cycles WHERE loop_id = $1 AND cycle_number = $2;

-- name: ListCycles :many
SELECT * FROM nomic_cycles WHERE loop_id = $1 ORDER BY cycle_number;

-- name: LatestCycle :one
SELECT * FROM nomic_cycles WHERE loop_id = $1 ORDER BY cycle_number DESC LIMIT 1;

-- name: LoopSummary :one
SELECT count(*) AS cycles,
       count(*) FILTER (WHERE success) AS succeeded,
       count(*) FILTER (WHERE success = FALSE) AS failed,
       max(cycle_number) AS last_cycle
FROM nomic_cycles WHERE loop_id = $1;

-- name: AppendStreamEvent :one
INSERT INTO stream_events (loop_id, cycle, event_type, event_data, agent) VALUES ($1, $2, $3, $4, $5)
RETURNING id;

-- name: AppendStreamEvents :copyfrom
INSERT INTO stream_events (loop_id, cycle, event_type, event_data, agent, timestamp)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: ListStreamEvents :many
SELECT * FROM stream_events WHERE loop_id = $1 AND cycle = $2 ORDER BY id;

-- name: ListStreamEventsAfter :many
-- Resume a stream: events of a loop after the last id a client saw.
SELECT * FROM stream_events WHERE loop_id = $1 AND id > sqlc.arg(after_id) ORDER BY id LIMIT sqlc.arg(lim);

-- name: CountStreamEventsByType :many
SELECT event_type, count(*) AS events FROM stream_events WHERE loop_id = $1
GROUP BY event_type ORDER BY event_type;

-- name: RecordAgentMetrics :one
INSERT INTO agent_metrics (loop_id, cycle, agent_name, model, phase, messages_sent, proposals_made,
                           critiques_given, votes_won, tokens_used, latency_ms, error_count)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING *;

-- name: AgentMetricsTotals :many
SELECT agent_name,
       sum(messages_sent)::bigint AS messages,
       sum(tokens_used)::bigint AS tokens,
       sum(error_count)::bigint AS errors,
       avg(latency_ms) AS avg_latency_ms
FROM agent_metrics WHERE loop_id = $1
GROUP BY agent_name ORDER BY agent_name;

-- name: RecordRollback :one
INSERT INTO nomic_rollbacks (id, loop_id, cycle_number, phase, reason, severity, rolled_back_commit,
                             preserved_branch, files_affected, diff_summary, error_message)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING *;

-- name: ListRollbacks :many
SELECT * FROM nomic_rollbacks WHERE loop_id = $1 ORDER BY cycle_number, created_at, id;

-- name: RecordEvolution :one
INSERT INTO cycle_evolution (loop_id, cycle_number, evolution_type, description, prompt_changes,
                             metrics_before, metrics_after)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: ListEvolution :many
SELECT * FROM cycle_evolution WHERE loop_id = $1 ORDER BY cycle_number, id;

-- name: RecordFileChange :one
INSERT INTO cycle_file_changes (loop_id, cycle_number, file_path, change_type, lines_added, lines_removed)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: ListFileChanges :many
SELECT * FROM cycle_file_changes WHERE loop_id = $1 AND cycle_number = $2 ORDER BY id;

-- name: FileChurn :many
SELECT file_path, count(*) AS changes, sum(lines_added + lines_removed)::bigint AS lines
FROM cycle_file_changes WHERE loop_id = $1
GROUP BY file_path ORDER BY lines DESC, file_path LIMIT sqlc.arg(lim);
