"""PostgreSQL's ``numeric`` on SQLite: exact decimal text, compared and computed as
PostgreSQL does (``src/backend/utils/adt/numeric.c``).

A numeric value is stored as its canonical text: the digits PostgreSQL prints, with the
value's display scale (``12.50`` keeps its two places, ``1E+3`` is ``1000``, negative zero
is ``0``), ``NaN``, ``Infinity`` or ``-Infinity``. Text compares as text and SQLite
computes with it as a float, so the generated SQLite statements use instead:

- the collation ``aragora_numeric``: numeric order and equality (``9.9 = 9.90``,
  ``9.99 < 10.00``), NaN equal to itself and above every other value;
- ``aragora_numeric(x[, precision, scale])``: any value as canonical numeric text, rounded
  to a column's ``numeric(p, s)`` as PostgreSQL rounds on input (half away from zero),
  and 22003 for a value too large for it;
- ``aragora_numeric_add``/``_sub``/``_mul``/``_div``/``_mod``/``_neg``/``_abs``, ``_round``,
  ``_trunc``, ``_ceil``, ``_floor``, ``_int``: the operators and functions with
  PostgreSQL's result scale (a product's scale is the sum of its factors', a quotient's
  has at least 16 significant digits) and errors (22012 on division by zero);
- aggregates (and window functions) ``aragora_numeric_sum`` and ``aragora_numeric_avg``:
  exact sums, and ``avg`` as ``sum / count`` with PostgreSQL's division scale; ``avg`` of
  integers is numeric there too; ``aragora_numeric_min``/``_max`` (aggregates) and
  ``..._min_over``/``_max_over`` (window functions).
"""

from __future__ import annotations

import decimal
import math
import sqlite3
from collections import Counter, deque
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from aragora_repos.codec import encode_numeric
from aragora_repos.errors import DataError, from_sqlstate, keeping_errors

#: Exact arithmetic: enough precision for any value PostgreSQL's numeric holds, and
#: invalid operations (Infinity - Infinity) giving NaN as PostgreSQL gives it.
_EXACT = decimal.Context(
    prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[]
)
_NAN = Decimal("NaN")
_INF = Decimal("Infinity")
#: numeric.c: NUMERIC_MIN_SIG_DIGITS, DEC_DIGITS, NUMERIC_MAX_DISPLAY_SCALE.
_MIN_SIG_DIGITS = 16
_DEC_DIGITS = 4
_MAX_DISPLAY_SCALE = 1000
_INT_RANGE = {16: (-(2**15), 2**15 - 1), 32: (-(2**31), 2**31 - 1), 64: (-(2**63), 2**63 - 1)}
_INT_NAMES = {16: "smallint", 32: "integer", 64: "bigint"}
_SPECIAL = {"nan": _NAN, "infinity": _INF, "+infinity": _INF, "-infinity": -_INF}
_SPECIAL.update({"inf": _INF, "+inf": _INF, "-inf": -_INF})


def parse(value: object) -> Decimal:
    """A stored or bound value as a Decimal: text as PostgreSQL's numeric input reads it,
    an integer exactly, a float as ``float8::numeric`` does (15 significant digits)."""
    if isinstance(value, str):
        text = value.strip()
        special = _SPECIAL.get(text.lower())
        if special is not None:
            return special
        if text.isascii() and "_" not in text:
            try:
                number = Decimal(text)
            except decimal.InvalidOperation:
                pass
            else:
                if number.is_finite():
                    return number
        raise DataError(f'invalid input syntax for type numeric: "{value}"', sqlstate="22P02")
    if isinstance(value, bool):
        raise DataError("cannot cast boolean to numeric", sqlstate="42846")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if math.isnan(value):
            return _NAN
        if math.isinf(value):
            return _INF if value > 0 else -_INF
        return Decimal(format(value, ".15g"))
    if isinstance(value, Decimal):
        return value if not value.is_snan() else _NAN
    raise DataError(f"cannot read {type(value).__name__} as numeric", sqlstate="22P02")


