"""PostgreSQL -> SQLite translation: named, pure rewrite rules over sqlglot trees.

sqlglot's own PostgreSQL -> SQLite output is the base; each rule below fixes one place
where that output would change the meaning of the statement on SQLite (verified on
SQLite 3.40). A construct no rule can carry faithfully raises :class:`Untranslatable`,
which the pipeline reports with file, line and column; nothing is silently changed.

Runtime contract (set on every connection by ``aragora_repos``, and by the verifier):
``PRAGMA case_sensitive_like = ON`` so ``LIKE`` is case-sensitive as in PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import sqlglot
from sqlglot import exp

from aragora_repos.codec import encode_numeric

from ..model import types
from ..model.ir import PgType, TranslationHints
from ..model.nodes import param_number

#: SQLite's ``now()``: the canonical UTC text form (see codegen.model.types), from the
#: runtime's clock (SQLite's own has milliseconds only, sqlite.org/lang_datefunc.html).
NOW_SQL = "aragora_now()"
#: Length of naive timestamp text, ``YYYY-MM-DD HH:MM:SS.ffffff``.
NAIVE_LENGTH = 26
_NOW_ALIASES = frozenset({"now", "transaction_timestamp", "statement_timestamp"})


#: SQLite's own clock in the canonical forms: milliseconds, padded to microseconds.
_PORTABLE_NOW = {
    False: "%Y-%m-%d %H:%M:%f000+00:00",
    True: "%Y-%m-%d %H:%M:%f000",
}


def portable_default(node: exp.Expr, type_name: str) -> exp.Expr:
    """A column DEFAULT for a column of ``type_name``: ``now()``, ``CURRENT_TIMESTAMP`` and
    ``LOCALTIMESTAMP`` through SQLite's own clock in the column's form, so any SQLite tool
    can insert a row into a project database (queries use the runtime's clock instead:
    microseconds, one value per transaction); a timestamp literal in its canonical form."""
    naive = type_name == "timestamp"
    if type_name in ("timestamp", "timestamptz"):
        literal = _strip_casts(node)
        if isinstance(literal, exp.Literal) and literal.is_string:
            return _convert_literal(literal.this, type_name)

    def fix(n: exp.Expr) -> exp.Expr:
        if isinstance(n, exp.CurrentTimestamp | exp.Localtimestamp):
            form = _PORTABLE_NOW[naive or isinstance(n, exp.Localtimestamp)]
            return exp.Anonymous(
                this="strftime",
                expressions=[exp.Literal.string(form), exp.Literal.string("now")],
            )
        if isinstance(n, exp.CurrentDate):
            return exp.Anonymous(this="date", expressions=[exp.Literal.string("now")])
        return n

    return node.copy().transform(fix)


def _now() -> exp.Expr:
    return exp.Anonymous(this="aragora_now", expressions=[])


def _naive(node: exp.Expr) -> exp.Expr:
    """Timestamptz text as naive timestamp text (the UTC wall clock, as PostgreSQL's
    ``::timestamp`` gives it in a UTC session)."""
    if isinstance(node, exp.Substring) and node.args.get("length") == exp.Literal.number(
        NAIVE_LENGTH
    ):
        return node  # already naive
    return exp.func("substr", node, exp.Literal.number(1), exp.Literal.number(NAIVE_LENGTH))


class Untranslatable(Exception):
    """A construct that has no faithful SQLite form; ``construct`` names it in the source."""

    def __init__(self, construct: str, reason: str) -> None:
        self.construct = construct
        self.reason = reason
        super().__init__(f"cannot translate {construct} to sqlite: {reason}")


class Refused(Untranslatable):
    """A construct refused on both dialects (no translation problem: a marker or a use the
    project does not allow); the message is ``<construct>: <reason>``."""

    def __init__(self, construct: str, reason: str) -> None:
        super().__init__(construct, reason)
        self.args = (f"{construct}: {reason}",)


#: What rules may consult about the statement being translated (built with the query).
Context = TranslationHints
NO_HINTS = Context()


Rule = Callable[[exp.Expr, Context], exp.Expr]


def type_of(dt: exp.DataType) -> PgType:
    """Resolve a sqlglot data type to a :class:`PgType` (base name + array depth)."""
    dims = 0
    while dt.is_type(exp.DType.ARRAY) and dt.expressions:
        inner = dt.expressions[0]
        assert isinstance(inner, exp.DataType)
        dt = inner
        dims += 1
    text = dt.sql("postgres")
    while text.endswith("[]"):
        text = text[:-2]
        dims += 1
    return PgType(types.normalize(text), dims)


def _strip_casts(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    return node


# --- rules -----------------------------------------------------------------------------


def rewrite_list_membership(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """``x = ANY($1)`` and sqlc.slice's ``x IN ($1)`` -> ``x IN (SELECT value FROM json_each(?1))``.

    SQLite has no arrays; list parameters are bound as one JSON array text, so the
    statement text does not depend on the list's length and stays cached.
    """

    def json_each_in(this: exp.Expr, param: exp.Expr, negate: bool) -> exp.Expr:
        sub = exp.select("value").from_(exp.func("json_each", param.copy()))
        node: exp.Expr = exp.In(this=this.copy(), query=exp.Subquery(this=sub))
        return exp.Not(this=node) if negate else node

    def quantified(node: exp.Expr) -> tuple[str, exp.Expr] | None:
        """``ANY(x)`` / ``ALL(x)`` -> (kind, x); sqlglot parses ALL(...) as a plain call."""
        if isinstance(node, exp.Any):
            return "ANY", node.this
        if isinstance(node, exp.All):
            return "ALL", node.this
        if isinstance(node, exp.Anonymous) and str(node.this).upper() == "ALL":
            return "ALL", node.expressions[0]
        return None

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.EQ | exp.NEQ) and (q := quantified(node.expression)):
            kind, inner = q
            target = _strip_casts(inner)
            while isinstance(target, exp.Paren):
                target = _strip_casts(target.this)
            if isinstance(target, exp.Column) and (
                (isinstance(node, exp.EQ) and kind == "ANY")
                or (isinstance(node, exp.NEQ) and kind == "ALL")
            ):
                # An array column (JSON text on SQLite): its elements, and NULL for a NULL
                # array, as PostgreSQL answers x = ANY(NULL).
                member = json_each_in(node.this, target, negate=kind == "ALL")
                return exp.Case(
                    ifs=[
                        exp.If(
                            this=exp.Is(this=target.copy(), expression=exp.Null()), true=exp.Null()
                        )
                    ],
                    default=member,
                )
            if param_number(target) is None:
                raise Untranslatable(
                    kind,
                    "only = ANY(<parameter or array column>) and <> ALL(...) have a sqlite form",
                )
            if isinstance(node, exp.EQ) and kind == "ANY":
                return json_each_in(node.this, target, negate=False)
            if isinstance(node, exp.NEQ) and kind == "ALL":
                return json_each_in(node.this, target, negate=True)
            raise Untranslatable(
                kind, "only = ANY(<parameter>) and <> ALL(<parameter>) have a sqlite form"
            )
        if isinstance(node, exp.In) and len(node.expressions) == 1:
            n = param_number(node.expressions[0])
            if n is not None and n in ctx.list_params:
                return json_each_in(node.this, node.expressions[0], negate=False)
        return node

    return tree.transform(fix, copy=False)


#: Target types whose SQLite storage is the already-encoded parameter or column value.
_CAST_DROP = frozenset(
    {"json", "jsonb", "uuid", "timestamptz", "timestamp", "date", "time", "bool", "interval"}
)
_CAST_TO = {
    "text": "TEXT",
    "int2": "INTEGER",
    "int4": "INTEGER",
    "int8": "INTEGER",
    "float4": "REAL",
    "float8": "REAL",
}


def rewrite_casts(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """Map ``::type`` casts onto SQLite storage.

    ``CAST(x AS JSONB)`` on SQLite yields the integer 0 (JSONB gets NUMERIC affinity,
    sqlite.org/datatype3.html §3.1), so JSON, uuid, timestamp, enum and array casts are
    dropped: the value is already in its storage form. Literals are converted here.
    """

    def fix(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, exp.Cast):
            return node
        target = type_of(node.to)
        # The operand first: the cast replaces this node, and transform() does not visit
        # a replaced node's operands ((x::timestamp)::text).
        inner: exp.Expr = node.this.transform(fix, copy=False)
        if target.array_dims:
            if isinstance(inner, exp.Literal) and inner.is_string:
                return exp.Literal.string(array_literal(inner.this))
            return inner
        name = target.name
        if isinstance(inner, exp.Literal) and inner.is_string and name != "numeric":
            return _convert_literal(inner.this, name)
        if param_number(inner) is not None and name in ("timestamp", "timestamptz"):
            return inner  # the runtime encodes a parameter in its declared type's form
        if name == "timestamp":
            if isinstance(inner, exp.Localtimestamp):
                return inner  # naive already
            return _naive(inner)  # the stored UTC text without its zone
        if name == "timestamptz":
            # naive text is taken as UTC (the session zone), as PostgreSQL takes it
            length = exp.func("length", inner.copy())
            return exp.Case(
                ifs=[
                    exp.If(
                        this=exp.EQ(this=length, expression=exp.Literal.number(NAIVE_LENGTH)),
                        true=exp.DPipe(this=inner.copy(), expression=exp.Literal.string("+00:00")),
                    )
                ],
                default=inner,
            )
        if name in _CAST_TO:
            return exp.Cast(this=inner, to=exp.DataType.build(_CAST_TO[name]))
        if name == "numeric":
            # the runtime's canonical numeric text, rounded to numeric(p, s) when given
            params = [p.this for p in node.to.expressions if isinstance(p, exp.DataTypeParam)]
            args = [inner, *(exp.Literal.number(int(str(p.this))) for p in params)]
            if len(args) == 2:
                args.append(exp.Literal.number(0))
            return exp.Anonymous(this="aragora_numeric", expressions=args)
        if name in _CAST_DROP or name not in types.BUILTIN:
            return inner  # enums and storage-identical types
        raise Untranslatable(f"::{name}", f"{name} is stored as text on sqlite; no exact cast")

    return tree.transform(fix, copy=False)


def array_literal(text: str) -> str:
    if text.strip() == "{}":
        return "[]"
    raise Untranslatable(f"'{text}'", "only the empty array literal '{}' has a sqlite form")


def _convert_literal(text: str, name: str) -> exp.Expr:
    if name in ("json", "jsonb"):
        try:
            json.loads(text)
        except ValueError as exc:
            raise Untranslatable(f"'{text}'::{name}", "invalid json literal") from exc
        return exp.Literal.string(text)
    if name == "timestamptz":
        value = datetime.fromisoformat(text)
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return exp.Literal.string(value.astimezone(UTC).isoformat(" ", "microseconds"))
    if name == "timestamp":
        # PostgreSQL ignores a zone in a timestamp literal.
        value = datetime.fromisoformat(text).replace(tzinfo=None)
        return exp.Literal.string(value.isoformat(" ", "microseconds"))
    if name == "bool":
        lowered = text.strip().lower()
        if lowered in ("t", "true", "yes", "on", "1"):
            return exp.Literal.number(1)
        if lowered in ("f", "false", "no", "off", "0"):
            return exp.Literal.number(0)
        raise Untranslatable(f"'{text}'::boolean", "not a boolean literal")
    if name in _CAST_TO:
        return exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build(_CAST_TO[name]))
    return exp.Literal.string(text)


_UNIT_SECONDS = {
    "microsecond": 0.000001,
    "millisecond": 0.001,
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 604800,
}
_UNIT_MONTHS = {"month": 1, "year": 12}


def _unit(raw: str) -> str:
    unit = raw.lower().rstrip("s")
    if unit not in _UNIT_SECONDS and unit not in _UNIT_MONTHS:
        raise Untranslatable(f"interval unit {raw!r}", "supported: microseconds .. years")
    return unit


def _interval_parts(node: exp.Interval) -> list[tuple[float, str]]:
    """``INTERVAL '2 hours 30 minutes'`` -> [(2, 'hour'), (30, 'minute')]."""
    text = str(node.this.this if isinstance(node.this, exp.Literal) else node.this.sql())
    if node.unit is not None:
        text = f"{text} {node.unit.name}"
    tokens = text.split()
    if len(tokens) % 2:
        raise Untranslatable(f"interval '{text}'", "expected '<number> <unit>' pairs")
    parts = []
    for amount, unit in zip(tokens[::2], tokens[1::2], strict=True):
        try:
            parts.append((float(amount), _unit(unit)))
        except ValueError as exc:
            raise Untranslatable(f"interval '{text}'", "expected a number") from exc
    return parts


def _seconds(interval: exp.Expr, sign: int) -> exp.Expr:
    """The number of seconds of ``sign * interval``, as a SQL number expression."""
    factor: exp.Expr | None = None
    node = interval
    if isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Mul):
        if isinstance(node.expression, exp.Interval):
            factor, node = node.this, node.expression
        elif isinstance(node.this, exp.Interval):
            factor, node = node.expression, node.this
    if not isinstance(node, exp.Interval):
        raise Untranslatable("interval expression", "use <timestamp> ± [<number> *] interval")
    total = 0.0
    for amount, unit in _interval_parts(node):
        if unit in _UNIT_MONTHS:
            # Jan 31 + 1 month: PostgreSQL clamps to Feb 29; no fixed number of seconds
            # keeps that meaning.
            raise Untranslatable(
                f"interval '{node.this.name if isinstance(node.this, exp.Literal) else unit}'",
                "month and year intervals clamp the day on PostgreSQL but overflow it on "
                "sqlite; use days, or a sqlite variant",
            )
        total += amount * _UNIT_SECONDS[unit] * sign
    number = exp.Literal.number(repr(total) if total != int(total) else int(total))
    if factor is None:
        return number
    return exp.Mul(this=exp.Paren(this=factor.copy()), expression=number)


def rewrite_interval_arithmetic(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """``ts ± interval`` -> ``aragora_ts_add(ts, <seconds>)``.

    SQLite has no interval type, and its date functions round to milliseconds; the
    runtime's ``aragora_ts_add`` (:mod:`aragora_repos.backends.sqlite.functions`) adds
    exactly, to the microsecond, and keeps ``ts``'s form (naive stays naive).
    """

    def has_interval(node: exp.Expr) -> bool:
        return any(True for _ in node.find_all(exp.Interval))

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Add | exp.Sub) and (
            has_interval(node.expression) or has_interval(node.this)
        ):
            left, right = node.this, node.expression
            if isinstance(node, exp.Add) and has_interval(left) and not has_interval(right):
                left, right = right, left
            if has_interval(left):
                raise Untranslatable("interval arithmetic", "only timestamp ± interval")
            sign = -1 if isinstance(node, exp.Sub) else 1
            base = _now() if isinstance(left, exp.CurrentTimestamp) else left
            return exp.func("aragora_ts_add", base, _seconds(right, sign))
        return node

    out = tree.transform(fix, copy=False)
    leftover = next(out.find_all(exp.Interval), None)
    if leftover is not None:
        raise Untranslatable(
            "interval", "only <timestamp> ± [<number> *] interval has a sqlite form"
        )
    return out


def rewrite_now(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """``now()``, ``CURRENT_TIMESTAMP``, ``transaction_timestamp()`` -> ``aragora_now()``:
    the canonical UTC text with microseconds, one value per transaction, as PostgreSQL's
    (:mod:`aragora_repos.backends.sqlite.functions`); ``LOCALTIMESTAMP`` -> its naive form
    (sessions are pinned to UTC); ``CURRENT_DATE`` -> its date."""

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.CurrentTimestamp):
            return _now()
        if isinstance(node, exp.Localtimestamp):
            return _naive(_now())
        if isinstance(node, exp.CurrentDate):
            return exp.func("substr", _now(), exp.Literal.number(1), exp.Literal.number(10))
        if isinstance(node, exp.Anonymous) and node.name.lower() in _NOW_ALIASES:
            return _now()
        return node

    return tree.transform(fix, copy=False)


#: date_trunc units with a fixed floor (weeks and quarters are refused).
_TRUNC_UNITS = ("YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND")


def rewrite_date_trunc(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """``date_trunc('month', ts)`` -> ``aragora_date_trunc('month', ts)``, in ts's form.

    PostgreSQL truncates timestamptz in the session time zone; the runtime pins sessions
    to UTC, which is the zone of the SQLite storage form. Weeks and quarters have no
    fixed floor here and are refused.
    """

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.TimestampTrunc | exp.DateTrunc):
            unit = node.args.get("unit")
            name = (unit.name if unit is not None else "").upper().rstrip("S")
            if name not in _TRUNC_UNITS:
                raise Untranslatable(
                    "date_trunc",
                    f"unit {name.lower() or '?'} is not one of "
                    + ", ".join(u.lower() for u in _TRUNC_UNITS),
                )
            return exp.func("aragora_date_trunc", exp.Literal.string(name.lower()), node.this)
        return node

    return tree.transform(fix, copy=False)


def rewrite_like(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """``LIKE`` / ``ILIKE`` -> ``aragora_like`` / ``aragora_ilike``: PostgreSQL's matcher,
    run by the runtime (:mod:`aragora_repos.backends.sqlite.functions`). SQLite's own LIKE
    differs where it matters: a pattern ending in the escape character is an error on
    PostgreSQL (where the match reaches it), and SQLite's ``lower()`` folds ASCII only, so
    ``ILIKE 'É%'`` missed ``école``."""

    def call(node: exp.Like | exp.ILike, escape: exp.Expr | None) -> exp.Expr:
        name = "aragora_ilike" if isinstance(node, exp.ILike) else "aragora_like"
        args = [node.this.copy(), node.expression.copy()]
        if escape is not None:
            args.append(escape.copy())
        matched: exp.Expr = exp.Anonymous(this=name, expressions=args)
        if node.args.get("negate"):
            matched = exp.Not(this=matched)  # NOT LIKE: NULL stays NULL, as on PostgreSQL
        return matched

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Escape) and isinstance(node.this, exp.Like | exp.ILike):
            return call(node.this, node.expression)
        if isinstance(node, exp.Like | exp.ILike) and not isinstance(node.parent, exp.Escape):
            return call(node, None)
        return node

    return tree.transform(fix, copy=False)


def rewrite_ordering(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """Keep PostgreSQL's NULL placement in ORDER BY (NULLs sort as larger than any value,
    queries.html §7.5); SQLite sorts them as smaller, so the placement is made explicit.
    Ordered terms elsewhere (index keys, ON CONFLICT targets) take no NULLS clause on SQLite."""

    enums = dict(ctx.enums)

    def fix(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, exp.Ordered):
            return node
        desc = bool(node.args.get("desc"))
        values = enums.get(node.this.name) if isinstance(node.this, exp.Column) else None
        if values is not None and isinstance(node.parent, exp.Order):
            # PostgreSQL sorts an enum by declaration order (datatype-enum.html §8.7.2);
            # SQLite stores the label as text, so the order is spelled out.
            case = exp.Case(
                this=node.this.copy(),
                ifs=[
                    exp.If(this=exp.Literal.string(v), true=exp.Literal.number(i))
                    for i, v in enumerate(values)
                ],
            )
            node.set("this", case)
        if isinstance(node.this, exp.Column) and node.this.name in ctx.not_null:
            # No NULLs to place: keep SQLite's default, which lets an index give the order
            # (an explicit NULLS clause that differs from it forces a temp B-tree sort).
            node.set("nulls_first", not desc)
            return node
        if isinstance(node.parent, exp.Order):
            nulls_first = node.args.get("nulls_first")
            if nulls_first is None:
                nulls_first = desc
            node.set("nulls_first", bool(nulls_first))
            return node
        # SQLite's own default placement, so the generator prints no NULLS clause.
        node.set("nulls_first", not desc)
        return node

    return tree.transform(fix, copy=False)


def refuse_json_equality(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """jsonb equality compares values (key order and spacing ignored, datatype-json.html
    §8.14.4); SQLite would compare the stored text, so the comparison is refused."""
    json_columns = set(ctx.json_columns)

    def is_json(node: exp.Expr) -> bool:
        if isinstance(node, exp.Cast):
            return node.to.this in (exp.DType.JSON, exp.DType.JSONB)
        return isinstance(node, exp.Column) and node.name in json_columns

    for node in tree.find_all(exp.EQ, exp.NEQ):
        if isinstance(node.parent, exp.Update | exp.OnConflict):
            continue  # SET col = value is an assignment, not a comparison
        if is_json(node.this) or is_json(node.expression):
            raise Untranslatable(
                node.sql("postgres"),
                "jsonb equality ignores key order; sqlite would compare text "
                "(write a sqlite variant)",
            )
    return tree


def rewrite_placeholders(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """``$1`` -> ``?1``: SQLite's numbered parameters, which may repeat (lang_expr.html §4)."""

    def fix(node: exp.Expr) -> exp.Expr:
        n = param_number(node)
        return exp.Var(this=f"?{n}") if n is not None else node

    return tree.transform(fix, copy=False)


