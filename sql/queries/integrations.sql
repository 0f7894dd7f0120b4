-- name: UpsertIntegration :one
-- One config per organization and provider: saving it again replaces the config.
INSERT INTO integrations (id, org_id, provider, config, enabled)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (org_id, provider) DO UPDATE
SET config = EXCLUDED.config, enabled = EXCLUDED.enabled, updated_at = now()
RETURNING *;

-- name: GetIntegration :one
SELECT * FROM integrations WHERE org_id = $1 AND provider = $2;

-- name: ListIntegrationsForOrg :many
SELECT * FROM integrations WHERE org_id = $1 ORDER BY provider;

-- name: SetIntegrationEnabled :execrows
UPDATE integrations SET enabled = $3, updated_at = now() WHERE org_id = $1 AND provider = $2;

-- name: DeleteIntegration :execrows
DELETE FROM integrations WHERE org_id = $1 AND provider = $2;
