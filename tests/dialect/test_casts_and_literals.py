"""rewrite_casts (casts to a storage form dropped, literals written in SQLite's storage
form, numeric casts refused) and rewrite_booleans (boolean literals as 0/1)."""

from __future__ import annotations

from codegen.dialects.sqlite import rewrite_booleans, rewrite_casts
from tests.dialect.support import Case, Refusal

CASES = [
    Case(
        "jsonb_literal_cast",
        rewrite_casts,
        "SELECT CAST('{}' AS JSONB), '{\"a\":1}'::json",
        "SELECT '{}', '{\"a\":1}'",
    ),
    Case(
        "storage_casts_dropped",
        rewrite_casts,
        "SELECT $1::jsonb, $2::uuid, $3::timestamptz, $4::user_role",
        "SELECT ?1, ?2, ?3, ?4",
    ),
    Case("empty_array_literal", rewrite_casts, "SELECT '{}'::text[]", "SELECT '[]'"),
    Case(
        "timestamptz_literal",
        rewrite_casts,
        "SELECT '2024-01-15 10:00:00+02'::timestamptz",
        "SELECT '2024-01-15 08:00:00.000000+00:00'",
    ),
    Case(
        "boolean_literals",
        rewrite_booleans,
        "SELECT 'true'::boolean, 'f'::bool, TRUE, FALSE",
        "SELECT 1, 0, 1, 0",
    ),
]
REFUSALS = [
    Refusal("non_empty_array_literal", rewrite_casts, "SELECT '{a,b}'::text[]", "'{a,b}'"),
]
