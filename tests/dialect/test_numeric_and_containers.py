"""numeric through the runtime's collation and exact functions; array and jsonb
operators, extract() and unnest() through the runtime's functions and json_each."""

from __future__ import annotations

import functools
import sqlite3
import sys
from decimal import Decimal

import pytest

from aragora_repos import errors
from codegen.dialects.sqlite import (
    Context,
    rewrite_casts,
    rewrite_containers,
    rewrite_numeric,
    rewrite_unnest,
    translate_query,
)
from tests.dialect.support import Case, Refusal, connection

PRICES = Context(numeric_columns=frozenset({"price"}), integer_columns=frozenset({"qty"}))
WRITES = Context(numeric_columns=frozenset({"price"}), numeric_typmods=(("price", 10, 2),))
META = Context(json_columns=frozenset({"meta"}))

CASES = [
    Case(
        "numeric_order",
        rewrite_numeric,
        "SELECT id FROM t ORDER BY price",
        "SELECT id FROM t ORDER BY price COLLATE aragora_numeric NULLS LAST",
        PRICES,
    ),
    Case(
        "numeric_compare",
        rewrite_numeric,
        "SELECT id FROM t WHERE price = $1",
        "SELECT id FROM t WHERE price COLLATE aragora_numeric = ARAGORA_NUMERIC(?1)",
        PRICES,
    ),
    Case(
        "numeric_arithmetic_and_sum",
        rewrite_numeric,
        "SELECT sum(price * qty), avg(qty) FROM t",
        "SELECT ARAGORA_NUMERIC_SUM(ARAGORA_NUMERIC_MUL(price, ARAGORA_NUMERIC(qty))), "
        "ARAGORA_NUMERIC_AVG(qty) FROM t",
        PRICES,
    ),
    Case(
        "numeric_literal_keeps_its_places",
        rewrite_numeric,
        "SELECT price * 1.10 FROM t",
        "SELECT ARAGORA_NUMERIC_MUL(price, '1.10') FROM t",
        PRICES,
    ),
    Case(
        "numeric_typmod_on_write",
        rewrite_numeric,
        "INSERT INTO t (id, price) VALUES ($1, $2)",
        "INSERT INTO t (id, price) VALUES (?1, ARAGORA_NUMERIC(?2, 10, 2))",
        WRITES,
    ),
    Case(
        "numeric_cast",
        rewrite_casts,
        "SELECT $1::numeric(6, 2), $2::numeric",
        "SELECT ARAGORA_NUMERIC(?1, 6, 2), ARAGORA_NUMERIC(?2)",
    ),
    Case(
        "array_containment",
        rewrite_containers,
        "SELECT id FROM t WHERE tags @> $1::text[] OR tags <@ $2::text[]",
        "SELECT id FROM t WHERE ARAGORA_ARRAY_CONTAINS(tags, ?1) "
        "OR ARAGORA_ARRAY_CONTAINS(?2, tags)",
    ),
    Case(
        "jsonb_containment_and_keys",
        rewrite_containers,
        "SELECT id FROM t WHERE meta @> $1 AND meta ? 'a'",
        "SELECT id FROM t WHERE ARAGORA_JSONB_CONTAINS(meta, ?1) "
        "AND ARAGORA_JSONB_EXISTS(meta, 'a')",
        META,
    ),
    Case(
        "extract",
        rewrite_containers,
        "SELECT extract(epoch FROM ts) FROM t",
        "SELECT ARAGORA_EXTRACT('epoch', ts) FROM t",
    ),
    Case(
        "unnest_from",
        rewrite_unnest,
        "SELECT u.x FROM unnest($1::int[]) AS u(x)",
        'SELECT u.x FROM (SELECT _u0.value AS "x" FROM JSON_EACH(?1) AS _u0 ORDER BY _u0.key) AS u',
    ),
]
REFUSALS = [
    Refusal(
        "sum_distinct",
        rewrite_numeric,
        "SELECT sum(DISTINCT price) FROM t",
        "sum(DISTINCT numeric)",
        PRICES,
    ),
    Refusal(
        "unnest_beside_columns",
        rewrite_unnest,
        "SELECT id, unnest(tags) FROM t",
        "unnest() in a select list",
    ),
    Refusal("jsonb_overlap", rewrite_containers, "SELECT id FROM t WHERE meta && $1", "&&", META),
]


def test_numeric_compares_and_computes_as_numbers() -> None:
    conn = connection()
    conn.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, price TEXT, qty INTEGER)")
    conn.executemany(
        "INSERT INTO p VALUES (?, ?, ?)",
        [(1, "9.99", 3), (2, "10.00", 1), (3, "9.9", 2), (4, "0.1", 1), (5, "0.2", 1)],
    )
    ids = translate_query("SELECT id FROM p WHERE price > 9.95 ORDER BY price, id", PRICES)
    assert [r[0] for r in conn.execute(ids)] == [1, 2]
    total = translate_query("SELECT sum(price * qty) FROM p WHERE id IN (4, 5)", PRICES)
    assert conn.execute(total).fetchone()[0] == "0.3"
    same = translate_query("SELECT count(*) FROM p WHERE price = 9.90", PRICES)
    assert conn.execute(same).fetchone()[0] == 1
    third = translate_query("SELECT price / 3 FROM p WHERE id = 2", PRICES)
    assert Decimal(conn.execute(third).fetchone()[0]) == Decimal("3.3333333333333333")


def test_hostile_values_get_clear_errors(request: pytest.FixtureRequest) -> None:
    """Found by attack: text that is not a timestamp reached extract() as a raw ValueError
    (a ProgrammingError with SQLite's generic message), and JSON nested past Python's
    recursion limit as a RecursionError."""
    # Python's default limit: mypy, run in-process by the typing tests, raises it to
    # 2**14 for the rest of the process, and 5,000 levels then parse.
    request.addfinalizer(functools.partial(sys.setrecursionlimit, sys.getrecursionlimit()))
    sys.setrecursionlimit(1000)
    conn = connection()

    def error_of(sql: str, *args: object) -> errors.DatabaseError:
        with pytest.raises(sqlite3.Error) as info:
            conn.execute(sql, args).fetchall()
        return errors.from_sqlite(info.value)

    extract = error_of("SELECT aragora_extract('year', 'not a time')")
    assert isinstance(extract, errors.DataError) and extract.sqlstate == "22007"
    deep = "[" * 5000 + "]" * 5000
    nested = error_of("SELECT aragora_jsonb_contains(?, '[]')", deep)
    assert nested.sqlstate == "54001" and "nested" in str(nested)
    number = error_of("SELECT aragora_numeric_add('12,5', 1)")
    assert isinstance(number, errors.DataError) and number.sqlstate == "22P02"
    assert "12,5" in str(number)
    blob = error_of("SELECT aragora_numeric_mul(x'00', 2)")
    assert isinstance(blob, errors.DataError)
