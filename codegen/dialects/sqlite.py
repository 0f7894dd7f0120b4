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

import sqlglot
from sqlglot import exp

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
        inner: exp.Expr = node.this
        if target.array_dims:
            if isinstance(inner, exp.Literal) and inner.is_string:
                return exp.Literal.string(array_literal(inner.this))
            return inner
        name = target.name
        if isinstance(inner, exp.Literal) and inner.is_string:
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


def refuse_array_operators(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """Array and jsonb containment, overlap and key tests (``@>``, ``<@``, ``&&``, ``?``)
    and ``extract()`` have no faithful SQLite form here; refused by name rather than left
    for SQLite to reject as a token it cannot read."""
    operators: dict[type[exp.Expr], str] = {
        exp.ArrayContainsAll: "@>",
        exp.ArrayContainedBy: "<@",
        exp.ArrayOverlaps: "&&",
        exp.JSONBContainsTopKey: "?",
        exp.JSONBContainsAnyTopKeys: "?|",
        exp.JSONBContainsAllTopKeys: "?&",
    }
    for node in tree.find_all(*operators):
        operator = operators[type(node)]
        raise Untranslatable(
            operator,
            "containment, overlap and key tests of arrays or jsonb have no sqlite form; "
            "test one element with x = ANY(array), a key with ->> ... IS NOT NULL, or write "
            "a sqlite variant",
        )
    extract = next(tree.find_all(exp.Extract), None)
    if extract is not None:
        raise Untranslatable(
            "extract",
            "its numeric result has no exact sqlite form; use date_trunc, or compute the "
            "field in Python from the timestamp",
        )
    return tree


#: Where a value's text is not its numeric meaning: comparison, order, arithmetic, and
#: the aggregates that compare or add.
_NUMERIC_USES: dict[type[exp.Expr], str] = {
    exp.EQ: "compared (=)",
    exp.NEQ: "compared (<>)",
    exp.LT: "compared (<)",
    exp.LTE: "compared (<=)",
    exp.GT: "compared (>)",
    exp.GTE: "compared (>=)",
    exp.Between: "compared (BETWEEN)",
    exp.In: "compared (IN)",
    exp.Ordered: "ordered (ORDER BY)",
    exp.Min: "aggregated (min)",
    exp.Max: "aggregated (max)",
    exp.Sum: "aggregated (sum)",
    exp.Avg: "aggregated (avg)",
    exp.Add: "added",
    exp.Sub: "subtracted",
    exp.Mul: "multiplied",
    exp.Div: "divided",
}


def refuse_numeric_semantics(tree: exp.Expr, ctx: Context) -> exp.Expr:
    """A ``numeric`` column is exact text on SQLite (``12.50``), so it is stored and read
    back exactly; compared, ordered or computed with there it would answer as text
    (``'9.99' > '10.00'``, ``'12.5' <> '12.50'``) or as a float (``0.1 + 0.2``), where
    PostgreSQL answers exactly. Such a statement is refused."""
    numeric = ctx.numeric_columns
    if not numeric:
        return tree
    for node in tree.find_all(exp.Column):
        if node.name not in numeric:
            continue
        parent = node.parent
        while isinstance(parent, exp.Paren | exp.Alias):
            parent = parent.parent
        use = _NUMERIC_USES.get(type(parent)) if parent is not None else None
        if isinstance(parent, exp.EQ) and isinstance(parent.parent, exp.Update | exp.OnConflict):
            use = None  # SET price = ...: an assignment, not a comparison
        if use is not None:
            raise Untranslatable(
                f"numeric column {node.name} {use}",
                "numeric is exact text on sqlite, which compares and computes it as text or "
                "float; compare or compute in Python, or use double precision",
            )
    return tree


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
    refuse_array_operators,
    refuse_numeric_semantics,
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