#: PostgreSQL's output form (plain digits with the display scale, no negative zero): the
#: same text the generated code stores for a numeric parameter.
text = encode_numeric


def scale(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _maybe(value: object) -> Decimal | None:
    return None if value is None else parse(value)


def _result(number: Decimal | None) -> str | None:
    return None if number is None else text(number)


def canonical(value: object, precision: int | None = None, places: int | None = None) -> str | None:
    """``aragora_numeric(x[, p, s])``: ``x::numeric`` or ``x::numeric(p, s)``."""
    number = _maybe(value)
    if number is None:
        return None
    if precision is not None:
        number = typmod(number, precision, places or 0)
    return text(number)


def typmod(number: Decimal, precision: int, places: int) -> Decimal:
    """Round to ``numeric(precision, places)`` as PostgreSQL's input does; 22003 when the
    value has more integer digits than the type allows."""
    if number.is_nan():
        return number
    if number.is_infinite():
        raise DataError(
            f"numeric field overflow: a field with precision {precision}, scale {places} "
            "cannot hold an infinite value",
            sqlstate="22003",
        )
    rounded = number.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP, _EXACT)
    if not rounded.is_zero() and rounded.adjusted() >= precision - places:
        raise DataError(
            f"numeric field overflow: a field with precision {precision}, scale {places} "
            f"must round to an absolute value less than 10^{precision - places}",
            sqlstate="22003",
        )
    return rounded


def compare(a: str, b: str) -> int:
    """The ``aragora_numeric`` collation: numeric order, NaN last and equal to NaN. Text
    that is not a number (written by another tool) sorts after every number, as text."""
    x, y = _number_or_none(a), _number_or_none(b)
    if x is not None and y is not None:
        return _order(x, y)
    if x is not None or y is not None:
        return -1 if x is not None else 1
    return (a > b) - (a < b)


def _number_or_none(value: str) -> Decimal | None:
    try:
        return parse(value)
    except DataError:
        return None


def _binary(
    operation: Callable[[Decimal, Decimal], Decimal],
) -> Callable[[object, object], str | None]:
    def apply(a: object, b: object) -> str | None:
        x, y = _maybe(a), _maybe(b)
        if x is None or y is None:
            return None
        return text(operation(x, y))

    return apply


def _div(x: Decimal, y: Decimal) -> Decimal:
    if x.is_nan() or y.is_nan():
        return _NAN
    if y.is_zero():
        raise DataError("division by zero", sqlstate="22012")
    if x.is_infinite():
        return _NAN if y.is_infinite() else (x if y > 0 else -x)
    if y.is_infinite():
        return Decimal(0)
    places = _division_scale(x, y)
    quotient = Fraction(x) / Fraction(y) * 10**places
    whole, rest = divmod(abs(quotient.numerator), quotient.denominator)
    if 2 * rest >= quotient.denominator:
        whole += 1
    signed = whole if quotient >= 0 else -whole
    return Decimal(signed).scaleb(-places, _EXACT)


def _weight(number: Decimal) -> tuple[int, int]:
    """numeric.c's weight (in base-10000 digits) and first base-10000 digit of a value."""
    if number.is_zero():
        return 0, 0
    weight = number.adjusted() // _DEC_DIGITS
    first = int(abs(number).scaleb(-_DEC_DIGITS * weight, _EXACT))
    return weight, first


def _division_scale(x: Decimal, y: Decimal) -> int:
    """numeric.c's select_div_scale: at least 16 significant digits, and no fewer places
    than either operand's display scale."""
    weight1, first1 = _weight(x)
    weight2, first2 = _weight(y)
    qweight = weight1 - weight2
    if first1 <= first2:
        qweight -= 1
    places = _MIN_SIG_DIGITS - qweight * _DEC_DIGITS
    places = max(places, scale(x), scale(y), 0)
    return min(places, _MAX_DISPLAY_SCALE)


