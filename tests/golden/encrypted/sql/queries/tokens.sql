-- name: CreateToken :one
INSERT INTO api_tokens (owner, label, token, scopes) VALUES ($1, $2, $3, $4)
RETURNING *;

-- name: GetToken :one
SELECT owner, label, token, scopes FROM api_tokens WHERE owner = $1 AND label = $2;

-- name: ListOwnerTokens :many
SELECT id, owner, label, scopes FROM api_tokens WHERE owner = $1 ORDER BY label;

-- name: ReplaceToken :execrows
UPDATE api_tokens SET token = $1 WHERE owner = $2 AND label = $3;

-- name: SaveToken :exec
INSERT INTO api_tokens (owner, label, token) VALUES ($1, $2, $3)
ON CONFLICT (owner, label) DO UPDATE SET token = EXCLUDED.token;

-- name: ListScoped :many
SELECT owner, label FROM api_tokens WHERE scopes IS NOT NULL ORDER BY owner, label;
