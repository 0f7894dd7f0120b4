-- name: CreateWorkflow :one
INSERT INTO workflows (id, org_id, name, definition, created_by)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: GetWorkflow :one
SELECT * FROM workflows WHERE id = $1;

-- name: SetWorkflowStatus :one
-- A terminal status (completed, failed, cancelled) also records when it finished.
UPDATE workflows
SET status = sqlc.arg(status), updated_at = now(),
    finished_at = CASE WHEN sqlc.arg(status)::workflow_status
                            IN ('completed', 'failed', 'cancelled')
                       THEN now() ELSE NULL END
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: ListWorkflowsForOrg :many
SELECT * FROM workflows WHERE org_id = $1 ORDER BY created_at DESC, id LIMIT sqlc.arg(lim);

-- name: ListUnfinishedWorkflows :many
-- What to resume after a crash: workflows left running or paused.
SELECT * FROM workflows WHERE status IN ('running', 'paused') ORDER BY updated_at, id;

-- name: AddWorkflowFinding :one
INSERT INTO workflow_findings (workflow_id, severity, title, detail, evidence)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: ListWorkflowFindings :many
-- Most severe first.
SELECT * FROM workflow_findings
WHERE workflow_id = $1
ORDER BY severity DESC, id;

-- name: CountWorkflowFindingsBySeverity :many
SELECT severity, count(*) AS findings FROM workflow_findings
WHERE workflow_id = $1 GROUP BY severity ORDER BY severity;

-- name: SaveWorkflowCheckpoint :exec
-- The state after a step; saving a step again replaces it (a retried step).
INSERT INTO workflow_checkpoints (workflow_id, step, state) VALUES ($1, $2, $3)
ON CONFLICT (workflow_id, step) DO UPDATE SET state = EXCLUDED.state, created_at = now();

-- name: LatestWorkflowCheckpoint :one
-- Where to resume: the highest step saved.
SELECT * FROM workflow_checkpoints WHERE workflow_id = $1 ORDER BY step DESC LIMIT 1;

-- name: ListWorkflowCheckpoints :many
SELECT * FROM workflow_checkpoints WHERE workflow_id = $1 ORDER BY step;
