-- name: CreateUser :one
INSERT INTO users (id, email, password_hash, password_salt, name, org_id, role)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: GetUserById :one
SELECT * FROM users WHERE id = $1;

-- name: GetUserByEmail :one
SELECT * FROM users WHERE email = $1;

-- name: GetUsersByIds :many
SELECT * FROM users WHERE id IN (sqlc.slice(ids)) ORDER BY id;

-- name: UpdateUserProfile :one
UPDATE users
SET name = COALESCE(sqlc.narg(name), name),
    avatar_url = COALESCE(sqlc.narg(avatar_url), avatar_url),
    preferences = COALESCE(sqlc.narg(preferences), preferences),
    updated_at = now()
WHERE id = sqlc.arg(id)
RETURNING *;

-- name: RecordFailedLogin :one
-- Counts a failed login and locks the account once max_attempts is reached.
UPDATE users
SET failed_login_count = failed_login_count + 1,
    locked_until = CASE
        WHEN failed_login_count + 1 >= sqlc.arg(max_attempts)::int
        THEN now() + sqlc.arg(lockout_minutes)::int * interval '1 minute'
        ELSE locked_until
    END,
    lockout_reason = CASE
        WHEN failed_login_count + 1 >= sqlc.arg(max_attempts)::int
        THEN 'too many failed login attempts'
        ELSE lockout_reason
    END
WHERE id = sqlc.arg(id)
RETURNING failed_login_count, locked_until;

-- name: IsUserLocked :one
SELECT COALESCE(locked_until > now(), FALSE)::boolean AS locked FROM users WHERE id = $1;

-- name: RecordLogin :execrows
UPDATE users
SET last_login_at = now(),
    last_activity_at = now(),
    failed_login_count = 0,
    locked_until = NULL,
    lockout_reason = NULL
WHERE id = $1;

-- name: SetUserOrganization :execrows
UPDATE users SET org_id = sqlc.narg(org_id), role = sqlc.arg(role), updated_at = now()
WHERE id = sqlc.arg(id);

-- name: ListOrganizationMembers :many
SELECT id, email, name, role, last_login_at, is_active
FROM users
WHERE org_id = sqlc.arg(org_id)
ORDER BY created_at, id
LIMIT sqlc.arg(lim) OFFSET sqlc.arg(off);

-- name: SearchUsersByName :many
SELECT id, email, name FROM users
WHERE name ILIKE '%' || sqlc.arg(term) || '%'
ORDER BY name, id
LIMIT sqlc.arg(lim);

-- name: ListUsersByEmailPattern :many
SELECT id, email FROM users WHERE email LIKE sqlc.arg(pattern) ORDER BY email;

-- name: CountActiveUsers :one
SELECT count(*) FROM users WHERE is_active;

-- name: DeactivateUser :execrows
UPDATE users SET is_active = FALSE, updated_at = now() WHERE id = $1;

-- name: DeleteUser :exec
DELETE FROM users WHERE id = $1;

-- name: ListUsersByRecentLogin :many
-- Most recent logins first; users who never logged in come first, as PostgreSQL sorts NULL high.
SELECT id, email, last_login_at FROM users ORDER BY last_login_at DESC, id LIMIT sqlc.arg(lim);

-- name: GetUserAuthState :one
-- What a login check needs: credentials, activity and lockout state.
SELECT id, email, password_hash, password_salt, is_active, locked_until, failed_login_count
FROM users WHERE id = $1;