def rewrite_booleans(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """TRUE/FALSE -> 1/0: SQLite stores booleans as integers (datatype3.html §2.1)."""

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Boolean):
            return exp.Literal.number(1 if node.this else 0)
        return node

    return tree.transform(fix, copy=False)


_CONTAINMENT: dict[type[exp.Expr], tuple[str, bool]] = {
    exp.ArrayContainsAll: ("contains", False),  # a @> b
    exp.ArrayContainedBy: ("contains", True),  # a <@ b is b @> a
    exp.ArrayOverlaps: ("overlaps", False),  # a && b
}
_KEY_TESTS: dict[type[exp.Expr], str] = {
    exp.JSONBContainsTopKey: "aragora_jsonb_exists",  # j ? key
    exp.JSONBContainsAnyTopKeys: "aragora_jsonb_exists_any",  # j ?| keys
    exp.JSONBContainsAllTopKeys: "aragora_jsonb_exists_all",  # j ?& keys
}


def rewrite_containers(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """Array and jsonb containment, overlap and key tests (``@>``, ``<@``, ``&&``, ``?``,
    ``?|``, ``?&``), and ``extract()``/``date_part()``, through the runtime's functions
    (:mod:`aragora_repos.backends.sqlite.containers`), which answer as PostgreSQL's
    operators do on SQLite's storage forms. An operand is jsonb when it is a json(b)
    column or cast; otherwise it is an array."""
    json_columns = ctx.json_columns

    def is_json(node: exp.Expr) -> bool:
        while isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.Cast):
            return type_of(node.to) in (PgType("json"), PgType("jsonb"))
        return isinstance(node, exp.Column) and node.name in json_columns

    def sub(node: exp.Expr) -> exp.Expr:
        return node.transform(fix, copy=False)

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, tuple(_CONTAINMENT)):
            operation, swap = _CONTAINMENT[type(node)]
            left, right = sub(node.this), sub(node.expression)
            if swap:
                left, right = right, left
            jsonb = is_json(node.this) or is_json(node.expression)
            if jsonb and operation == "overlaps":
                raise Untranslatable("&&", "jsonb has no && operator")
            kind = "jsonb" if jsonb else "array"
            return exp.Anonymous(this=f"aragora_{kind}_{operation}", expressions=[left, right])
        if isinstance(node, tuple(_KEY_TESTS)):
            return exp.Anonymous(
                this=_KEY_TESTS[type(node)], expressions=[sub(node.this), sub(node.expression)]
            )
        if isinstance(node, exp.Array):
            # ARRAY[a, b]: JSON array text, the arrays' storage form on SQLite
            return exp.Anonymous(this="json_array", expressions=[sub(e) for e in node.expressions])
        if isinstance(node, exp.Extract):
            field = node.this
            name = field.name if isinstance(field, exp.Var | exp.Identifier | exp.Column) else None
            if isinstance(field, exp.Literal) and field.is_string:
                name = field.this
            if not name:
                raise Untranslatable("extract", "the field must be named in the statement")
            return exp.Anonymous(
                this="aragora_extract",
                expressions=[exp.Literal.string(name.lower()), sub(node.expression)],
            )
        return node

    return tree.transform(fix, copy=False)