def _mod(x: Decimal, y: Decimal) -> Decimal:
    if x.is_nan() or y.is_nan():
        return _NAN
    if y.is_zero():
        raise DataError("division by zero", sqlstate="22012")
    if x.is_infinite():
        return _NAN
    if y.is_infinite():
        return x
    return _EXACT.remainder(x, y)  # truncated: the sign of the dividend, as PostgreSQL


def neg(a: object) -> str | None:
    x = _maybe(a)
    return None if x is None else text(_EXACT.minus(x) if not x.is_nan() else x)


def absolute(a: object) -> str | None:
    x = _maybe(a)
    return None if x is None else text(x.copy_abs() if not x.is_nan() else x)


def _rounding(mode: str) -> Callable[..., str | None]:
    def apply(a: object, places: int | None = 0) -> str | None:
        x = _maybe(a)
        if x is None or places is None:
            return None
        if not x.is_finite():
            return text(x)
        digits = int(places)
        # round(x, -2) rounds to hundreds and prints them as digits (scale 0)
        return text(x.quantize(Decimal(1).scaleb(-digits), mode, _EXACT))

    return apply


def to_int(a: object, bits: int = 64) -> int | None:
    """``numeric::int2/int4/int8``: rounded half away from zero, 22003 out of range."""
    x = _maybe(a)
    if x is None:
        return None
    if not x.is_finite():
        if x.is_nan():
            raise from_sqlstate("0A000", f"cannot convert NaN to {_INT_NAMES[bits]}")
        raise from_sqlstate("0A000", f"cannot convert infinity to {_INT_NAMES[bits]}")
    value = int(x.quantize(Decimal(1), ROUND_HALF_UP, _EXACT))
    low, high = _INT_RANGE[bits]
    if not low <= value <= high:
        raise DataError(f"{_INT_NAMES[bits]} out of range", sqlstate="22003")
    return value


class Sum:
    """``sum(numeric)`` as an aggregate and as a window function (with removal): the
    exact sum, with the largest display scale among the values it holds, as numeric.c's
    accumulator keeps it; NULL over no values."""

    __slots__ = ("count", "nans", "ninf", "pinf", "scales", "total")

    def __init__(self) -> None:
        self.total = Decimal(0)
        self.count = 0
        self.nans = self.pinf = self.ninf = 0
        self.scales: Counter[int] = Counter()

    def _take(self, value: object, sign: int) -> None:
        if value is None:
            return
        x = parse(value)
        self.count += sign
        if x.is_nan():
            self.nans += sign
        elif x.is_infinite():
            if x > 0:
                self.pinf += sign
            else:
                self.ninf += sign
        else:
            self.total = _EXACT.add(self.total, x) if sign > 0 else _EXACT.subtract(self.total, x)
            self.scales[scale(x)] += sign

    def step(self, value: object) -> None:
        self._take(value, 1)

    def inverse(self, value: object) -> None:
        self._take(value, -1)

    def _sum(self) -> Decimal | None:
        if self.count <= 0:
            return None
        if self.nans or (self.pinf and self.ninf):
            return _NAN
        if self.pinf:
            return _INF
        if self.ninf:
            return -_INF
        places = max((s for s, n in self.scales.items() if n > 0), default=0)
        return self.total.quantize(Decimal(1).scaleb(-places), context=_EXACT)

    def value(self) -> str | None:
        return _result(self._sum())

    def finalize(self) -> str | None:
        return self.value()


class Extreme:
    """``max`` of numeric as an aggregate: numeric order, and of equal values (``1`` and
    ``1.0``) the one seen last, as numeric.c's numeric_larger keeps it. Holds one value."""

    __slots__ = ("best",)
    sign = 1

    def __init__(self) -> None:
        self.best: Decimal | None = None

    def step(self, value: object) -> None:
        if value is not None:
            x = parse(value)
            if self.best is None or _order(x, self.best) * self.sign >= 0:
                self.best = x

    def finalize(self) -> str | None:
        return _result(self.best)


