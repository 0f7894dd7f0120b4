"""Array and jsonb containment, overlap and key tests, and extract(), on SQLite (the
runtime's functions over JSON text and timestamp text) give PostgreSQL's answers or its
error class, for drawn arrays with NULL elements and duplicates, nested JSON documents
whose scalars differ only in kind (true/1, "1"/1, 1/1.0), and timestamps across years."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aragora_repos import errors
from aragora_repos.backends.sqlite.functions import install
from codegen.dialects.sqlite import translate_query

INT_ARRAYS = st.lists(st.sampled_from([1, 2, 3, None]), max_size=4) | st.none()
SCALARS = st.sampled_from([1, 1.0, 2, "1", "a", "b", True, False, None])
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "1"]), inner, max_size=3)
    ),
    max_leaves=6,
)
KEYS = st.lists(st.sampled_from(["a", "b", "1", "c"]), max_size=3)
MOMENTS = st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2099, 12, 31))


def _sqlite(sql: str, rows: list[tuple[Any, ...]], encode: Any) -> list[object]:
    conn = sqlite3.connect(":memory:")
    install(conn)
    out: list[object] = []
    try:
        for row in rows:
            try:
                value = conn.execute(sql, tuple(encode(v) for v in row)).fetchone()[0]
                out.append(value)
            except sqlite3.Error as exc:
                out.append(type(errors.from_sqlite(exc)).__name__)
    finally:
        conn.close()
    return out


async def _postgres(dsn: str, sql: str, rows: list[tuple[Any, ...]], result: Any) -> list[object]:
    conn = await asyncpg.connect(dsn)
    out: list[object] = []
    try:
        await conn.execute("SET TIME ZONE 'UTC'")
        for row in rows:
            try:
                out.append(result(await conn.fetchval(sql, *row)))
            except asyncpg.PostgresError as exc:
                out.append(type(errors.from_sqlstate(exc.sqlstate, str(exc))).__name__)
    finally:
        await conn.close()
    return out


def _same(postgres_dsn: str, query: str, rows: list[tuple[Any, ...]], **how: Any) -> None:
    sqlite_sql = translate_query(query)
    expected = asyncio.run(_postgres(postgres_dsn, query, rows, how.get("result", _bool)))
    got = _sqlite(sqlite_sql, rows, how.get("encode", _json))
    assert got == expected, [
        (r, g, e) for r, g, e in zip(rows, got, expected, strict=True) if g != e
    ]


def _bool(value: object) -> object:
    return None if value is None else int(bool(value))


def _json(value: object) -> object:
    return None if value is None else json.dumps(value)


def _pg_json(value: object) -> str:
    return json.dumps(value)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "query",
    [
        "SELECT $1::int[] @> $2::int[]",
        "SELECT $1::int[] <@ $2::int[]",
        "SELECT $1::int[] && $2::int[]",
    ],
)
def test_array_operators(query: str, postgres_dsn: str) -> None:
    @settings(max_examples=20, deadline=None, database=None)
    @given(st.lists(st.tuples(INT_ARRAYS, INT_ARRAYS), min_size=25, max_size=25))
    def check(rows: list[tuple[Any, ...]]) -> None:
        rows = [*rows, ([1, None], [None]), ([1, 1], [1]), ([], []), ([1], []), (None, [1])]
        _same(postgres_dsn, query, rows)

    check()


@pytest.mark.postgres
def test_jsonb_containment(postgres_dsn: str) -> None:
    query = "SELECT $1::jsonb @> $2::jsonb"

    @settings(max_examples=25, deadline=None, database=None)
    @given(st.lists(st.tuples(DOCUMENTS, DOCUMENTS), min_size=25, max_size=25))
    def check(rows: list[tuple[Any, ...]]) -> None:
        rows = [
            *rows,
            (["a", "b"], "a"),
            ({"a": ["x"]}, {"a": "x"}),
            ([1, [2, 3]], [[3]]),
            ([True], [1]),
            ({"a": 1}, {"a": 1.0}),
            ("a", ["a"]),
            ([None], [None]),
        ]
        pg_rows = [tuple(_pg_json(v) for v in row) for row in rows]
        _same(postgres_dsn, query, pg_rows, encode=lambda v: v)

    check()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "query", ["SELECT $1::jsonb ? $2::text", "SELECT $1::jsonb ?| $2", "SELECT $1::jsonb ?& $2"]
)
def test_jsonb_key_tests(query: str, postgres_dsn: str) -> None:
    single = "?|" not in query and "?&" not in query

    @settings(max_examples=20, deadline=None, database=None)
    @given(
        st.lists(
            st.tuples(DOCUMENTS, st.sampled_from(["a", "b", "1"]) if single else KEYS),
            min_size=25,
            max_size=25,
        )
    )
    def check(rows: list[tuple[Any, ...]]) -> None:
        pg_rows = [(_pg_json(doc), key) for doc, key in rows]
        sqlite_rows = [(_pg_json(doc), key if single else json.dumps(key)) for doc, key in rows]
        expected = asyncio.run(_postgres(postgres_dsn, query, pg_rows, _bool))
        got = _sqlite(translate_query(query), sqlite_rows, lambda v: v)
        assert got == expected, [
            (r, g, e) for r, g, e in zip(rows, got, expected, strict=True) if g != e
        ]

    check()


FIELDS = [
    "year", "month", "day", "hour", "minute", "second", "milliseconds", "microseconds",
    "epoch", "dow", "isodow", "doy", "week", "isoyear", "quarter", "decade", "century",
    "millennium",
]  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize("kind", ["timestamp", "timestamptz", "date"])
def test_extract(kind: str, postgres_dsn: str) -> None:
    def pg_value(moment: datetime) -> object:
        if kind == "date":
            return moment.date()
        return moment.replace(tzinfo=UTC) if kind == "timestamptz" else moment

    def sqlite_value(moment: datetime) -> str:
        if kind == "date":
            return moment.date().isoformat()
        if kind == "timestamptz":
            return moment.replace(tzinfo=UTC).isoformat(" ", "microseconds")
        return moment.isoformat(" ", "microseconds")

    @settings(max_examples=6, deadline=None, database=None)
    @given(st.lists(MOMENTS, min_size=10, max_size=10))
    def check(moments: list[datetime]) -> None:
        moments = [*moments, datetime(2021, 1, 3), datetime(2020, 12, 31, 23, 59, 59, 999999)]
        for field in FIELDS:
            query = f"SELECT extract({field} FROM $1::{kind})::text"
            expected = asyncio.run(
                _postgres(postgres_dsn, query, [(pg_value(m),) for m in moments], lambda v: v)
            )
            got = _sqlite(
                translate_query(query), [(sqlite_value(m),) for m in moments], lambda v: v
            )
            assert got == expected, (
                field,
                [(m, g, e) for m, g, e in zip(moments, got, expected, strict=True) if g != e],
            )

    check()


def test_extract_of_a_date_is_the_date_of_a_timestamp() -> None:
    """A date and a timestamp at its midnight answer the same for the date fields."""
    conn = sqlite3.connect(":memory:")
    install(conn)
    day = date(2024, 2, 29)
    for field in ("year", "doy", "week", "dow"):
        a = conn.execute("SELECT aragora_extract(?, ?)", (field, day.isoformat())).fetchone()
        b = conn.execute(
            "SELECT aragora_extract(?, ?)", (field, f"{day.isoformat()} 00:00:00.000000")
        ).fetchone()
        assert a == b and a[0] is not None
