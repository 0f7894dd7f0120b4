"""``json_text``: jsonb's number form without an exponent, strings untouched, and the
cheap exponent test never missing a number that needs rewriting."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aragora_repos.codec import json_text
from aragora_repos.errors import DataError

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def _plain(value: object) -> object:
    """What jsonb gives back: every float as its exact decimal."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@given(JSON)
def test_json_text_reads_back_as_the_same_value_without_exponents(value: object) -> None:
    if _has_nul(value):
        return  # refused with 22P05, tested below
    text = json_text(value)
    assert _plain(json.loads(text, parse_float=Decimal)) == _plain(value)
    # No number (as written in the text, strings aside) keeps an exponent.
    numbers = _numbers(json.loads(text, parse_float=_Number, parse_int=_Number))
    assert not any("e" in n.text or "E" in n.text for n in numbers)


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


class _Number:
    """A number as json.loads found it in the text."""

    def __init__(self, text: str) -> None:
        self.text = text


def _numbers(value: object) -> list[_Number]:
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    return [value] if isinstance(value, _Number) else []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e20, "100000000000000000000"),
        (-2.5e-8, "-0.000000025"),
        ({"s": "1e5 and 2E-3 stay", "n": 1e-7}, '{"s":"1e5 and 2E-3 stay","n":0.0000001}'),
        ({"e": "ee"}, '{"e":"ee"}'),
    ],
)
def test_json_text_examples(value: object, text: str) -> None:
    assert json_text(value) == text


def test_json_text_refuses_what_postgresql_refuses() -> None:
    with pytest.raises(DataError) as nul:
        json_text({"a": "x\x00y"})
    assert nul.value.sqlstate == "22P05"
    with pytest.raises(DataError):
        json_text(math.nan)


def test_numeric_past_its_range_is_refused_as_decimal_int_or_on_sqlite() -> None:
    """asyncpg's binary encoder sends a numeric argument past 131072 integer digits as 0
    (a Decimal or an int alike); both are refused with 22003 before it, and SQLite's
    encoding refuses the same values and takes an int or a float as asyncpg does."""
    from decimal import Decimal

    from aragora_repos.codec import check_numeric, encode_numeric

    largest = 10**131072 - 1
    assert check_numeric(largest) == largest
    assert check_numeric(Decimal("9.99E+131071")) == Decimal("9.99E+131071")
    # Decimal(10**131072) has exponent 0: asyncpg sent it as 0 too (found by review).
    huges: list[Decimal | int] = [
        10**131072,
        -(10**131072),
        Decimal("1E+131072"),
        Decimal(10**131072),
        Decimal(-(10**131072)),
    ]
    for huge in [*huges, Decimal("1E-16384")]:
        for encode in (check_numeric, encode_numeric):
            with pytest.raises(DataError) as info:
                encode(huge)
            assert info.value.sqlstate == "22003"
    assert encode_numeric(12) == "12"
    assert encode_numeric(0.5) == "0.5"
    assert encode_numeric(Decimal("0E+200000")) == "0"
    assert encode_numeric(Decimal("-0.00")) == "0.00"
