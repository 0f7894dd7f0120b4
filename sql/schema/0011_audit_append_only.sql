-- The audit trail is append-only in the database, not by convention: UPDATE, DELETE and
-- TRUNCATE of audit_log are refused on both backends, except the retention path
-- (aragora-repos maintenance), which may delete entries older than its cutoff.
-- migrate:up
-- aragora:append-only audit_log (timestamp)

-- migrate:down
-- aragora:not-append-only audit_log
