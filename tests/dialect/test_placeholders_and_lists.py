"""rewrite_placeholders ($n to ?n) and rewrite_list_membership (= ANY / <> ALL / sqlc.slice
of a list parameter, bound as JSON text)."""

from __future__ import annotations

from codegen.dialects.sqlite import rewrite_list_membership, rewrite_placeholders, translate_query
from tests.dialect.support import LISTS, Case, Refusal, connection

CASES = [
    Case(
        "array_column_membership",
        rewrite_list_membership,
        "SELECT id FROM t WHERE $1::text = ANY(tags)",
        "SELECT id FROM t WHERE CASE WHEN tags IS NULL THEN NULL ELSE CAST(?1 AS TEXT) IN "
        "(SELECT value FROM JSON_EACH(tags)) END",
    ),
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


def test_an_array_column_answers_any_as_postgresql_does() -> None:
    conn = connection()
    conn.execute("CREATE TABLE tagged (id INTEGER PRIMARY KEY, tags TEXT)")
    conn.executemany(
        "INSERT INTO tagged VALUES (?, ?)",
        [(1, '["a", "b"]'), (2, "[]"), (3, None), (4, '["b", null]')],
    )
    any_sql = translate_query("SELECT id, $1::text = ANY(tags) FROM tagged ORDER BY id")
    # PostgreSQL: true, false, NULL (a NULL array), NULL (no match, a NULL element)
    assert conn.execute(any_sql, ("a",)).fetchall() == [(1, 1), (2, 0), (3, None), (4, None)]
    all_sql = translate_query("SELECT id FROM tagged WHERE $1::text <> ALL(tags) ORDER BY id")
    assert [r[0] for r in conn.execute(all_sql, ("a",))] == [2]