def _json_each(array: exp.Expr, alias: str) -> exp.Table:
    return exp.Table(
        this=exp.Anonymous(this="json_each", expressions=[array]),
        alias=exp.TableAlias(this=exp.to_identifier(alias)),
    )


def _zipped(arrays: list[exp.Expr], names: list[str], ordinality: str | None) -> exp.Select:
    """``unnest(a1, ..., an)``: the arrays' elements side by side, the shorter ones padded
    with NULL (as PostgreSQL zips them), in element order; ``ordinality`` numbers them."""
    keys = [exp.column("key", table=f"_u{i}") for i in range(len(arrays))]
    key: exp.Expr = keys[0] if len(keys) == 1 else exp.Coalesce(this=keys[0], expressions=keys[1:])
    items: list[exp.Expr] = [
        exp.alias_(exp.column("value", table=f"_u{i}"), name, quoted=True)
        for i, name in enumerate(names)
    ]
    if ordinality is not None:
        items.append(exp.alias_(exp.Add(this=key, expression=exp.Literal.number(1)), ordinality))
    select = exp.select(*items).from_(_json_each(arrays[0], "_u0"))
    for i in range(1, len(arrays)):
        joined = keys[0] if i == 1 else exp.Coalesce(this=keys[0], expressions=keys[1:i])
        select = select.join(
            _json_each(arrays[i], f"_u{i}"),
            on=exp.EQ(this=keys[i].copy(), expression=joined.copy()),
            join_type="FULL",
        )
    return select.order_by(key.copy())


