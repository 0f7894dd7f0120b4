-- name: SaveTournament :one
INSERT INTO tournaments (id, name, format, status, participants, standings, winner, completed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO UPDATE
SET name = EXCLUDED.name, format = EXCLUDED.format, status = EXCLUDED.status,
    participants = EXCLUDED.participants, standings = EXCLUDED.standings,
    winner = EXCLUDED.winner, completed_at = EXCLUDED.completed_at
RETURNING *;

-- name: GetTournament :one
SELECT * FROM tournaments WHERE id = $1;

-- name: ListTournaments :many
SELECT * FROM tournaments ORDER BY created_at DESC, id LIMIT sqlc.arg(lim) OFFSET sqlc.arg(off);

-- name: ListTournamentsByStatus :many
SELECT * FROM tournaments WHERE status = $1 ORDER BY created_at, id;

-- name: CompleteTournament :one
UPDATE tournaments SET status = 'completed', winner = $2, standings = $3, completed_at = now()
WHERE id = $1 AND status <> 'completed'
RETURNING *;

-- name: DeleteTournament :execrows
DELETE FROM tournaments WHERE id = $1;
