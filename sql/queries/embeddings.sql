-- name: SaveEmbedding :one
INSERT INTO embeddings (id, content_hash, source_type, source_id, model, dimensions, vector)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (content_hash) DO UPDATE
SET model = EXCLUDED.model, dimensions = EXCLUDED.dimensions, vector = EXCLUDED.vector
RETURNING *;

-- name: GetEmbeddingByHash :one
SELECT * FROM embeddings WHERE content_hash = $1;

-- name: ListEmbeddingsForSource :many
SELECT * FROM embeddings WHERE source_type = $1 AND source_id = $2 ORDER BY created_at, id;

-- name: GetEmbeddingsByHashes :many
SELECT * FROM embeddings WHERE content_hash = ANY(sqlc.arg(hashes)::text[]) ORDER BY content_hash;

-- name: DeleteEmbeddingsForSource :execrows
DELETE FROM embeddings WHERE source_type = $1 AND source_id = $2;