def rewrite_unnest(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """``unnest()`` over arrays (JSON text on SQLite) -> ``json_each``: in FROM or a join
    (``unnest($1::bigint[]) AS u(id)``, several arrays zipped, ``WITH ORDINALITY``), and as
    the whole select list of a SELECT without FROM (``INSERT ... SELECT unnest($1),
    unnest($2)``, sqlc's bulk insert)."""

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Unnest):
            alias = node.args.get("alias")
            table = alias.name if alias is not None and alias.name else "unnest"
            columns = [c.name for c in alias.columns] if alias is not None else []
            arrays = list(node.expressions)
            offset = node.args.get("offset")
            ordinality = None
            if offset:
                ordinality = offset.name if isinstance(offset, exp.Identifier) else "ordinality"
                if len(columns) == len(arrays) + 1:
                    ordinality = columns.pop()
            if not columns:
                columns = [table] if len(arrays) == 1 else ["unnest"] * len(arrays)
            if len(columns) != len(arrays):
                raise Untranslatable("unnest", "name one column per array")
            return exp.alias_(
                exp.Subquery(this=_zipped(arrays, columns, ordinality)), table, table=True
            )
        if isinstance(node, exp.Select) and any(
            isinstance(e.unalias(), exp.Explode) for e in node.expressions
        ):
            if node.args.get("from_") is not None or not all(
                isinstance(e.unalias(), exp.Explode) for e in node.expressions
            ):
                raise Untranslatable(
                    "unnest() in a select list",
                    "only a select list of unnest() calls and no FROM has a sqlite form; "
                    "write FROM unnest(...) AS u(col) instead",
                )
            arrays = [e.unalias().this for e in node.expressions]
            names = [e.alias if isinstance(e, exp.Alias) else "unnest" for e in node.expressions]
            zipped = _zipped(arrays, names, None)
            for key in ("where", "order", "limit", "offset", "group", "having"):
                if node.args.get(key) is not None and key != "order":
                    zipped.set(key, node.args[key])
            if node.args.get("order") is not None:
                zipped.set("order", node.args["order"])
            return zipped
        return node

    return tree.transform(fix, copy=False)


