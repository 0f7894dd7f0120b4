"""What sqlglot's own PostgreSQL -> SQLite output already gets right, pinned so an upgrade
that changes it fails here (no rule of ours is involved: ``rule`` is None)."""

from __future__ import annotations

from tests.dialect.support import Case

CASES = [
    Case(
        "null_ordering",
        None,
        "SELECT a FROM t ORDER BY a, b DESC, c ASC NULLS FIRST, d DESC NULLS LAST",
        "SELECT a FROM t ORDER BY a NULLS LAST, b DESC NULLS FIRST, c ASC, d DESC",
    ),
    Case(
        "greatest_least_ignore_nulls",
        None,
        "SELECT GREATEST(a, b), LEAST(a, b) FROM t",
        "SELECT MAX(COALESCE(a, b), COALESCE(b, a)), MIN(COALESCE(a, b), COALESCE(b, a)) FROM t",
    ),
    Case(
        "count_cast",
        None,
        "SELECT count(*)::bigint FROM t",
        "SELECT CAST(COUNT(*) AS INTEGER) FROM t",
    ),
    Case(
        "numeric_casts",
        None,
        "SELECT CAST(a AS int), CAST(b AS bigint), CAST(c AS text), CAST(d AS float8) FROM t",
        "SELECT CAST(a AS INTEGER), CAST(b AS INTEGER), CAST(c AS TEXT), CAST(d AS REAL) FROM t",
    ),
]
