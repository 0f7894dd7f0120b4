"""rewrite_now (now(), CURRENT_TIMESTAMP and LOCALTIMESTAMP from the runtime's clock,
with microseconds, one value per transaction), rewrite_interval_arithmetic (exact to the
microsecond, in the operand's own form), rewrite_date_trunc, and the casts between
timestamp and timestamptz."""

from __future__ import annotations

from datetime import datetime, timedelta

from aragora_repos.backends.sqlite.functions import Clock, install
from codegen.dialects.sqlite import (
    rewrite_date_trunc,
    rewrite_interval_arithmetic,
    rewrite_now,
    translate_query,
)
from tests.dialect.support import NOW, Case, Refusal, connection

CASES = [
    Case(
        "now",
        rewrite_now,
        "SELECT now(), CURRENT_TIMESTAMP, CURRENT_DATE, LOCALTIMESTAMP",
        f"SELECT {NOW}, {NOW}, SUBSTRING({NOW}, 1, 10), SUBSTRING({NOW}, 1, 26)",
    ),
    Case(
        "now_minus_interval",
        rewrite_interval_arithmetic,
        "SELECT now() - interval '15 minutes'",
        f"SELECT ARAGORA_TS_ADD({NOW}, -900)",
    ),
    Case(
        "column_plus_interval",
        rewrite_interval_arithmetic,
        "SELECT ts + interval '1 day' FROM t",
        "SELECT ARAGORA_TS_ADD(ts, 86400) FROM t",
    ),
    Case(
        "scaled_interval",
        rewrite_interval_arithmetic,
        "SELECT ts - $1 * interval '2 hours' FROM t",
        "SELECT ARAGORA_TS_ADD(ts, (?1) * -7200) FROM t",
    ),
    Case(
        "date_trunc_day_and_month",
        rewrite_date_trunc,
        "SELECT date_trunc('day', ts), date_trunc('month', ts) FROM t",
        "SELECT ARAGORA_DATE_TRUNC('day', ts), ARAGORA_DATE_TRUNC('month', ts) FROM t",
    ),
]
REFUSALS = [
    Refusal("bare_interval", rewrite_interval_arithmetic, "SELECT interval '1 day'", "interval"),
    Refusal(
        "unknown_unit",
        rewrite_interval_arithmetic,
        "SELECT ts + interval '1 fortnight' FROM t",
        "interval unit 'FORTNIGHT'",
    ),
    Refusal(
        "interval_minus_timestamp",
        rewrite_interval_arithmetic,
        "SELECT interval '1 day' - ts FROM t",
        "interval arithmetic",
    ),
    Refusal(
        "fractional_months",
        rewrite_interval_arithmetic,
        "SELECT ts + interval '1.5 months' FROM t",
        "interval '1.5'",
    ),
    Refusal(
        "month_interval",
        rewrite_interval_arithmetic,
        "SELECT ts + interval '1 month' FROM t",
        "interval '1'",
    ),
    Refusal(
        "date_trunc_week", rewrite_date_trunc, "SELECT date_trunc('week', ts) FROM t", "date_trunc"
    ),
]


def test_timestamp_arithmetic_keeps_the_canonical_form() -> None:
    conn = connection()
    sql = translate_query("SELECT ts + interval '90 minutes' FROM t WHERE id = $1")
    assert conn.execute(sql, (1,)).fetchone() == ("2024-01-15 11:30:00.000000+00:00",)
    assert conn.execute(sql, (2,)).fetchone() == (None,)
    scaled = translate_query("SELECT ts - $2::int * interval '1 day' FROM t WHERE id = $1")
    assert conn.execute(scaled, (1, 3)).fetchone() == ("2024-01-12 10:00:00.000000+00:00",)


def test_date_trunc_gives_the_canonical_form() -> None:
    conn = connection()
    sql = translate_query("SELECT date_trunc('hour', ts) FROM t WHERE id = $1")
    assert conn.execute(sql, (1,)).fetchone() == ("2024-01-15 10:00:00.000000+00:00",)


def test_now_has_microseconds_and_holds_for_the_transaction() -> None:
    conn = connection()
    clock = Clock()
    install(conn, clock)
    sql = translate_query("SELECT now(), LOCALTIMESTAMP, now() + interval '1 second'")
    conn.execute("BEGIN")
    clock.reset()
    first = conn.execute(sql).fetchone()
    later = conn.execute(sql).fetchone()
    conn.execute("COMMIT")
    assert first == later  # one value per transaction, as PostgreSQL's now()
    stamp = datetime.fromisoformat(first[0])
    assert stamp.tzinfo is not None and len(first[0]) == 32
    assert first[1] == first[0][:26] and datetime.fromisoformat(first[1]).tzinfo is None
    assert datetime.fromisoformat(first[2]) - stamp == timedelta(seconds=1)
    clock.reset()
    assert conn.execute(sql).fetchone() != first


def test_timestamp_without_zone_keeps_its_naive_form() -> None:
    """now() into a timestamp column is naive text with microseconds, as PostgreSQL's
    value is; arithmetic and truncation keep it naive; casts move between the forms."""
    conn = connection()
    conn.execute("CREATE TABLE n (id INTEGER PRIMARY KEY, at TEXT)")
    conn.execute("INSERT INTO n VALUES (1, '2024-01-31 23:59:59.999999')")
    add = translate_query("SELECT at + interval '1 microsecond' * 1 FROM n WHERE id = 1")
    assert conn.execute(add).fetchone() == ("2024-02-01 00:00:00.000000",)
    trunc = translate_query("SELECT date_trunc('month', at) FROM n WHERE id = 1")
    assert conn.execute(trunc).fetchone() == ("2024-01-01 00:00:00.000000",)
    zoned = translate_query("SELECT at::timestamptz, now()::timestamp FROM n WHERE id = 1")
    aware, naive = conn.execute(zoned).fetchone()
    assert aware == "2024-01-31 23:59:59.999999+00:00" and len(naive) == 26
    literal = translate_query("SELECT id FROM n WHERE at < '2024-02-01'::timestamp")
    assert "'2024-02-01 00:00:00.000000'" in literal
    assert conn.execute(literal).fetchall() == [(1,)]