#: The numeric operators, and the runtime function computing each on numeric text.
_NUMERIC_OPS: dict[type[exp.Expr], str] = {
    exp.Add: "aragora_numeric_add",
    exp.Sub: "aragora_numeric_sub",
    exp.Mul: "aragora_numeric_mul",
    exp.Div: "aragora_numeric_div",
    exp.Mod: "aragora_numeric_mod",
}
_NUMERIC_UNARY: dict[type[exp.Expr], str] = {
    exp.Neg: "aragora_numeric_neg",
    exp.Abs: "aragora_numeric_abs",
    exp.Round: "aragora_numeric_round",
    exp.Trunc: "aragora_numeric_trunc",
    exp.Ceil: "aragora_numeric_ceil",
    exp.Floor: "aragora_numeric_floor",
}
_COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.NullSafeEQ, exp.NullSafeNEQ)
_INT_BITS = {"int2": 16, "int4": 32, "int8": 64}
_FLOAT_TYPES = frozenset({"float4", "float8"})
NUMERIC_COLLATION = "aragora_numeric"


class _NumericTypes:
    """Which expressions of one statement are numeric, integer or float, as PostgreSQL
    types them (columns from the catalog, casts, literals, operators, aggregates)."""

    def __init__(self, tree: exp.Expr, ctx: Context) -> None:
        self.ctx = ctx
        self.aliases: dict[str, exp.Expr] = {}
        for select in tree.find_all(exp.Select):
            for item in select.expressions:
                if isinstance(item, exp.Alias):
                    self.aliases.setdefault(item.alias, item.this)

    def kind(self, node: exp.Expr, depth: int = 0) -> str | None:
        """ "numeric", "int", "float" or None (another type, or not known)."""
        while isinstance(node, exp.Paren | exp.Alias | exp.Collate):
            node = node.this
        if isinstance(node, exp.Column):
            name = node.name
            if name in self.ctx.numeric_columns:
                return "numeric"
            if name in self.ctx.integer_columns:
                return "int"
            if name in self.ctx.float_columns:
                return "float"
            alias = self.aliases.get(name)
            if alias is not None and not node.table and depth < 8:
                return self.kind(alias, depth + 1)
            return None
        if isinstance(node, exp.Cast):
            target = type_of(node.to)
            if target.array_dims:
                return None
            if target.name == "numeric":
                return "numeric"
            if target.name in _INT_BITS:
                return "int"
            if target.name in _FLOAT_TYPES:
                return "float"
            return None
        if isinstance(node, exp.Literal) and not node.is_string:
            number = str(node.this)
            # A decimal literal is numeric unless the other operand makes it float.
            return "literal" if any(c in number for c in ".eE") else "int"
        if isinstance(node, exp.Anonymous) and node.name.startswith(
            ("aragora_numeric", "aragora_extract")
        ):
            return "int" if node.name == "aragora_numeric_int" else "numeric"
        if isinstance(node, exp.Count):
            return "int"
        if isinstance(node, tuple(_NUMERIC_OPS)):
            return _combined(
                {self.kind(node.this, depth + 1), self.kind(node.expression, depth + 1)}
            )
        if isinstance(node, exp.Avg):
            inner = self.kind(node.this, depth + 1)
            return "numeric" if inner in ("numeric", "int", "literal") else inner
        if isinstance(node, exp.Sum | exp.Min | exp.Max | exp.Neg | exp.Abs):
            return self.kind(node.this, depth + 1)
        if isinstance(node, exp.Round | exp.Trunc | exp.Ceil | exp.Floor):
            inner = self.kind(node.this, depth + 1)
            return "numeric" if inner == "numeric" else None
        if isinstance(node, exp.Coalesce | exp.Case):
            parts = (
                [node.this, *node.expressions]
                if isinstance(node, exp.Coalesce)
                else [
                    *(i.args.get("true") for i in node.args.get("ifs") or ()),
                    node.args.get("default"),
                ]
            )
            kinds = {self.kind(p, depth + 1) for p in parts if not isinstance(p, exp.Null | None)}
            return _combined(kinds)
        if isinstance(node, exp.Window):
            return self.kind(node.this, depth + 1)
        return None

    def numeric(self, node: exp.Expr) -> bool:
        return self.kind(node) == "numeric"


