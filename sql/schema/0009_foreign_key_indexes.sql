-- Indexes for the foreign keys that had none: deleting a user (ON DELETE CASCADE on
-- token_blacklist, SET NULL on share_links) or a genesis event scanned the child table.
-- migrate:up
CREATE INDEX idx_token_blacklist_user ON token_blacklist (user_id);
CREATE INDEX idx_share_links_created_by ON share_links (created_by);
CREATE INDEX idx_genesis_events_parent ON genesis_events (parent_event_id);

-- migrate:down
DROP INDEX idx_genesis_events_parent;
DROP INDEX idx_share_links_created_by;
DROP INDEX idx_token_blacklist_user;
