"""The known traps between PostgreSQL and SQLite, each by name.

Every statement is translated by the generator's rules and run on both servers. The
property under test: the translation either gives the same value on both, or is refused
at generation time (Untranslatable, a clear error); it never runs with another meaning.
Traps that need rows (ordering, upserts, RETURNING, LIMIT/OFFSET, IN-lists, empty
aggregates over tables) run through generated queries in test_differential.py as well.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from aragora_repos.backends.sqlite.functions import install
from aragora_repos.codec import encode_timestamptz
from codegen.dialects.sqlite import Untranslatable, translate_query
from codegen.dialects.verify import CONNECTION_PRAGMAS
from tests.pg_server import run_async

pytestmark = pytest.mark.postgres

TRAPS = {
    "null_ordering_asc_nulls_last": "SELECT x FROM (SELECT 2 AS x UNION ALL SELECT NULL "
    "UNION ALL SELECT 1) AS t ORDER BY x LIMIT 1 OFFSET 2",
    "null_ordering_desc_nulls_first": "SELECT x FROM (SELECT 2 AS x UNION ALL SELECT NULL "
    "UNION ALL SELECT 1) AS t ORDER BY x DESC LIMIT 1",
    "integer_division": "SELECT 7 / 2",
    "integer_division_negative": "SELECT -7 / 2",
    "float_division": "SELECT 7.0::float8 / 2",
    "division_by_zero_nullif": "SELECT 1 / NULLIF(0, 0)",
    "concat_with_null": "SELECT 'a' || NULL",
    "concat_text": "SELECT 'a' || 'b'",
    "boolean_comparison": "SELECT (1 = 1) = TRUE",
    "boolean_not": "SELECT NOT (1 > 2)",
    "coalesce": "SELECT COALESCE(NULL, NULL, 3)",
    "greatest_skips_null": "SELECT GREATEST(1, NULL, 3)",
    "least_skips_null": "SELECT LEAST(NULL, 2)",
    "like_is_case_sensitive": "SELECT 'ABC' LIKE 'abc'",
    "ilike_ignores_case": "SELECT 'ABC' ILIKE 'abc'",
    "like_backslash_escape": "SELECT 'a%b' LIKE 'a\\%b'",
    "like_underscore": "SELECT 'ab' LIKE 'a_'",
    "timestamp_comparison_across_zones": "SELECT '2024-01-01 10:00:00+02'::timestamptz "
    "< '2024-01-01 09:30:00+00'::timestamptz",
    "now_is_utc_text": "SELECT now() > '2020-01-01 00:00:00+00'::timestamptz",
    "interval_arithmetic_days": "SELECT '2024-01-31 00:00:00+00'::timestamptz + interval '1 day'",
    "interval_arithmetic_months": "SELECT '2024-01-31 00:00:00+00'::timestamptz "
    "+ interval '1 month'",
    "json_equality_ignores_key_order": 'SELECT \'{"a":1,"b":2}\'::jsonb = \'{"b":2,"a":1}\'::jsonb',
    "in_list": "SELECT 2 IN (1, 2, 3)",
    "empty_sum_is_null": "SELECT sum(x) FROM (SELECT 1 AS x WHERE FALSE) AS t",
    "empty_count_is_zero": "SELECT count(*) FROM (SELECT 1 AS x WHERE FALSE) AS t",
    "empty_max_is_null": "SELECT max(x) FROM (SELECT 1 AS x WHERE FALSE) AS t",
    "avg_of_integers": "SELECT avg(x)::float8 FROM (SELECT 1 AS x UNION ALL SELECT 2) AS t",
    "limit_offset": "SELECT x FROM (SELECT 1 AS x UNION ALL SELECT 2 UNION ALL SELECT 3) AS s "
    "ORDER BY x LIMIT 1 OFFSET 1",
    "date_trunc_month": "SELECT date_trunc('month', '2024-03-15 12:34:56+00'::timestamptz)",
}


def _normal(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return encode_timestamptz(value)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _sqlite(sql: str) -> Any:
    conn = sqlite3.connect(":memory:")
    install(conn)  # the runtime's SQL functions, as every project connection has them
    try:
        for pragma in CONNECTION_PRAGMAS:
            conn.execute(pragma)
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def _postgres(dsn: str, sql: str) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("SET TIME ZONE 'UTC'")
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return run_async(go())


@pytest.mark.parametrize("name", sorted(TRAPS))
def test_trap(name: str, postgres_dsn: str) -> None:
    sql = TRAPS[name]
    expected = _normal(_postgres(postgres_dsn, sql))
    try:
        translated = translate_query(sql)
    except Untranslatable:
        return  # refused at generation: the query author gets a file:line:col error
    got = _normal(_sqlite(translated))
    if isinstance(expected, float) or isinstance(got, float):
        assert got == pytest.approx(expected), translated
    else:
        assert got == expected, translated
