-- name: CreateOrganization :one
INSERT INTO organizations (id, name, slug, tier, owner_id, settings)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: GetOrganizationById :one
SELECT * FROM organizations WHERE id = $1;

-- name: GetOrganizationBySlug :one
SELECT * FROM organizations WHERE slug = $1;

-- name: ListOrganizationsByOwner :many
SELECT * FROM organizations WHERE owner_id = $1 ORDER BY created_at DESC, id;

-- name: UpdateOrganizationTier :execrows
UPDATE organizations SET tier = $2, updated_at = now() WHERE id = $1;

-- name: UpdateOrganizationSettings :one
UPDATE organizations SET settings = $2, updated_at = now() WHERE id = $1 RETURNING settings;

-- name: SetStripeIds :execresult
UPDATE organizations
SET stripe_customer_id = sqlc.narg(customer_id),
    stripe_subscription_id = sqlc.narg(subscription_id),
    updated_at = now()
WHERE id = sqlc.arg(id);

-- name: CountOrganizationMembers :one
SELECT count(*) AS members FROM users WHERE org_id = $1;
