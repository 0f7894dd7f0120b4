"""numeric on SQLite (the runtime's collation, functions and aggregates) gives
PostgreSQL's answer, with its scale, or PostgreSQL's error class, for values drawn from
many scales and magnitudes, zeros of every scale, NaN and the infinities."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aragora_repos import errors
from aragora_repos.backends.sqlite.functions import install
from aragora_repos.codec import encode_numeric
from codegen.dialects.sqlite import translate_query

FINITE = st.builds(
    lambda digits, exponent: Decimal(digits).scaleb(exponent),
    st.integers(-(10**14), 10**14) | st.integers(-1000, 1000),
    st.integers(-9, 2),
)
EDGES = st.sampled_from(
    [Decimal(x) for x in ("0", "0.00", "-0.0", "1", "-1", "0.5", "-0.5", "2.5", "9.995")]
    + [Decimal(x) for x in ("NaN", "Infinity", "-Infinity", "1E+3", "1E-9", "0.0001")]
)
VALUES = st.one_of(FINITE, EDGES)


def _answer(value: object) -> object:
    if isinstance(value, Decimal):
        return encode_numeric(value)
    if isinstance(value, str):
        return encode_numeric(Decimal(value))
    if isinstance(value, bool):
        return int(value)
    return value


def _sqlite(sql: str, rows: list[tuple[Decimal, ...]]) -> list[object]:
    conn = sqlite3.connect(":memory:")
    install(conn)
    out: list[object] = []
    try:
        for row in rows:
            try:
                found = conn.execute(sql, tuple(encode_numeric(v) for v in row)).fetchall()
                out.append(tuple(_answer(r[0]) for r in found))
            except sqlite3.Error as exc:
                out.append(type(errors.from_sqlite(exc)).__name__)
    finally:
        conn.close()
    return out


async def _postgres(dsn: str, sql: str, rows: list[tuple[Decimal, ...]]) -> list[object]:
    conn = await asyncpg.connect(dsn)
    out: list[object] = []
    try:
        for row in rows:
            try:
                found = await conn.fetch(sql, *row)
                out.append(tuple(_answer(r[0]) for r in found))
            except asyncpg.PostgresError as exc:
                out.append(type(errors.from_sqlstate(exc.sqlstate, str(exc))).__name__)
    finally:
        await conn.close()
    return out


BINARY = [
    "SELECT $1::numeric + $2::numeric",
    "SELECT $1::numeric - $2::numeric",
    "SELECT $1::numeric * $2::numeric",
    "SELECT $1::numeric / $2::numeric",
    "SELECT $1::numeric % $2::numeric",
    "SELECT $1::numeric < $2::numeric",
    "SELECT $1::numeric = $2::numeric",
    "SELECT $1::numeric >= $2::numeric",
    "SELECT $1::numeric BETWEEN $2::numeric AND $2::numeric + 1",
]
UNARY = [
    "SELECT $1::numeric",
    "SELECT -$1::numeric",
    "SELECT abs($1::numeric)",
    "SELECT round($1::numeric)",
    "SELECT round($1::numeric, 2)",
    "SELECT round($1::numeric, -1)",
    "SELECT trunc($1::numeric, 1)",
    "SELECT ceil($1::numeric)",
    "SELECT floor($1::numeric)",
    "SELECT $1::numeric::int8",
    "SELECT $1::numeric::int2",
    "SELECT $1::numeric(6, 2)",
    "SELECT $1::numeric * 1.10",
    "SELECT $1::numeric > 2.5",
]
#: Three values as rows (SQLite has no column list for a VALUES alias).
_ROWS = (
    "(SELECT $1::numeric AS x, 1 AS i UNION ALL SELECT $2::numeric, 2 "
    "UNION ALL SELECT $3::numeric, 3) AS v"
)
AGGREGATES = [
    f"SELECT sum(x) FROM {_ROWS}",
    f"SELECT avg(x) FROM {_ROWS}",
    f"SELECT min(x) FROM {_ROWS}",
    f"SELECT max(x) FROM {_ROWS}",
    f"SELECT x FROM {_ROWS} ORDER BY x, i",
    f"SELECT x FROM {_ROWS} ORDER BY x DESC, i",
    f"SELECT sum(x) OVER (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM {_ROWS}",
    f"SELECT avg(x) OVER (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM {_ROWS}",
    f"SELECT max(x) OVER (ORDER BY i ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM {_ROWS}",
    f"SELECT count(*) FROM {_ROWS} GROUP BY x ORDER BY x",
]


def _check(postgres_dsn: str, query: str, arity: int, extra: list[tuple[Decimal, ...]]) -> None:
    sqlite_sql = translate_query(query)

    @settings(max_examples=15, deadline=None, database=None)
    @given(st.lists(st.tuples(*[VALUES] * arity), min_size=25, max_size=25))
    def check(rows: list[tuple[Decimal, ...]]) -> None:
        rows = rows + extra
        expected = asyncio.run(_postgres(postgres_dsn, query, rows))
        got = _sqlite(sqlite_sql, rows)
        assert got == expected, [
            (r, g, e) for r, g, e in zip(rows, got, expected, strict=True) if g != e
        ]

    check()


def _d(*values: str) -> tuple[Decimal, ...]:
    return tuple(Decimal(v) for v in values)


@pytest.mark.postgres
@pytest.mark.parametrize("query", BINARY)
def test_operators(query: str, postgres_dsn: str) -> None:
    extra = [_d("1", "3"), _d("2", "3"), _d("1", "0"), _d("0.1", "0.2"), _d("9.9", "9.90")]
    extra += [_d("-7", "2"), _d("NaN", "NaN"), _d("Infinity", "-Infinity"), _d("1E+3", "7")]
    _check(postgres_dsn, query, 2, extra)


@pytest.mark.postgres
@pytest.mark.parametrize("query", UNARY)
def test_functions_and_casts(query: str, postgres_dsn: str) -> None:
    extra = [_d("2.5"), _d("-2.5"), _d("9999.995"), _d("32767.5"), _d("-0.001"), _d("NaN")]
    extra += [_d("sNaN"), _d("-0.00"), _d("1E+20"), _d("1E-20")]
    _check(postgres_dsn, query, 1, extra)


@pytest.mark.postgres
@pytest.mark.parametrize("query", AGGREGATES)
def test_aggregates(query: str, postgres_dsn: str) -> None:
    extra = [_d("1.5", "2.25", "0"), _d("NaN", "1", "2"), _d("1", "1.000", "1.0")]
    extra += [_d("Infinity", "-Infinity", "1"), _d("0.001", "5", "6")]
    _check(postgres_dsn, query, 3, extra)


RANGE_EDGES = st.builds(
    lambda digits, exponent: Decimal(digits).scaleb(exponent),
    st.integers(-(10**20), 10**20),
    st.integers(-16400, -16370) | st.integers(131040, 131080) | st.integers(-3, 3),
) | st.builds(  # exponent 0 and every digit written out (Decimal of a large int)
    lambda digits, width: Decimal(str(digits).ljust(width, "0")),
    st.integers(1, 10**6),
    st.integers(131068, 131076),
)


@pytest.mark.postgres
@settings(max_examples=60, deadline=None)
@given(values=st.lists(RANGE_EDGES, min_size=20, max_size=20))
def test_check_numeric_refuses_what_postgresql_input_refuses(
    postgres_dsn: str, values: list[Decimal]
) -> None:
    """numeric's range as PostgreSQL's own input has it (131072 integer digits, 16383
    after the point): asyncpg's binary encoder sends a value past it as 0, so the check
    before it must refuse exactly what the server's text input refuses."""
    from aragora_repos.codec import check_numeric

    async def server() -> list[bool]:
        conn = await asyncpg.connect(postgres_dsn)
        accepted: list[bool] = []
        try:
            for value in values:
                try:
                    await conn.fetchval("SELECT $1::text::numeric IS NOT NULL", str(value))
                    accepted.append(True)
                except asyncpg.NumericValueOutOfRangeError:
                    accepted.append(False)
        finally:
            await conn.close()
        return accepted

    ours: list[bool] = []
    for value in values:
        try:
            check_numeric(value)
            ours.append(True)
        except errors.DataError as exc:
            assert exc.sqlstate == "22003"
            ours.append(False)
    assert ours == asyncio.run(server()), values
