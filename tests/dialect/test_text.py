"""rewrite_like: LIKE with PostgreSQL's backslash escape, ILIKE as LOWER() LIKE LOWER()
(with ``case_sensitive_like`` on, as the runtime sets it)."""

from __future__ import annotations

import sqlite3

import pytest

from aragora_repos.errors import take_error
from codegen.dialects.sqlite import (
    Context,
    rewrite_like,
    strip_public_schema,
    translate_query,
)
from tests.dialect.support import Case, Refusal, connection

CASES = [
    Case(
        "like_matcher",
        rewrite_like,
        "SELECT a FROM t WHERE a LIKE $1 AND c NOT LIKE 'x%'",
        "SELECT a FROM t WHERE ARAGORA_LIKE(a, ?1) AND NOT ARAGORA_LIKE(c, 'x%')",
    ),
    Case(
        "ilike",
        rewrite_like,
        "SELECT a FROM t WHERE b ILIKE $1",
        "SELECT a FROM t WHERE ARAGORA_ILIKE(b, ?1)",
    ),
    Case(
        "like_escape_clause",
        rewrite_like,
        "SELECT a FROM t WHERE a LIKE $1 ESCAPE '!'",
        "SELECT a FROM t WHERE ARAGORA_LIKE(a, ?1, '!')",
    ),
    Case(
        "public_schema",
        strip_public_schema,
        "SELECT public.t.a FROM public.t JOIN t AS u ON u.id = public.t.id",
        "SELECT t.a FROM t JOIN t AS u ON u.id = t.id",
    ),
]
PRICES = Context(numeric_columns=frozenset({"price"}))
REFUSALS = [
    Refusal("other_schema", strip_public_schema, "SELECT a FROM audit.t", "audit.t"),
]


def test_numeric_is_stored_and_assigned_as_it_is() -> None:
    assert translate_query("UPDATE t SET price = $2 WHERE id = $1", PRICES) == (
        "UPDATE t SET price = ?2 WHERE id = ?1"
    )
    assert translate_query("SELECT price FROM t WHERE id = $1", PRICES) == (
        "SELECT price FROM t WHERE id = ?1"
    )


def test_like_semantics_match_postgresql() -> None:
    conn = connection()
    like = translate_query("SELECT id FROM t WHERE a LIKE $1 ORDER BY id")
    ilike = translate_query("SELECT id FROM t WHERE a ILIKE $1 ORDER BY id")
    assert [r[0] for r in conn.execute(like, ("app%",))] == [3]
    assert [r[0] for r in conn.execute(ilike, ("APP%",))] == [1, 3]
    assert [r[0] for r in conn.execute(like, ("a\\_b",))] == [4]
    assert [r[0] for r in conn.execute(like, ("a_b",))] == [4]


def test_ilike_folds_every_letter_and_a_trailing_escape_is_an_error() -> None:
    conn = connection()
    conn.execute("INSERT INTO t (id, a) VALUES (10, 'École'), (11, 'ab')")
    ilike = translate_query("SELECT id FROM t WHERE a ILIKE $1 ORDER BY id")
    assert [r[0] for r in conn.execute(ilike, ("é%",))] == [10]
    like = translate_query("SELECT id FROM t WHERE a LIKE $1 ORDER BY id")
    with pytest.raises(sqlite3.OperationalError):
        conn.execute(like, ("a\\",)).fetchall()
    error = take_error()
    assert error is not None and error.sqlstate == "22025"
