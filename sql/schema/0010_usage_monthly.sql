-- Billing history that survives pruning: usage events older than the retention period are
-- rolled up here (per organization, UTC calendar month and event type) before they go.
-- migrate:up
CREATE TABLE usage_monthly (
    org_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    month      TIMESTAMPTZ NOT NULL,
    event_type TEXT NOT NULL,
    total      BIGINT NOT NULL,
    PRIMARY KEY (org_id, month, event_type)
);

-- migrate:down
DROP TABLE usage_monthly;
