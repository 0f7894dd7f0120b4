-- Secrets at rest: a webhook's signing secret and an integration's configuration (which
-- holds its OAuth or API tokens) are stored sealed with the column key
-- (ARAGORA_ENCRYPTION_KEY): bytes on both backends, text and JSON to the application.
-- Existing values are sealed by this migration, which then needs the key.
-- migrate:up
-- aragora:encrypted webhooks (secret)
-- aragora:encrypted integrations (config) by (org_id, provider)

-- migrate:down
-- aragora:not-encrypted integrations (config)
-- aragora:not-encrypted webhooks (secret)
ALTER TABLE integrations ALTER COLUMN config SET DEFAULT '{}'::jsonb;