def _combined(kinds: set[str | None]) -> str | None:
    """The type PostgreSQL gives an operator's or a CASE's result from its operands'."""
    if "float" in kinds:
        return "float"
    if "numeric" in kinds:
        return "numeric"
    if None in kinds:
        return None
    return "numeric" if "literal" in kinds else ("int" if kinds == {"int"} else None)


def _numeric_text(node: exp.Expr, types_: _NumericTypes) -> exp.Expr:
    """``node`` as numeric text: a number literal as its canonical text (PostgreSQL reads
    ``1.10`` as numeric with two places), numeric values and NULL as they are, anything
    else through ``aragora_numeric()``."""
    bare = node
    while isinstance(bare, exp.Paren):
        bare = bare.this
    if isinstance(bare, exp.Literal) and not bare.is_string:
        return exp.Literal.string(encode_numeric(Decimal(str(bare.this))))
    if isinstance(bare, exp.Null) or types_.numeric(bare):
        return node
    return exp.Anonymous(this="aragora_numeric", expressions=[node])


def _collated(node: exp.Expr) -> exp.Expr:
    return exp.Collate(this=node, expression=exp.to_identifier(NUMERIC_COLLATION))


def rewrite_numeric(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """``numeric`` is exact decimal text on SQLite (``12.50``), which SQLite would compare
    as text (``'9.99' > '10.00'``, ``'12.5' <> '12.50'``) and compute with as a float
    (``0.1 + 0.2``). Where PostgreSQL computes with numeric, the statement uses the
    runtime's numeric support instead (:mod:`aragora_repos.backends.sqlite.numeric`):

    - comparisons, ``IN``, ``BETWEEN``, ``ORDER BY``, ``GROUP BY``, ``DISTINCT``, ``min``
      and ``max`` through the collation ``aragora_numeric`` (numeric order and equality);
    - ``+ - * / %``, unary minus, ``abs``, ``round``, ``trunc``, ``ceil``, ``floor`` and
      ``::int`` through exact functions with PostgreSQL's result scale;
    - ``sum`` and ``avg`` (and ``avg`` of integers, which is numeric there) through exact
      aggregates, also as window functions;
    - a value written to a ``numeric(p, s)`` column rounded to its scale, 22003 when it
      does not fit, as PostgreSQL's input does.
    """
    if not (ctx.numeric_columns or ctx.numeric_typmods) and not any(
        True for _ in tree.find_all(exp.Cast, exp.Literal, exp.Avg)
    ):
        return tree
    types_ = _NumericTypes(tree, ctx)
    typmods = {name: (p, s) for name, p, s in ctx.numeric_typmods}

    def sub(node: exp.Expr) -> exp.Expr:
        """A replaced node's operands (``transform`` does not visit a new node)."""
        return node.transform(fix, copy=False)

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, _COMPARISONS):
            if isinstance(node, exp.EQ) and isinstance(node.parent, exp.Update | exp.OnConflict):
                column = node.this
                if isinstance(column, exp.Column) and column.name in typmods:
                    p, s = typmods[column.name]
                    node.set("expression", _fit(node.expression, p, s))
                return node  # SET price = ...: an assignment, not a comparison
            if types_.numeric(node.this) or types_.numeric(node.expression):
                node.set("this", _collated(_numeric_text(node.this, types_)))
                node.set("expression", _numeric_text(node.expression, types_))
            return node
        if isinstance(node, exp.Between) and types_.numeric(node.this):
            node.set("this", _collated(node.this))
            node.set("low", _numeric_text(node.args["low"], types_))
            node.set("high", _numeric_text(node.args["high"], types_))
            return node
        if isinstance(node, exp.In) and (
            types_.numeric(node.this) or any(types_.numeric(e) for e in node.expressions)
        ):
            node.set("this", _collated(_numeric_text(node.this, types_)))
            node.set("expressions", [_numeric_text(e, types_) for e in node.expressions])
            return node
        if isinstance(node, exp.Ordered) and _ordinal_or_numeric(node.this, tree, types_):
            node.set("this", _collated(node.this))
            return node
        if isinstance(node, exp.Group):
            node.set(
                "expressions",
                [_collated(e) if types_.numeric(e) else e for e in node.expressions],
            )
            return node
        if (
            isinstance(node, exp.Min | exp.Max)
            and types_.numeric(node.this)
            and not node.expressions
        ):
            # Of equal values (1 and 1.0) PostgreSQL keeps the last seen: an aggregate
            # of the runtime's (a collated min() would keep the first).
            name = "aragora_numeric_min" if isinstance(node, exp.Min) else "aragora_numeric_max"
            if isinstance(node.parent, exp.Window):
                name += "_over"  # the window form keeps its frame's values
            return exp.Anonymous(this=name, expressions=[sub(node.this)])
        if isinstance(node, exp.Sum | exp.Avg):
            out = _aggregate(node, types_)
            if out is not node:
                out.set("expressions", [sub(e) for e in out.expressions])
            return out
        if isinstance(node, tuple(_NUMERIC_OPS)) and types_.kind(node) == "numeric":
            return exp.Anonymous(
                this=_NUMERIC_OPS[type(node)],
                expressions=[
                    sub(_numeric_text(node.this, types_)),
                    sub(_numeric_text(node.expression, types_)),
                ],
            )
        if isinstance(node, tuple(_NUMERIC_UNARY)) and types_.numeric(node.this):
            places = node.args.get("decimals")
            if isinstance(node, exp.Ceil | exp.Floor) and places is not None:
                raise Untranslatable(f"{node.key}(numeric, n)", "no such function")
            args = [sub(node.this)] if places is None else [sub(node.this), places]
            return exp.Anonymous(this=_NUMERIC_UNARY[type(node)], expressions=args)
        if isinstance(node, exp.Cast):
            target = type_of(node.to)
            if not target.array_dims and target.name in _INT_BITS and types_.numeric(node.this):
                return exp.Anonymous(
                    this="aragora_numeric_int",
                    expressions=[sub(node.this), exp.Literal.number(_INT_BITS[target.name])],
                )
            return node
        if isinstance(node, exp.Select) and node.args.get("distinct") is not None:
            _distinct_numeric(node, types_)
            return node
        if isinstance(node, exp.Insert) and typmods:
            _fit_insert(node, typmods)
            return node
        return node

    return tree.transform(fix, copy=False)


