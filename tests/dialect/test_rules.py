"""Dialect rules, table-driven: one PostgreSQL statement and its expected SQLite text.

Where the point of a rule is behaviour (NULL placement, LIKE case), the translated text
is also run on a real SQLite connection with the runtime's pragmas.
"""

from __future__ import annotations

import sqlite3

import pytest

from codegen.dialects.sqlite import Context, Untranslatable, translate_query
from codegen.dialects.verify import CONNECTION_PRAGMAS

NOW = "STRFTIME('%Y-%m-%d %H:%M:%f000+00:00', 'now')"
LISTS = Context(list_params=frozenset({1}))

CASES: list[tuple[str, str, Context, str]] = [
    (
        "placeholders",
        "SELECT a FROM t WHERE id = $1 OR parent = $1",
        Context(),
        "SELECT a FROM t WHERE id = ?1 OR parent = ?1",
    ),
    (
        "any_param",
        "SELECT a FROM t WHERE id = ANY($1::text[])",
        LISTS,
        "SELECT a FROM t WHERE id IN (SELECT value FROM JSON_EACH(?1))",
    ),
    (
        "all_param",
        "SELECT a FROM t WHERE id <> ALL($1)",
        LISTS,
        "SELECT a FROM t WHERE NOT id IN (SELECT value FROM JSON_EACH(?1))",
    ),
    (
        "sqlc_slice",
        "SELECT a FROM t WHERE id IN ($1)",
        LISTS,
        "SELECT a FROM t WHERE id IN (SELECT value FROM JSON_EACH(?1))",
    ),
    (
        "plain_in_list",
        "SELECT a FROM t WHERE id IN ($1, $2)",
        Context(),
        "SELECT a FROM t WHERE id IN (?1, ?2)",
    ),
    (
        "jsonb_literal_cast",
        "SELECT CAST('{}' AS JSONB), '{\"a\":1}'::json",
        Context(),
        "SELECT '{}', '{\"a\":1}'",
    ),
    (
        "storage_casts_dropped",
        "SELECT $1::jsonb, $2::uuid, $3::timestamptz, $4::user_role",
        Context(),
        "SELECT ?1, ?2, ?3, ?4",
    ),
    (
        "numeric_casts",
        "SELECT $1::int, $2::bigint, $3::text, $4::float8",
        Context(),
        "SELECT CAST(?1 AS INTEGER), CAST(?2 AS INTEGER), CAST(?3 AS TEXT), CAST(?4 AS REAL)",
    ),
    (
        "boolean_literals",
        "SELECT 'true'::boolean, 'f'::bool, TRUE, FALSE",
        Context(),
        "SELECT 1, 0, 1, 0",
    ),
    ("empty_array_literal", "SELECT '{}'::text[]", Context(), "SELECT '[]'"),
    (
        "timestamptz_literal",
        "SELECT '2024-01-15 10:00:00+02'::timestamptz",
        Context(),
        "SELECT '2024-01-15 08:00:00.000000+00:00'",
    ),
    (
        "now",
        "SELECT now(), CURRENT_TIMESTAMP, CURRENT_DATE",
        Context(),
        f"SELECT {NOW}, {NOW}, DATE('now')",
    ),
    (
        "now_minus_interval",
        "SELECT now() - interval '15 minutes'",
        Context(),
        "SELECT STRFTIME('%Y-%m-%d %H:%M:%f000+00:00', 'now', '-900.000000 seconds')",
    ),
    (
        "column_plus_interval",
        "SELECT ts + interval '1 day' FROM t",
        Context(),
        "SELECT STRFTIME('%Y-%m-%d %H:%M:%f000+00:00', ts, '+86400.000000 seconds') FROM t",
    ),
    (
        "scaled_interval",
        "SELECT ts - $1 * interval '2 hours' FROM t",
        Context(),
        "SELECT STRFTIME('%Y-%m-%d %H:%M:%f000+00:00', ts, "
        "PRINTF('%+.6f seconds', (?1) * -7200.0)) FROM t",
    ),
    (
        "like_escape",
        "SELECT a FROM t WHERE a LIKE $1 AND c NOT LIKE 'x%'",
        Context(),
        "SELECT a FROM t WHERE a LIKE ?1 ESCAPE '\\' AND c NOT LIKE 'x%' ESCAPE '\\'",
    ),
    (
        "ilike",
        "SELECT a FROM t WHERE b ILIKE $1",
        Context(),
        "SELECT a FROM t WHERE LOWER(b) LIKE LOWER(?1) ESCAPE '\\'",
    ),
    (
        "null_ordering",
        "SELECT a FROM t ORDER BY a, b DESC, c ASC NULLS FIRST, d DESC NULLS LAST",
        Context(),
        "SELECT a FROM t ORDER BY a NULLS LAST, b DESC NULLS FIRST, c ASC, d DESC",
    ),
    (
        "upsert_target_has_no_nulls_clause",
        "INSERT INTO t (id, v) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v "
        "RETURNING id",
        Context(),
        "INSERT INTO t (id, v) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET "
        "v = EXCLUDED.v RETURNING id",
    ),
    (
        "greatest_least_ignore_nulls",
        "SELECT GREATEST(a, b), LEAST(a, b) FROM t",
        Context(),
        "SELECT MAX(COALESCE(a, b), COALESCE(b, a)), MIN(COALESCE(a, b), COALESCE(b, a)) FROM t",
    ),
    (
        "count_cast",
        "SELECT count(*)::bigint FROM t",
        Context(),
        "SELECT CAST(COUNT(*) AS INTEGER) FROM t",
    ),
]


