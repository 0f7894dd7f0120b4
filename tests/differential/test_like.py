"""LIKE and ILIKE: the SQLite side (the runtime's ``aragora_like``/``aragora_ilike``)
gives PostgreSQL's answer, or PostgreSQL's error, for texts and patterns drawn from an
alphabet of wildcards, escapes and letters that fold (É/é), over many examples at once."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aragora_repos import errors
from aragora_repos.backends.sqlite.functions import install
from codegen.dialects.sqlite import translate_query

ALPHABET = ["a", "b", "A", "É", "é", "%", "_", "\\", "!", "ß"]
TEXTS = st.text(st.sampled_from(ALPHABET), max_size=6)


def _sqlite(sql: str, pairs: list[tuple[str, str]]) -> list[object]:
    conn = sqlite3.connect(":memory:")
    install(conn)
    out: list[object] = []
    try:
        for text, pattern in pairs:
            try:
                out.append(conn.execute(sql, (text, pattern)).fetchone()[0])
            except sqlite3.Error as exc:
                out.append(type(errors.from_sqlite(exc)).__name__)
    finally:
        conn.close()
    return out


async def _postgres(dsn: str, sql: str, pairs: list[tuple[str, str]]) -> list[object]:
    conn = await asyncpg.connect(dsn)
    out: list[object] = []
    try:
        for text, pattern in pairs:
            try:
                value = await conn.fetchval(sql, text, pattern)
                out.append(None if value is None else int(value))
            except asyncpg.PostgresError as exc:
                out.append(type(errors.from_sqlstate(exc.sqlstate, str(exc))).__name__)
    finally:
        await conn.close()
    return out


QUERIES = [
    "SELECT $1::text LIKE $2::text",
    "SELECT $1::text ILIKE $2::text",
    "SELECT $1::text NOT LIKE $2::text",
    "SELECT $1::text LIKE $2::text ESCAPE '!'",
    "SELECT $1::text NOT ILIKE $2::text ESCAPE '!'",
]


@pytest.mark.postgres
@pytest.mark.parametrize("query", QUERIES)
def test_same_answer_or_same_error(query: str, postgres_dsn: str) -> None:
    sqlite_sql = translate_query(query)

    @settings(max_examples=40, deadline=None, database=None)
    @given(st.lists(st.tuples(TEXTS, TEXTS), min_size=20, max_size=20))
    def check(pairs: list[tuple[str, str]]) -> None:
        pairs += [("a", "a\\"), ("ab", "a\\"), ("", "\\"), ("École", "é%"), ("ÉCOLE", "%co%")]
        expected = asyncio.run(_postgres(postgres_dsn, query, pairs))
        assert _sqlite(sqlite_sql, pairs) == expected, list(zip(pairs, expected, strict=True))

    check()
