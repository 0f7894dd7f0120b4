-- SQLite versions of queries whose PostgreSQL text has no translation.

-- name: FindSimilarConsensus :many
-- FTS5 phrase query (the text quoted as one phrase, like phraseto_tsquery), best bm25 first.
SELECT c.id, c.topic, c.conclusion, c.strength, c.confidence, c.domain, c.created_at
FROM idx_consensus_topic_fts JOIN consensus c ON c.id = idx_consensus_topic_fts.rowid
WHERE idx_consensus_topic_fts.topic MATCH '"' || replace(sqlc.arg(query), '"', '""') || '"'
ORDER BY bm25(idx_consensus_topic_fts), c.created_at DESC, c.id DESC
LIMIT sqlc.arg(lim);