@pytest.mark.parametrize(
    ("pg", "ctx", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_translation(pg: str, ctx: Context, expected: str) -> None:
    assert translate_query(pg, ctx) == expected


UNTRANSLATABLE = [
    ("any_of_array_literal", "SELECT a FROM t WHERE id = ANY(ARRAY[1, 2])", "ANY"),
    ("bare_interval", "SELECT interval '1 day'", "interval"),
    ("numeric_cast", "SELECT $1::numeric", "::numeric"),
    ("unknown_unit", "SELECT ts + interval '1 fortnight' FROM t", "interval unit 'FORTNIGHT'"),
    ("interval_minus_timestamp", "SELECT interval '1 day' - ts FROM t", "interval arithmetic"),
    ("non_empty_array_literal", "SELECT '{a,b}'::text[]", "'{a,b}'"),
    ("date_trunc_week", "SELECT date_trunc('week', ts) FROM t", "date_trunc"),
    ("fractional_months", "SELECT ts + interval '1.5 months' FROM t", "interval '1.5'"),
    ("month_interval", "SELECT ts + interval '1 month' FROM t", "interval '1'"),
    (
        "json_equality",
        "SELECT a FROM t WHERE a::jsonb = '{}'::jsonb",
        "CAST(a AS JSONB) = CAST('{}' AS JSONB)",
    ),
]


@pytest.mark.parametrize(
    ("pg", "construct"), [c[1:] for c in UNTRANSLATABLE], ids=[c[0] for c in UNTRANSLATABLE]
)
def test_untranslatable_is_an_error_naming_the_construct(pg: str, construct: str) -> None:
    with pytest.raises(Untranslatable) as info:
        translate_query(pg)
    assert info.value.construct == construct
    assert str(info.value).startswith(f"cannot translate {construct} to sqlite:")


@pytest.fixture
def conn() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:", isolation_level=None)
    for pragma in CONNECTION_PRAGMAS:
        c.execute(pragma)
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, ts TEXT)")
    c.executemany(
        "INSERT INTO t (id, a, ts) VALUES (?, ?, ?)",
        [
            (1, "Apple", "2024-01-15 10:00:00.000000+00:00"),
            (2, None, None),
            (3, "apple", "2024-01-15 09:00:00.000000+00:00"),
            (4, "a_b", None),
        ],
    )
    return c


def test_null_ordering_matches_postgresql(conn: sqlite3.Connection) -> None:
    # PostgreSQL: NULLs sort last ascending and first descending (queries.html §7.5).
    asc = translate_query("SELECT id FROM t ORDER BY a, id")
    desc = translate_query("SELECT id FROM t ORDER BY a DESC, id")
    assert [r[0] for r in conn.execute(asc)] == [1, 4, 3, 2]
    assert [r[0] for r in conn.execute(desc)] == [2, 3, 4, 1]


def test_like_semantics_match_postgresql(conn: sqlite3.Connection) -> None:
    like = translate_query("SELECT id FROM t WHERE a LIKE $1 ORDER BY id")
    ilike = translate_query("SELECT id FROM t WHERE a ILIKE $1 ORDER BY id")
    assert [r[0] for r in conn.execute(like, ("app%",))] == [3]
    assert [r[0] for r in conn.execute(ilike, ("APP%",))] == [1, 3]
    assert [r[0] for r in conn.execute(like, ("a\\_b",))] == [4]
    assert [r[0] for r in conn.execute(like, ("a_b",))] == [4]


def test_timestamp_arithmetic_keeps_the_canonical_form(conn: sqlite3.Connection) -> None:
    sql = translate_query("SELECT ts + interval '90 minutes' FROM t WHERE id = $1")
    assert conn.execute(sql, (1,)).fetchone() == ("2024-01-15 11:30:00.000000+00:00",)
    assert conn.execute(sql, (2,)).fetchone() == (None,)
    scaled = translate_query("SELECT ts - $2::int * interval '1 day' FROM t WHERE id = $1")
    assert conn.execute(scaled, (1, 3)).fetchone() == ("2024-01-12 10:00:00.000000+00:00",)


def test_list_parameter_binds_as_json(conn: sqlite3.Connection) -> None:
    sql = translate_query("SELECT id FROM t WHERE id = ANY($1) ORDER BY id", LISTS)
    assert [r[0] for r in conn.execute(sql, ("[4, 1, 99]",))] == [1, 4]
    assert conn.execute(sql, ("[]",)).fetchall() == []


def test_not_null_columns_keep_the_index_order() -> None:
    ctx = Context(not_null=frozenset({"ts", "id"}))
    assert translate_query("SELECT id FROM t ORDER BY ts DESC, id DESC, a", ctx) == (
        "SELECT id FROM t ORDER BY ts DESC, id DESC, a NULLS LAST"
    )


def test_outer_join_columns_may_be_null() -> None:
    from codegen.model.build import _not_null_columns
    from codegen.model.ir import Catalog, Column, Location, PgType, Table

    table = Table(
        "t",
        (Column("id", PgType("int8"), True), Column("a", PgType("text"), False)),
        ("id",),
        (),
        (),
        (),
        Location("x", 1, 1),
    )
    catalog = Catalog((table,), (), ())
    import sqlglot

    inner = sqlglot.parse_one("SELECT id FROM t ORDER BY id", read="postgres")
    outer = sqlglot.parse_one(
        "SELECT t.id FROM t LEFT JOIN t AS u ON u.id = t.id ORDER BY u.id", read="postgres"
    )
    assert _not_null_columns(inner, catalog) == frozenset({"id"})
    assert _not_null_columns(outer, catalog) == frozenset()
