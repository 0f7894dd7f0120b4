"""rewrite_ordering: PostgreSQL's NULL placement and enum order in ORDER BY, no NULLS
clause where SQLite takes none (ON CONFLICT targets) or where no NULL can occur."""

from __future__ import annotations

from codegen.dialects.sqlite import Context, rewrite_ordering, translate_query
from tests.dialect.support import Case, connection

CASES = [
    Case(
        "upsert_target_has_no_nulls_clause",
        rewrite_ordering,
        "INSERT INTO t (id, v) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v "
        "RETURNING id",
        "INSERT INTO t (id, v) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET "
        "v = EXCLUDED.v RETURNING id",
    ),
    Case(
        "not_null_columns_keep_the_index_order",
        rewrite_ordering,
        "SELECT id FROM t ORDER BY ts DESC, id DESC, a",
        "SELECT id FROM t ORDER BY ts DESC, id DESC, a NULLS LAST",
        Context(not_null=frozenset({"ts", "id"})),
    ),
    Case(
        "enum_declaration_order",
        rewrite_ordering,
        "SELECT id FROM t ORDER BY status DESC",
        "SELECT id FROM t ORDER BY CASE status WHEN 'draft' THEN 0 WHEN 'open' THEN 1 "
        "WHEN 'closed' THEN 2 END DESC NULLS FIRST",
        Context(enums=(("status", ("draft", "open", "closed")),)),
    ),
]


def test_null_ordering_matches_postgresql() -> None:
    # PostgreSQL: NULLs sort last ascending and first descending (queries.html §7.5).
    conn = connection()
    asc = translate_query("SELECT id FROM t ORDER BY a, id")
    desc = translate_query("SELECT id FROM t ORDER BY a DESC, id")
    assert [r[0] for r in conn.execute(asc)] == [1, 4, 3, 2]
    assert [r[0] for r in conn.execute(desc)] == [2, 3, 4, 1]


def test_outer_join_columns_may_be_null() -> None:
    """The not-null hint the model stage gives this rule leaves out outer-joined columns."""
    import sqlglot

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
    inner = sqlglot.parse_one("SELECT id FROM t ORDER BY id", read="postgres")
    outer = sqlglot.parse_one(
        "SELECT t.id FROM t LEFT JOIN t AS u ON u.id = t.id ORDER BY u.id", read="postgres"
    )
    assert _not_null_columns(inner, catalog) == frozenset({"id"})
    assert _not_null_columns(outer, catalog) == frozenset()
