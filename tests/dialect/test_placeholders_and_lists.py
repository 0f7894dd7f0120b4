"""rewrite_placeholders ($n to ?n) and rewrite_list_membership (= ANY / <> ALL / sqlc.slice
of a list parameter, bound as JSON text)."""

from __future__ import annotations

from codegen.dialects.sqlite import rewrite_list_membership, rewrite_placeholders, translate_query
from tests.dialect.support import LISTS, Case, Refusal, connection

CASES = [
    Case(
        "placeholders",
        rewrite_placeholders,
        "SELECT a FROM t WHERE id = $1 OR parent = $1",
        "SELECT a FROM t WHERE id = ?1 OR parent = ?1",
    ),
    Case(
        "plain_in_list",
        rewrite_placeholders,
        "SELECT a FROM t WHERE id IN ($1, $2)",
        "SELECT a FROM t WHERE id IN (?1, ?2)",
    ),
    Case(
        "any_param",
        rewrite_list_membership,
        "SELECT a FROM t WHERE id = ANY($1::text[])",
        "SELECT a FROM t WHERE id IN (SELECT value FROM JSON_EACH(?1))",
        LISTS,
    ),
    Case(
        "all_param",
        rewrite_list_membership,
        "SELECT a FROM t WHERE id <> ALL($1)",
        "SELECT a FROM t WHERE NOT id IN (SELECT value FROM JSON_EACH(?1))",
        LISTS,
    ),
    Case(
        "sqlc_slice",
        rewrite_list_membership,
        "SELECT a FROM t WHERE id IN ($1)",
        "SELECT a FROM t WHERE id IN (SELECT value FROM JSON_EACH(?1))",
        LISTS,
    ),
]
REFUSALS = [
    Refusal(
        "any_of_array_literal",
        rewrite_list_membership,
        "SELECT a FROM t WHERE id = ANY(ARRAY[1, 2])",
        "ANY",
    ),
]


def test_list_parameter_binds_as_json() -> None:
    conn = connection()
    sql = translate_query("SELECT id FROM t WHERE id = ANY($1) ORDER BY id", LISTS)
    assert [r[0] for r in conn.execute(sql, ("[4, 1, 99]",))] == [1, 4]
    assert conn.execute(sql, ("[]",)).fetchall() == []
