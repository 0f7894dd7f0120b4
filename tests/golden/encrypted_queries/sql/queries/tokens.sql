-- name: FindByToken :one
SELECT id FROM api_tokens WHERE token = $1;

-- name: OrderedByToken :many
SELECT id FROM api_tokens ORDER BY token;

-- name: GroupedByScopes :many
SELECT scopes, count(*) FROM api_tokens GROUP BY scopes;

-- name: SearchToken :many
SELECT id FROM api_tokens WHERE token LIKE $1;

-- name: TokenLength :one
SELECT length(token) FROM api_tokens WHERE id = $1;

-- name: TokenWithoutKey :one
SELECT token FROM api_tokens WHERE owner = $1 AND label = $2;

-- name: CopyToken :exec
UPDATE api_tokens SET token = (SELECT t.token FROM api_tokens t WHERE t.id = $1) WHERE api_tokens.id = $2;

-- name: CreateToken :one
INSERT INTO api_tokens (owner, label, token) VALUES ($1, $2, $3) RETURNING id;

-- name: ScopesWithoutRowKey :many
SELECT scopes FROM api_tokens WHERE owner = $1;

-- name: SetByOtherKey :exec
UPDATE api_tokens SET token = $1 WHERE owner = $2;
