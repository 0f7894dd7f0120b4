-- name: CreatePolicyRule :one
INSERT INTO policy_rules (id, org_id, name, rule, severity, enabled)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: ListEnabledPolicyRules :many
-- The rules that apply to an organization: its own and the global ones (no org).
SELECT * FROM policy_rules
WHERE enabled AND (org_id = sqlc.arg(org_id) OR org_id IS NULL)
ORDER BY name, id;

-- name: SetPolicyRuleEnabled :execrows
UPDATE policy_rules SET enabled = $2, updated_at = now() WHERE id = $1;

-- name: RecordPolicyViolation :one
INSERT INTO policy_violations (rule_id, debate_id, subject, detail)
VALUES ($1, $2, $3, $4)
RETURNING *;

-- name: ListOpenPolicyViolations :many
SELECT v.id, v.rule_id, r.name AS rule_name, r.severity, v.debate_id, v.subject, v.detail,
       v.created_at
FROM policy_violations v JOIN policy_rules r ON r.id = v.rule_id
WHERE NOT v.resolved AND (r.org_id = sqlc.arg(org_id) OR r.org_id IS NULL)
ORDER BY v.created_at, v.id
LIMIT sqlc.arg(lim);

-- name: ResolvePolicyViolation :execrows
UPDATE policy_violations SET resolved = TRUE, resolved_at = now() WHERE id = $1 AND NOT resolved;