def _ordinal_or_numeric(node: exp.Expr, tree: exp.Expr, types_: _NumericTypes) -> bool:
    if isinstance(node, exp.Literal) and not node.is_string:
        select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
        position = int(str(node.this)) - 1
        if select is None or not 0 <= position < len(select.expressions):
            return False
        return types_.numeric(select.expressions[position])
    return types_.numeric(node)


def _aggregate(node: exp.Sum | exp.Avg, types_: _NumericTypes) -> exp.Expr:
    inner = node.this
    distinct = isinstance(inner, exp.Distinct)
    kind = types_.kind(inner.expressions[0] if distinct and inner.expressions else inner)
    exact = kind == "numeric" or (isinstance(node, exp.Avg) and kind in ("int", "literal"))
    if not exact:
        return node
    if distinct:
        raise Untranslatable(
            f"{node.key}(DISTINCT numeric)",
            "DISTINCT over numeric text on sqlite would tell 9.9 from 9.90",
        )
    name = "aragora_numeric_sum" if isinstance(node, exp.Sum) else "aragora_numeric_avg"
    return exp.Anonymous(this=name, expressions=[inner])


def _distinct_numeric(select: exp.Select, types_: _NumericTypes) -> None:
    """``SELECT DISTINCT price``: numeric equality, keeping the column's name."""
    items = []
    for item in select.expressions:
        inner = item.this if isinstance(item, exp.Alias) else item
        if types_.numeric(inner) and not isinstance(inner, exp.Collate):
            name = item.alias_or_name
            item = exp.Alias(this=_collated(inner), alias=exp.to_identifier(name))
        items.append(item)
    select.set("expressions", items)


