-- name: StoreConsensus :one
INSERT INTO consensus (topic, topic_hash, conclusion, strength, confidence, participating_agents,
                       agreeing_agents, domain, debate_id, metadata, data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING *;

-- name: GetConsensus :one
SELECT * FROM consensus WHERE id = $1;

-- name: GetConsensusByTopicHash :many
SELECT * FROM consensus WHERE topic_hash = $1 ORDER BY created_at DESC, id DESC;

-- name: FindSimilarConsensus :many
-- Full-text search of topics for a phrase, best match first: ts_rank here, bm25 in the
-- SQLite variant (sql/queries/sqlite/consensus.sql).
SELECT c.id, c.topic, c.conclusion, c.strength, c.confidence, c.domain, c.created_at
FROM consensus c
WHERE to_tsvector('simple', c.topic) @@ phraseto_tsquery('simple', sqlc.arg(query))
ORDER BY ts_rank(to_tsvector('simple', c.topic), phraseto_tsquery('simple', sqlc.arg(query)), 1) DESC,
         c.created_at DESC, c.id DESC
LIMIT sqlc.arg(lim);

-- name: ListConsensusByDomain :many
SELECT * FROM consensus WHERE domain = $1 ORDER BY confidence DESC, id DESC LIMIT sqlc.arg(lim);

-- name: UpdateConsensusConclusion :one
UPDATE consensus SET conclusion = $2, confidence = $3, updated_at = now() WHERE id = $1
RETURNING *;

-- name: RecordDissent :one
INSERT INTO dissent (id, consensus_id, debate_id, agent_id, dissent_type, content, reasoning,
                     confidence, data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING *;

-- name: AcknowledgeDissent :one
UPDATE dissent SET acknowledged = TRUE, acknowledged_by = $2, acknowledged_at = now()
WHERE id = $1 AND NOT acknowledged
RETURNING *;

-- name: ListDissentForDebate :many
SELECT * FROM dissent WHERE debate_id = $1 ORDER BY created_at, id;

-- name: ListUnacknowledgedDissent :many
SELECT * FROM dissent WHERE NOT acknowledged ORDER BY created_at, id LIMIT sqlc.arg(lim);

-- name: CountDissentByType :many
SELECT dissent_type, count(*) AS dissents, count(*) FILTER (WHERE acknowledged) AS acknowledged
FROM dissent GROUP BY dissent_type ORDER BY dissent_type;

-- name: SaveVerifiedProof :one
INSERT INTO verified_proofs (id, debate_id, proof_status, language, formal_statement, is_verified,
                             proof_hash, translation_time_ms, proof_search_time_ms,
                             prover_version, error_message, data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (id) DO UPDATE
SET proof_status = EXCLUDED.proof_status, is_verified = EXCLUDED.is_verified,
    proof_hash = EXCLUDED.proof_hash, error_message = EXCLUDED.error_message,
    data = EXCLUDED.data
RETURNING *;

-- name: ListProofsForDebate :many
SELECT * FROM verified_proofs WHERE debate_id = $1 ORDER BY created_at, id;

-- name: ProofStats :one
SELECT count(*) AS total,
       count(*) FILTER (WHERE is_verified) AS verified,
       avg(proof_search_time_ms) AS avg_search_ms
FROM verified_proofs;
