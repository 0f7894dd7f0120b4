"""rewrite_like: LIKE with PostgreSQL's backslash escape, ILIKE as LOWER() LIKE LOWER()
(with ``case_sensitive_like`` on, as the runtime sets it)."""

from __future__ import annotations

from codegen.dialects.sqlite import rewrite_like, translate_query
from tests.dialect.support import Case, connection

CASES = [
    Case(
        "like_escape",
        rewrite_like,
        "SELECT a FROM t WHERE a LIKE $1 AND c NOT LIKE 'x%'",
        "SELECT a FROM t WHERE a LIKE ?1 ESCAPE '\\' AND c NOT LIKE 'x%' ESCAPE '\\'",
    ),
    Case(
        "ilike",
        rewrite_like,
        "SELECT a FROM t WHERE b ILIKE $1",
        "SELECT a FROM t WHERE LOWER(b) LIKE LOWER(?1) ESCAPE '\\'",
    ),
]


def test_like_semantics_match_postgresql() -> None:
    conn = connection()
    like = translate_query("SELECT id FROM t WHERE a LIKE $1 ORDER BY id")
    ilike = translate_query("SELECT id FROM t WHERE a ILIKE $1 ORDER BY id")
    assert [r[0] for r in conn.execute(like, ("app%",))] == [3]
    assert [r[0] for r in conn.execute(ilike, ("APP%",))] == [1, 3]
    assert [r[0] for r in conn.execute(like, ("a\\_b",))] == [4]
    assert [r[0] for r in conn.execute(like, ("a_b",))] == [4]