class Least(Extreme):
    """``min`` of numeric (numeric_smaller: of equal values, the last seen)."""

    __slots__ = ()
    sign = -1


class ExtremeOver:
    """``max`` of numeric as a window function: the frame's values, for removal."""

    __slots__ = ("values",)
    sign = 1

    def __init__(self) -> None:
        self.values: deque[Decimal] = deque()

    def step(self, value: object) -> None:
        if value is not None:
            self.values.append(parse(value))

    def inverse(self, value: object) -> None:
        if value is not None:
            self.values.popleft()

    def value(self) -> str | None:
        best: Decimal | None = None
        for x in self.values:
            if best is None or _order(x, best) * self.sign >= 0:
                best = x
        return _result(best)

    def finalize(self) -> str | None:
        return self.value()


class LeastOver(ExtremeOver):
    __slots__ = ()
    sign = -1


def _order(x: Decimal, y: Decimal) -> int:
    if x.is_nan() or y.is_nan():
        return int(not y.is_nan()) - int(not x.is_nan())
    return (x > y) - (x < y)


class Avg(Sum):
    """``avg(numeric)`` and ``avg`` of integers: ``sum / count`` by numeric division."""

    __slots__ = ()

    def value(self) -> str | None:
        total = self._sum()
        return None if total is None else text(_div(total, Decimal(self.count)))


def _kept(cls: type[Any]) -> type[Any]:
    """``cls`` with its steps wrapped by :func:`keeping_errors`."""
    methods = {m: keeping_errors(getattr(cls, m)) for m in ("step", "inverse") if hasattr(cls, m)}
    return type(cls.__name__, (cls,), {"__slots__": (), **methods})


_PLAIN: dict[str, tuple[Callable[..., Any], tuple[int, ...]]] = {
    "aragora_numeric": (canonical, (1, 3)),
    "aragora_numeric_add": (_binary(_EXACT.add), (2,)),
    "aragora_numeric_sub": (_binary(_EXACT.subtract), (2,)),
    "aragora_numeric_mul": (_binary(_EXACT.multiply), (2,)),
    "aragora_numeric_div": (_binary(_div), (2,)),
    "aragora_numeric_mod": (_binary(_mod), (2,)),
    "aragora_numeric_neg": (neg, (1,)),
    "aragora_numeric_abs": (absolute, (1,)),
    "aragora_numeric_round": (_rounding(ROUND_HALF_UP), (1, 2)),
    "aragora_numeric_trunc": (_rounding(ROUND_DOWN), (1, 2)),
    "aragora_numeric_ceil": (_rounding(ROUND_CEILING), (1,)),
    "aragora_numeric_floor": (_rounding(ROUND_FLOOR), (1,)),
    "aragora_numeric_int": (to_int, (1, 2)),
}
_FUNCTIONS = {name: (keeping_errors(fn), arities) for name, (fn, arities) in _PLAIN.items()}
#: Aggregates (min and max keep one value) and window functions (sum and avg remove a
#: value from their running sums; min and max over a window keep the frame).
_AGGREGATES = {"aragora_numeric_min": _kept(Least), "aragora_numeric_max": _kept(Extreme)}
_WINDOW_FUNCTIONS = {
    "aragora_numeric_sum": _kept(Sum),
    "aragora_numeric_avg": _kept(Avg),
    "aragora_numeric_min_over": _kept(LeastOver),
    "aragora_numeric_max_over": _kept(ExtremeOver),
}


def install(conn: sqlite3.Connection) -> None:
    """Register the collation, functions and aggregates on ``conn``; each keeps its own
    error for :func:`aragora_repos.errors.from_sqlite`."""
    conn.create_collation("aragora_numeric", compare)
    for name, (fn, arities) in _FUNCTIONS.items():
        for arity in arities:
            conn.create_function(name, arity, fn, deterministic=True)
    for name, cls in _AGGREGATES.items():
        conn.create_aggregate(name, 1, cls)
    for name, cls in _WINDOW_FUNCTIONS.items():
        conn.create_window_function(name, 1, cls)
