-- A share link's token is a bearer credential: whoever holds it reads the debate. It is
-- stored sealed deterministically (AES-SIV under the column key), so it stays the primary
-- key and GetActiveShareLink still finds a link by its token, while the data directory,
-- a backup or a dump holds no usable token. Existing tokens are sealed by this migration.
-- migrate:up
-- aragora:encrypted share_links (token) deterministic

-- migrate:down
-- aragora:not-encrypted share_links (token)
