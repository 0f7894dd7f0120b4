"""rewrite_now (now() and CURRENT_TIMESTAMP in the canonical text form),
rewrite_interval_arithmetic (timestamp +/- interval as strftime modifiers) and
rewrite_date_trunc (date_trunc as a strftime pattern)."""

from __future__ import annotations

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
        "SELECT now(), CURRENT_TIMESTAMP, CURRENT_DATE",
        f"SELECT {NOW}, {NOW}, DATE('now')",
    ),
    Case(
        "now_minus_interval",
        rewrite_interval_arithmetic,
        "SELECT now() - interval '15 minutes'",
        "SELECT STRFTIME('%Y-%m-%d %H:%M:%f000+00:00', 'now', '-900.000000 seconds')",
    ),
    Case(
        "column_plus_interval",
        rewrite_interval_arithmetic,
        "SELECT ts + interval '1 day' FROM t",
        "SELECT STRFTIME('%Y-%m-%d %H:%M:%f000+00:00', ts, '+86400.000000 seconds') FROM t",
    ),
    Case(
        "scaled_interval",
        rewrite_interval_arithmetic,
        "SELECT ts - $1 * interval '2 hours' FROM t",
        "SELECT STRFTIME('%Y-%m-%d %H:%M:%f000+00:00', ts, "
        "PRINTF('%+.6f seconds', (?1) * -7200.0)) FROM t",
    ),
    Case(
        "date_trunc_day_and_month",
        rewrite_date_trunc,
        "SELECT date_trunc('day', ts), date_trunc('month', ts) FROM t",
        "SELECT STRFTIME('%Y-%m-%d 00:00:00.000000+00:00', ts), "
        "STRFTIME('%Y-%m-01 00:00:00.000000+00:00', ts) FROM t",
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