def _fit(value: exp.Expr, precision: int, places: int) -> exp.Expr:
    return exp.Anonymous(
        this="aragora_numeric",
        expressions=[value, exp.Literal.number(precision), exp.Literal.number(places)],
    )


def _fit_insert(insert: exp.Insert, typmods: dict[str, tuple[int, int]]) -> None:
    """Values written to ``numeric(p, s)`` columns, rounded to the column's scale."""
    target = insert.this
    if not isinstance(target, exp.Schema):
        return
    names = [c.name for c in target.expressions]
    if not any(n in typmods for n in names):
        return
    source = insert.expression
    rows: list[exp.Expr] = []
    if isinstance(source, exp.Values):
        rows = [r for r in source.expressions if isinstance(r, exp.Tuple)]
        for row in rows:
            row.set("expressions", _fitted(row.expressions, names, typmods))
    elif isinstance(source, exp.Select) and not any(
        isinstance(e, exp.Star) for e in source.expressions
    ):
        source.set("expressions", _fitted(source.expressions, names, typmods))
    else:
        raise Untranslatable(
            "INSERT into a numeric(p, s) column",
            "only VALUES rows or a SELECT list name the values to round to the column's scale",
        )


def _fitted(
    values: list[exp.Expr], names: list[str], typmods: dict[str, tuple[int, int]]
) -> list[exp.Expr]:
    out = []
    for name, value in zip(names, values, strict=False):
        if name in typmods:
            p, s = typmods[name]
            alias = value.alias if isinstance(value, exp.Alias) else None
            inner = value.this if isinstance(value, exp.Alias) else value
            fitted = _fit(inner, p, s)
            value = exp.Alias(this=fitted, alias=exp.to_identifier(alias)) if alias else fitted
        out.append(value)
    return out + values[len(names) :]


def strip_public_schema(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """``public.foo`` -> ``foo``: SQLite has one schema, and migrations take ``public.``
    the same way. Another schema has no SQLite form."""

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and node.args.get("db") is not None:
            schema = node.args["db"].name
            if schema.lower() != "public":
                raise Untranslatable(f"{schema}.{node.name}", "only the public schema")
            node = node.copy()
            node.set("db", None)
            node.set("catalog", None)
        elif (
            isinstance(node, exp.Column)
            and node.args.get("db") is not None
            and node.args["db"].name.lower() == "public"
        ):
            node = node.copy()
            node.set("db", None)
        return node

    return tree.transform(fix, copy=False)


#: Applied in this order by :func:`translate`, which copies the statement once: each rule
#: rewrites the tree it is given in place (``transform(copy=False)``) and returns it. A
#: copy per rule cost about 15% of the generator's CPU time (3.5 s against 3.0 s
#: for ``codegen check``, 6 alternating runs each).
RULES: Sequence[Rule] = (
    strip_public_schema,
    rewrite_containers,
    rewrite_unnest,
    rewrite_numeric,
    refuse_json_equality,
    rewrite_list_membership,
    rewrite_casts,
    rewrite_interval_arithmetic,
    rewrite_now,
    rewrite_date_trunc,
    rewrite_like,
    rewrite_ordering,
    rewrite_booleans,
    rewrite_placeholders,
)


def translate(tree: exp.Expr, ctx: Context = NO_HINTS) -> exp.Expr:
    """``tree`` in SQLite's form; ``tree`` itself is left as it was."""
    out = tree.copy()
    for rule in RULES:
        out = rule(out, ctx)
    return out


def render(tree: exp.Expr) -> str:
    return tree.sql(dialect="sqlite")


def translate_query(sql: str, ctx: Context = NO_HINTS) -> str:
    """Translate one PostgreSQL statement (sqlc's text, ``$n`` parameters) to SQLite."""
    tree = sqlglot.parse_one(sql, read="postgres")
    return render(translate(tree, ctx))


def translate_expression(node: exp.Expr) -> str:
    return render(translate(node))
