"""Each target type's converter: what it converts (and by which rule), what it rejects."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aragora_repos.tools.canonical import canonical, row_converter, row_hasher
from aragora_repos.tools.convert import Reject, TargetColumn, UnsupportedType, converter
from aragora_repos.tools.jsonb import jsonb_text


def col(
    type_name: str, *, not_null: bool = False, typmod: int = -1, labels: tuple[str, ...] = ()
) -> TargetColumn:
    return TargetColumn("c", type_name, type_name, not_null, labels, typmod)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


CONVERTED: list[tuple[str, Any, Any, str | None]] = [
    # (target type, source value, converted value, rule or None when passed through)
    ("int4", 7, 7, None),
    ("int4", 2**31 - 1, 2**31 - 1, None),
    ("int8", 2**40, 2**40, None),
    ("int4", 3.0, 3, "int_real"),
    ("int8", "-42", -42, "int_text"),
    ("bool", 1, True, "bool_int"),
    ("bool", 0, False, "bool_int"),
    ("bool", "true", True, "bool_text"),
    ("bool", "t", True, "bool_text"),
    ("bool", "F", False, "bool_text"),
    ("bool", 1.0, True, "bool_real"),
    ("float8", 1.5, 1.5, None),
    ("float8", float("inf"), float("inf"), None),
    ("float8", 3, 3.0, "real_int"),
    ("float8", "2.5e3", 2500.0, "real_text"),
    ("float4", 0.1, 0.10000000149011612, "real4"),
    ("numeric", "12.50", Decimal("12.50"), "num_text"),
    ("numeric", 5, Decimal(5), "num_int"),
    ("numeric", 0.1, Decimal("0.1"), "num_real"),
    ("text", "héllo", "héllo", None),
    ("text", 12, "12", "text_int"),
    ("text", 0.5, "0.5", "text_real"),
    ("text", b"abc", "abc", "text_blob"),
    ("bytea", b"\x00\xff", b"\x00\xff", None),
    ("bytea", "ab", b"ab", "blob_text"),
    ("jsonb", '{"a": [1, 2]}', '{"a": [1, 2]}', None),
    ("jsonb", 5, "5", "json_number"),
    # jsonb respells what it stores; the text is sent as it is, the change is counted.
    ("jsonb", '{"bb": 1, "a": 2}', '{"bb": 1, "a": 2}', "json_respelled"),
    ("jsonb", '{"a":1}', '{"a":1}', "json_respelled"),
    ("jsonb", '{"a": 1, "a": 2}', '{"a": 1, "a": 2}', "json_duplicate_keys"),
    ("jsonb", '[{"x": [{"k": 1, "k": 1}]}]', '[{"x": [{"k": 1, "k": 1}]}]', "json_duplicate_keys"),
    ("json", '{"a": 1, "a": 2}', '{"a": 1, "a": 2}', None),
    (
        "uuid",
        "12345678-1234-5678-1234-567812345678",
        uuid.UUID(int=0x12345678123456781234567812345678),
        None,
    ),
    ("uuid", b"\x00" * 16, uuid.UUID(int=0), "uuid_blob"),
    ("timestamptz", "2024-01-15 10:30:00", ts("2024-01-15 10:30:00+00:00"), "ts_naive"),
    ("timestamptz", "2024-01-15T10:30:00+02:00", ts("2024-01-15 08:30:00+00:00"), "ts_zone"),
    (
        "timestamptz",
        "2024-01-15 10:30:00.123456+00:00",
        ts("2024-01-15 10:30:00.123456+00:00"),
        None,
    ),
    ("timestamptz", "2024-01-15T10:30:00Z", ts("2024-01-15 10:30:00+00:00"), None),
    ("timestamptz", "2024-01-15", ts("2024-01-15 00:00:00+00:00"), "ts_date"),
    ("timestamptz", 1705314600, ts("2024-01-15 10:30:00+00:00"), "ts_epoch_s"),
    ("timestamptz", 1627303906122, ts("2021-07-26 12:51:46.122+00:00"), "ts_epoch_ms"),
    ("timestamptz", "1627303906122", ts("2021-07-26 12:51:46.122+00:00"), "ts_epoch_ms"),
    ("timestamptz", 1705314600.5, ts("2024-01-15 10:30:00.5+00:00"), "ts_epoch_s"),
    ("timestamp", "2024-01-15 10:30:00", datetime(2024, 1, 15, 10, 30), "ts_naive"),
    ("date", "2024-01-15", date(2024, 1, 15), None),
    ("date", "2024-01-15 00:00:00", date(2024, 1, 15), "date_ts"),
    ("_text", '["a", null, "b"]', ["a", None, "b"], "array_json"),
    ("user_role", "admin", "admin", None),
]


@pytest.mark.parametrize(("type_name", "value", "expected", "rule"), CONVERTED)
def test_converted_by_declared_rule(
    type_name: str, value: Any, expected: Any, rule: str | None
) -> None:
    counts: Counter[str] = Counter()
    column = col(type_name, labels=("owner", "admin") if type_name == "user_role" else ())
    result = converter(column, counts)(value)
    assert result == expected and type(result) is type(expected)
    assert dict(counts) == ({rule: 1} if rule else {})


REJECTED: list[tuple[str, Any, str]] = [
    ("int4", 2**40, "out of range for int4"),
    ("int2", 40000, "out of range"),
    ("int4", "abc", "text 'abc' in an integer column"),
    ("int4", 1.5, "not an integer"),
    ("int8", float("inf"), "not an integer"),
    ("int4", b"\x01", "blob"),
    ("bool", 2, "not a boolean"),
    ("bool", "maybe", "not a boolean"),
    ("float8", "fast", "in a real column"),
    ("float8", 2**60 + 1, "no exact double precision"),
    ("float4", 1e39, "out of range for real"),
    ("text", "a\x00b", "NUL byte"),
    ("text", b"\xff\xfe", "not UTF-8"),
    ("jsonb", "{bad json", "invalid JSON"),
    ("jsonb", "NaN", "invalid JSON"),
    ("jsonb", '{"a": "\\u0000"}', "\\u0000"),
    ("jsonb", '"\\ud800"', "lone surrogate"),
    ("jsonb", float("inf"), "is not JSON"),
    ("uuid", "not-a-uuid", "not a UUID"),
    ("timestamptz", "yesterday", "not a timestamp"),
    ("timestamptz", 10**15, "neither epoch seconds nor milliseconds"),
    ("timestamptz", float("nan"), "not a point in time"),
    ("date", "2024-01-15 10:00:00", "not at midnight"),
    ("_text", "a,b", "not a JSON array"),
    ("_text", "[1, 2]", "array of strings"),
    ("user_role", "root", "not one of owner, admin"),
    ("bytea", 5, "in a bytea column"),
]


@pytest.mark.parametrize(("type_name", "value", "reason"), REJECTED)
def test_rejected_with_reason(type_name: str, value: Any, reason: str) -> None:
    column = col(type_name, labels=("owner", "admin") if type_name == "user_role" else ())
    with pytest.raises(Reject, match=None) as info:
        converter(column, Counter())(value)
    assert reason in str(info.value)


def test_numeric_scale_and_precision_are_enforced() -> None:
    typmod = ((5 << 16) | 2) + 4  # numeric(5,2)
    convert = converter(TargetColumn("c", "numeric", "numeric(5,2)", False, (), typmod), Counter())
    assert convert("1.5") == Decimal("1.50")
    with pytest.raises(Reject, match="more than 2 decimal places"):
        convert("1.555")
    with pytest.raises(Reject, match="does not fit"):
        convert("12345.6")


def test_numeric_outside_its_range_is_rejected_not_sent_as_zero() -> None:
    """asyncpg's binary encoder sends a numeric past 131072 integer digits as 0: the row
    was stored with 0 and no reject. It is rejected now, by the bounds of PostgreSQL's
    own input (a zero of any exponent is 0)."""
    convert = converter(TargetColumn("c", "numeric", "numeric", False, (), -1), Counter())
    assert convert("9.9E+131071") == Decimal("9.9E+131071")
    assert convert("1E-16383") == Decimal("1E-16383")
    assert convert("0E+200000") == 0
    for value in ("1E+131072", "-1E+131072", "1E-16384", "1.0E-16383"):
        with pytest.raises(Reject, match="outside numeric's range"):
            convert(value)


def test_varchar_length_and_not_null() -> None:
    convert = converter(
        TargetColumn("c", "varchar", "character varying(3)", True, (), 7), Counter()
    )
    assert convert("abc") == "abc"
    with pytest.raises(Reject, match="exceed"):
        convert("abcd")
    with pytest.raises(Reject, match="NULL in a NOT NULL column"):
        convert(None)


def test_unsupported_type_is_named() -> None:
    with pytest.raises(UnsupportedType, match="no conversion into inet"):
        converter(col("inet"), Counter())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"b": 1, "a": 2, "aa": 3}', '{"a": 2, "b": 1, "aa": 3}'),
        ('{"a": 1, "a": 2}', '{"a": 2}'),
        ("[1e2, 1.50, -0, 0.0, 1E-2]", "[100, 1.50, 0, 0.0, 0.01]"),
        ('"tab\\there \\u0001 é"', '"tab\\there \\u0001 é"'),
        ("[true, false, null]", "[true, false, null]"),
    ],
)
def test_jsonb_text_matches_postgres_output(text: str, expected: str) -> None:
    parsed = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    assert jsonb_text(parsed) == expected


def test_canonical_forms() -> None:
    assert canonical(col("bool"))(True) == "t"
    assert canonical(col("float8"))(1.0) == "3ff0000000000000"
    assert canonical(col("float8"))(float("nan")) == "nan"
    assert canonical(col("numeric"))(Decimal("-0.0")) == "0.0"
    assert canonical(col("timestamptz"))(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == "1000000"
    assert canonical(col("date"))(date(1969, 12, 31)) == "-1"
    assert canonical(col("_text"))(["a", None]) == '["a",null]'


# --- whole rows: the generated converter and hasher -------------------------------------

ROW_COLUMNS = [
    TargetColumn("a", "int2", "smallint", False),
    TargetColumn("b", "int4", "integer", True),
    TargetColumn("c", "int8", "bigint", False),
    TargetColumn("d", "float8", "double precision", False),
    TargetColumn("e", "text", "text", True),
    TargetColumn("f", "varchar", "character varying(3)", False, (), 3 + 4),
    TargetColumn("g", "bytea", "bytea", False),
    TargetColumn("h", "bool", "boolean", False),
]
loose_values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, 2**15, -(2**15) - 1, 2**31, 2**63, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.sampled_from(["", "a\x00", "12", "1.5", "true", "t", "abcd", "\u00e9t\u00e9"]),
    st.binary(max_size=4),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(loose_values, min_size=len(ROW_COLUMNS), max_size=len(ROW_COLUMNS)))
def test_row_converter_agrees_with_the_column_converters(values: list[Any]) -> None:
    row = ("position", "key", *values)
    fast_counts = [Counter[str]() for _ in ROW_COLUMNS]
    slow_counts = [Counter[str]() for _ in ROW_COLUMNS]
    convert_row = row_converter(ROW_COLUMNS, fast_counts, 2)
    slow = [converter(c, n) for c, n in zip(ROW_COLUMNS, slow_counts, strict=True)]
    try:
        expected: tuple[Any, ...] | str = tuple(f(v) for f, v in zip(slow, values, strict=True))
    except Reject as exc:
        expected = str(exc)
    try:
        got: tuple[Any, ...] | str = convert_row(row)
    except Reject as exc:
        got = str(exc)
    assert repr(got) == repr(expected)  # repr: NaN equals itself, 1 and True differ
    assert fast_counts == slow_counts


def test_row_hasher_writes_each_column_with_its_length() -> None:
    columns = [TargetColumn("t", "text", "text", False), TargetColumn("u", "text", "text", False)]
    hash_row = row_hasher(columns)
    # The length prefix keeps a value from running into the next one.
    assert hash_row(("ab", "c")) != hash_row(("a", "bc"))
    assert hash_row((None, "x")) != hash_row(("", "x"))
    digest = hashlib.md5(b"V2:abN").digest()
    assert hash_row(("ab", None)) == int.from_bytes(digest[:8], "big", signed=True)


json_samples = st.one_of(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=8,
    ).map(lambda v: json.dumps(v, ensure_ascii=False)),
    st.sampled_from(
        ['{"a": NaN}', '{"a": "\\u0000"}', '["\\ud800"]', '["\\ud83d\\ude00"]', "{broken", ""]
    ),
    st.text(max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(json_samples)
def test_jsonb_kept_documents_change_nothing_but_the_work(text: str) -> None:
    column = col("jsonb")
    plain_counts, kept_counts = Counter[str](), Counter[str]()
    plain = converter(column, plain_counts)
    kept = converter(column, kept_counts, keep_documents=True)
    try:
        expected: Any = plain(text)
    except Reject as exc:
        expected = Reject(str(exc))
    try:
        got: Any = kept(text)
    except Reject as exc:
        got = Reject(str(exc))
    if isinstance(expected, Reject):
        assert isinstance(got, Reject) and str(got) == str(expected)
        return
    assert got == expected and plain_counts == kept_counts
    form = canonical(column)
    assert form(got) == form(expected) == form(str(got))
