-- name: SavePersona :one
INSERT INTO personas (agent_name, description, traits, expertise)
VALUES ($1, $2, $3, $4)
ON CONFLICT (agent_name) DO UPDATE
SET description = EXCLUDED.description, traits = EXCLUDED.traits,
    expertise = EXCLUDED.expertise, updated_at = now()
RETURNING *;

-- name: GetPersona :one
SELECT * FROM personas WHERE agent_name = $1;

-- name: ListPersonas :many
SELECT * FROM personas ORDER BY agent_name LIMIT sqlc.arg(lim) OFFSET sqlc.arg(off);

-- name: DeletePersona :execrows
DELETE FROM personas WHERE agent_name = $1;

-- name: SaveGenome :one
INSERT INTO genomes (genome_id, name, traits, expertise, model_preference, parent_genomes,
                     generation, fitness_score, birth_debate_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (genome_id) DO UPDATE
SET traits = EXCLUDED.traits, expertise = EXCLUDED.expertise,
    fitness_score = EXCLUDED.fitness_score, updated_at = now()
RETURNING *;

-- name: GetGenome :one
SELECT * FROM genomes WHERE genome_id = $1;

-- name: TopGenomes :many
SELECT * FROM genomes ORDER BY fitness_score DESC, genome_id LIMIT sqlc.arg(lim);

-- name: ListGenomeLineage :many
SELECT * FROM genomes WHERE name = $1 ORDER BY generation, genome_id;

-- name: AdjustGenomeFitness :one
UPDATE genomes
SET fitness_score = GREATEST(0.0, LEAST(1.0, fitness_score + sqlc.arg(delta)::float8)), updated_at = now()
WHERE genome_id = sqlc.arg(genome_id)
RETURNING fitness_score;

-- name: RecordInteraction :one
-- A debate between two agents (the caller orders the pair so agent_a < agent_b).
INSERT INTO agent_relationships (agent_a, agent_b, debate_count, agreement_count,
                                 critique_count_a_to_b, critique_count_b_to_a,
                                 a_wins_over_b, b_wins_over_a)
VALUES (sqlc.arg(agent_a), sqlc.arg(agent_b), 1,
        CASE WHEN sqlc.arg(agreed)::boolean THEN 1 ELSE 0 END,
        sqlc.arg(critiques_a_to_b)::int, sqlc.arg(critiques_b_to_a)::int,
        CASE WHEN sqlc.arg(a_won)::boolean THEN 1 ELSE 0 END,
        CASE WHEN sqlc.arg(b_won)::boolean THEN 1 ELSE 0 END)
ON CONFLICT (agent_a, agent_b) DO UPDATE
SET debate_count = agent_relationships.debate_count + 1,
    agreement_count = agent_relationships.agreement_count + EXCLUDED.agreement_count,
    critique_count_a_to_b = agent_relationships.critique_count_a_to_b + EXCLUDED.critique_count_a_to_b,
    critique_count_b_to_a = agent_relationships.critique_count_b_to_a + EXCLUDED.critique_count_b_to_a,
    a_wins_over_b = agent_relationships.a_wins_over_b + EXCLUDED.a_wins_over_b,
    b_wins_over_a = agent_relationships.b_wins_over_a + EXCLUDED.b_wins_over_a,
    updated_at = now()
RETURNING *;

-- name: GetRelationship :one
SELECT * FROM agent_relationships WHERE agent_a = $1 AND agent_b = $2;

-- name: ListRelationshipsFor :many
SELECT * FROM agent_relationships WHERE agent_a = $1 OR agent_b = $1 ORDER BY agent_a, agent_b;

-- name: AppendGenesisEvent :one
INSERT INTO genesis_events (event_id, event_type, parent_event_id, content_hash, data)
VALUES ($1, $2, $3, $4, $5)
RETURNING *;

-- name: GetGenesisEvent :one
SELECT * FROM genesis_events WHERE event_id = $1;

-- name: ListGenesisEvents :many
SELECT * FROM genesis_events WHERE seq > sqlc.arg(after_seq) ORDER BY seq LIMIT sqlc.arg(lim);

-- name: ListGenesisEventsByType :many
SELECT * FROM genesis_events WHERE event_type = $1 ORDER BY seq;
