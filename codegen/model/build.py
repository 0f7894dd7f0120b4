"""The model stage: the query IR from sqlc's request and the catalog.

Pure: takes parsed records, returns IR and reports every problem to the collector. The
SQLite text is the next stage's (:mod:`codegen.dialects.queries`); this one records what
the SQLite rules will need to know about each statement (:class:`TranslationHints`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Protocol

from sqlglot import exp
from sqlglot.errors import ParseError

from ..errors import Problems
from . import naming, types
from .encryption import encryption
from .ir import (
    Catalog,
    Column,
    Location,
    Param,
    PgType,
    Query,
    QueryFile,
    ResultColumn,
    Table,
    TranslationHints,
)
from .nodes import param_number, parse_postgres
from .sqlc import SqlcColumn, SqlcParam, SqlcQuery, SqlcRequest

COMMANDS = frozenset(
    {
        ":one",
        ":many",
        ":exec",
        ":execrows",
        ":execresult",
        ":copyfrom",
        ":batchexec",
        ":batchone",
        ":batchmany",
    }
)
_SLICE_IN = re.compile(r"\bIN\s*\(\s*\$(\d+)\s*\)", re.IGNORECASE)


def _pg_type(col: SqlcColumn, catalog: Catalog) -> PgType:
    return PgType(types.normalize(col.type_name), col.array_dims)


def _check_type(t: PgType, catalog: Catalog, what: str) -> str | None:
    if t.name in types.BUILTIN or catalog.enum(t.name) is not None:
        return None
    if t.name in types.PSEUDO:
        return f"cannot infer the type of {what}; add an explicit cast such as ::text"
    return f"unsupported type {t.name!r} for {what}"


def _projections(tree: exp.Expr) -> list[exp.Expr]:
    if isinstance(tree, exp.Select):
        return list(tree.expressions)
    returning = tree.args.get("returning")
    if isinstance(returning, exp.Returning):
        return list(returning.expressions)
    return []


def _unwrap_alias(node: exp.Expr) -> exp.Expr:
    """``node`` without its alias and parentheses (a cast stays: it sets the type)."""
    while isinstance(node, exp.Alias | exp.Paren):
        node = node.this
    return node


def _unwrap(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Alias | exp.Cast | exp.Paren):
        node = node.this
    return node


def _repair_columns(
    columns: list[ResultColumn], tree: exp.Expr, catalog: Catalog
) -> list[ResultColumn]:
    """Fix what sqlc infers wrongly for aggregates.

    sqlc reports ``max(col)`` as ``anyarray`` and marks MIN/MAX/SUM/AVG NOT NULL, but they
    return NULL over an empty input (PostgreSQL docs §9.21), and, in a group, when every
    value of their argument is NULL: only a grouped aggregate of a NOT NULL column (or of
    a constant) is never NULL.
    """
    projections = _projections(tree)
    if len(projections) != len(columns):
        return columns
    grouped = isinstance(tree, exp.Select) and tree.args.get("group") is not None
    tables = [catalog.table(t.name) for t in tree.find_all(exp.Table)]
    not_null = _not_null_columns(tree, catalog)
    out = []
    for col, proj in zip(columns, projections, strict=True):
        inner = _unwrap(proj)
        if isinstance(inner, exp.Subquery) and not _counts(inner.this):
            # A scalar subquery is NULL when it finds no row, or when its aggregate does.
            col = ResultColumn(col.name, col.type, True)
        timed = _time_type(inner, tables)
        if timed is not None and col.type != timed:
            # sqlc types date_trunc(...) as an interval and ts ± interval as an integer;
            # PostgreSQL gives both the timestamp's own type.
            col = ResultColumn(col.name, timed, col.nullable)
        if isinstance(inner, _ARITHMETIC_OPS):
            # sqlc types arithmetic as integer (price * 0.9, -price); PostgreSQL gives the
            # wider operand's type.
            computed = _value_type(inner, tables)
            if computed is not None and col.type != computed:
                col = ResultColumn(col.name, computed, col.nullable)
        if not col.nullable and any(True for _ in inner.find_all(exp.Nullif)):
            # NULLIF(x, 0) is NULL when x is 0, and so is what it is part of: sqlc marks
            # a cast of it NOT NULL (wins::float8 / NULLIF(...))::float8 all the same.
            col = ResultColumn(col.name, col.type, True)
        if isinstance(inner, exp.JSONExtractScalar) and col.type.name in types.PSEUDO:
            col = ResultColumn(col.name, PgType("text"), True)  # ->> gives text, or NULL
        if isinstance(inner, exp.Coalesce) and col.type.name in types.PSEUDO:
            # sqlc types coalesce(...) as any: PostgreSQL's type is its first argument's.
            found = _aggregate_type(_unwrap(inner.this), tables)
            if found is not None:
                literal = any(isinstance(a, exp.Literal) for a in [inner.this, *inner.expressions])
                col = ResultColumn(col.name, found, col.nullable and not literal)
        bare = _unwrap_alias(proj)  # a cast around the aggregate decides its type
        if isinstance(bare, exp.Window):
            bare = bare.this  # sum(x) OVER (...) has sum(x)'s type
        if isinstance(bare, exp.Sum | exp.Avg):
            # sqlc types avg() as double precision whatever it averages; PostgreSQL's avg
            # of integers or numeric is numeric (functions-aggregate.html), and so are
            # sums of bigint and numeric.
            found = _aggregate_type(bare, tables)
            if found is not None and found != col.type:
                col = ResultColumn(col.name, found, col.nullable)
        if isinstance(inner, exp.Min | exp.Max | exp.Sum | exp.Avg):
            arg = _unwrap(inner.this)
            if col.type.name in types.PSEUDO and isinstance(arg, exp.Column):
                source = _source_column(arg.name, tables)
                if source is not None:
                    col = ResultColumn(col.name, source.type, col.nullable)
            if not grouped or not _never_null(arg, not_null):
                col = ResultColumn(col.name, col.type, True)
        out.append(col)
    return out


def _source_column(name: str, tables: Sequence[Table | None]) -> Column | None:
    """The first of ``tables`` (those a statement reads) with a column ``name``: that column."""
    return next((c for t in tables if t is not None and (c := t.column(name)) is not None), None)


def _time_type(node: exp.Expr, tables: Sequence[Table | None]) -> PgType | None:
    """``date_trunc(unit, col)`` and ``col ± interval`` on a timestamp column: that
    column's type (timestamptz or timestamp); None for anything else."""
    truncated = isinstance(node, exp.TimestampTrunc | exp.DateTrunc)
    shifted = isinstance(node, exp.Add | exp.Sub) and any(
        isinstance(_unwrap(side), exp.Interval) for side in (node.this, node.expression)
    )
    if not (truncated or shifted):
        return None
    column = _unwrap(node.this)
    if not isinstance(column, exp.Column):
        return None
    source = _source_column(column.name, tables)
    # date ± interval is a timestamp on PostgreSQL: left to an explicit cast.
    if source is None or source.type.name not in ("timestamptz", "timestamp"):
        return None
    found: PgType = source.type
    return found


#: PostgreSQL's result type of sum() and avg() by argument type (functions-aggregate.html).
_SUM = {"int2": "int8", "int4": "int8", "int8": "numeric", "float4": "float4"}
_AVG = {"int2": "numeric", "int4": "numeric", "int8": "numeric", "float4": "float8"}


def _aggregate_type(node: exp.Expr, tables: Sequence[Table | None]) -> PgType | None:
    """The type PostgreSQL gives a column, ``count``, or ``min``/``max``/``sum``/``avg`` of
    a column; None for anything else."""
    if isinstance(node, exp.Count):
        return PgType("int8")
    value = _unwrap(node.this) if isinstance(node, exp.Min | exp.Max | exp.Sum | exp.Avg) else node
    typed = _value_type(value, tables)
    if typed is None or typed.array_dims:
        return None
    name = typed.name
    if isinstance(node, exp.Sum):
        return PgType(_SUM.get(name, name))
    if isinstance(node, exp.Avg):
        return PgType(_AVG.get(name, name))
    return typed


_ARITHMETIC_OPS = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg)
#: The order PostgreSQL promotes numbers in arithmetic (int2 op int2 stays int2).
_PROMOTION = ("int2", "int4", "int8", "numeric", "float4", "float8")


def _value_type(node: exp.Expr, tables: Sequence[Table | None]) -> PgType | None:
    """The type of a column, a cast, a number literal, or arithmetic over them (the wider
    operand's: ``quantity * unit_price`` is numeric); None for anything else."""
    while isinstance(node, exp.Paren | exp.Alias):
        node = node.this
    if isinstance(node, exp.Column):
        source = _source_column(node.name, tables)
        return None if source is None else source.type
    if isinstance(node, exp.Cast):
        return PgType(types.normalize(node.to.sql("postgres")))
    if isinstance(node, exp.Literal) and not node.is_string:
        return PgType("numeric" if any(c in str(node.this) for c in ".eE") else "int4")
    if isinstance(node, exp.Neg):
        return _value_type(node.this, tables)
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod):
        sides = [_value_type(node.this, tables), _value_type(node.expression, tables)]
        if any(t is None or t.array_dims or t.name not in _PROMOTION for t in sides):
            return None
        names = {t.name for t in sides if t is not None}
        if names == {"float4", "numeric"}:
            return PgType("float8")  # float4 op numeric resolves to float8 op float8
        return PgType(max(names, key=_PROMOTION.index))
    return None


#: Nodes of an expression that is never NULL when its columns are not: arithmetic.
_ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg, exp.Paren, exp.Cast)


def _never_null(arg: exp.Expr, not_null: frozenset[str]) -> bool:
    """An aggregate's argument that cannot be NULL: NOT NULL columns and non-NULL
    constants, combined by arithmetic and casts only."""
    for node in arg.walk():
        if isinstance(node, exp.Column):
            if node.name not in not_null:
                return False
        elif isinstance(node, exp.Literal | exp.DataType | exp.Identifier):
            continue
        elif not isinstance(node, _ARITHMETIC):
            return False
    return True


def _counts(select: exp.Expr) -> bool:
    """A subquery whose only value is an ungrouped count: never NULL."""
    return (
        isinstance(select, exp.Select)
        and len(select.expressions) == 1
        and isinstance(_unwrap(select.expressions[0]), exp.Count)
        and select.args.get("group") is None
        and select.args.get("limit") is None
    )


def _not_null_columns(tree: exp.Expr, catalog: Catalog) -> frozenset[str]:
    """Column names NOT NULL in every table the statement reads, where no outer join can
    turn them NULL."""
    for join in tree.find_all(exp.Join):
        if join.side:  # LEFT / RIGHT / FULL
            return frozenset()
    tables = [catalog.table(t.name) for t in tree.find_all(exp.Table)]
    known = [t for t in tables if t is not None]
    if not known:
        return frozenset()
    names: dict[str, bool] = {}
    for table in known:
        for col in table.columns:
            names[col.name] = names.get(col.name, True) and col.not_null
    return frozenset(n for n, not_null in names.items() if not_null)


def _json_columns(tree: exp.Expr, catalog: Catalog) -> frozenset[str]:
    return _columns_typed(tree, catalog, ("json", "jsonb"))


def _columns_typed(tree: exp.Expr, catalog: Catalog, names: tuple[str, ...]) -> frozenset[str]:
    tables = [catalog.table(ref.name) for ref in tree.find_all(exp.Table)]
    return frozenset(
        col.name
        for table in tables
        if table is not None
        for col in table.columns
        if col.type.name in names and not col.type.array_dims
    )


_TYPMOD = re.compile(r"^\s*(?:numeric|decimal)\s*\(\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?\)\s*$", re.I)


def _numeric_typmods(tree: exp.Expr, catalog: Catalog) -> tuple[tuple[str, int, int], ...]:
    """The ``numeric(p, s)`` columns of the table an INSERT or UPDATE writes."""
    if not isinstance(tree, exp.Insert | exp.Update):
        return ()
    target = tree.find(exp.Table)
    table = catalog.table(target.name) if target is not None else None
    out = []
    for col in table.columns if table is not None else ():
        match = _TYPMOD.match(col.pg_type_sql) if not col.type.array_dims else None
        if match:
            out.append((col.name, int(match.group(1)), int(match.group(2) or 0)))
    return tuple(out)


def _enum_columns(tree: exp.Expr, catalog: Catalog) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out: dict[str, tuple[str, ...]] = {}
    for ref in tree.find_all(exp.Table):
        table = catalog.table(ref.name)
        for col in table.columns if table else ():
            enum = catalog.enum(col.type.name)
            if enum is not None and not col.type.array_dims:
                out[col.name] = enum.values
    return tuple(sorted(out.items()))


def _is_readonly(tree: exp.Expr) -> bool:
    if not isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
        return False
    if any(True for _ in tree.find_all(exp.Lock)):
        return False  # SELECT ... FOR UPDATE takes row locks: primary only
    return not any(True for _ in tree.find_all(exp.Insert, exp.Update, exp.Delete))


def _repair_params(params: list[Param], tree: exp.Expr) -> list[Param]:
    """Fix what sqlc infers wrongly for parameters: one compared with ``json ->> 'key'``
    is text (sqlc gives it the json column's type)."""
    texts: set[int] = set()
    for node in tree.find_all(exp.EQ, exp.NEQ):
        for side, other in ((node.this, node.expression), (node.expression, node.this)):
            number = param_number(_strip_cast(other))
            if isinstance(_strip_cast(side), exp.JSONExtractScalar) and number is not None:
                texts.add(number)
    return [
        dataclasses.replace(p, type=PgType("text"))
        if p.number in texts and p.type.name in ("json", "jsonb") and not p.type.array_dims
        else p
        for p in params
    ]


def _strip_cast(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    return node


def _compared_lists(text: str) -> dict[int, str]:
    """``col = ANY($n)`` -> {n: "cols"}: a list parameter sqlc leaves unnamed is named after
    the column it is compared with (``ids``), not ``arg1``."""
    try:
        tree = parse_postgres(text)
    except ParseError:
        return {}
    names: dict[int, str] = {}
    for node in tree.find_all(exp.EQ, exp.NEQ):
        column, other = node.this, node.expression
        quantified = isinstance(other, exp.Any | exp.All) or (
            isinstance(other, exp.Anonymous) and other.name.upper() in ("ANY", "ALL")
        )
        if not isinstance(column, exp.Column) or not quantified:
            continue
        number = next(
            (n for p in other.find_all(exp.Parameter) if (n := param_number(p)) is not None),
            None,
        )
        if number is not None:
            base = column.name
            names.setdefault(number, base if base.endswith("s") else base + "s")
    return names


def _param_names(raw: Sequence[SqlcParam], compared: Mapping[int, str] | None = None) -> list[str]:
    names: list[str] = []
    for p in raw:
        base = naming.snake(p.column.name or (compared or {}).get(p.number) or f"arg{p.number}")
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def build_queries(
    request: SqlcRequest,
    catalog: Catalog,
    locations: Mapping[tuple[str, str], tuple[str, int, str]],
    queries_dir: str,
    problems: Problems,
) -> tuple[QueryFile, ...]:
    """Build every query that can be built; report the rest to ``problems``."""
    by_file: dict[str, list[Query]] = {}
    paths: dict[str, str] = {}
    for raw in request.queries:
        name = raw.name
        rel, line, source = locations.get(
            (PurePosixPath(raw.filename).name, name), (f"{queries_dir}/{raw.filename}", 1, "")
        )
        stem = naming.snake(PurePosixPath(raw.filename).stem)
        paths[stem] = rel
        if raw.cmd not in COMMANDS:
            problems.add(
                rel,
                line,
                1,
                f"query {name}: command {raw.cmd} is not supported "
                f"(use one of {', '.join(sorted(COMMANDS))})",
            )
            continue
        query = _build_one(raw, Location(rel, line, 1), source, catalog, problems)
        if query is not None:
            by_file.setdefault(stem, []).append(query)
    return tuple(QueryFile(stem, paths[stem], tuple(qs)) for stem, qs in sorted(by_file.items()))


def _build_one(
    raw: SqlcQuery, loc: Location, source: str, catalog: Catalog, problems: Problems
) -> Query | None:
    def report(message: str, near: str | None = None) -> None:
        line, col = place(source, loc, near) if near else (loc.line, loc.col)
        problems.add(loc.file, line, col, f"query {raw.name}: {message}")

    params = _params(raw, catalog, report)
    slices = {p.number for p in params if p.is_slice}
    # PostgreSQL: sqlc.slice expands to IN ($n); a list binds as an array to = ANY($n).
    pg_sql = _SLICE_IN.sub(
        lambda m: f"= ANY(${m.group(1)})" if int(m.group(1)) in slices else m.group(0), raw.text
    )
    try:
        tree = parse_postgres(raw.text)
    except ParseError as exc:
        report(f"cannot parse for translation: {exc}")
        return None
    columns = _columns(raw, tree, catalog, report)
    params = _repair_params(params, tree)
    row_counts = _row_count_params(tree)
    # sqlc types a LIMIT/OFFSET argument as integer; PostgreSQL takes bigint there (as the
    # scratch-server check shows), so a value past 2^31 is accepted on both backends.
    params = [
        dataclasses.replace(p, type=PgType("int8"))
        if p.number in row_counts and p.type == PgType("int4")
        else p
        for p in params
    ]
    insert_columns = _check_command(raw.cmd, tree, raw.insert_into_table, params, columns, report)
    if insert_columns is None:
        return None
    sealed, opened = encryption(raw, tree, catalog, report)
    hints = TranslationHints(
        list_params=frozenset(p.number for p in params if p.is_slice or p.type.array_dims),
        not_null=_not_null_columns(tree, catalog),
        enums=_enum_columns(tree, catalog),
        json_columns=_json_columns(tree, catalog),
        numeric_columns=_columns_typed(tree, catalog, ("numeric",)),
        integer_columns=_columns_typed(tree, catalog, ("int2", "int4", "int8")),
        float_columns=_columns_typed(tree, catalog, ("float4", "float8")),
        numeric_typmods=_numeric_typmods(tree, catalog),
    )
    return Query(
        raw.name,
        raw.cmd,
        loc,
        raw.comments,
        pg_sql,
        "",
        tuple(params),
        tuple(columns),
        _is_readonly(tree),
        _model_table(raw, columns, catalog),
        raw.insert_into_table,
        insert_columns,
        row_counts,
        source_sql=raw.text,
        hints=hints,
        source_block=source,
        sealed=sealed,
        opened=opened,
    )


class Report(Protocol):
    """Reports one problem of a query: at its ``-- name:`` line, or near a name in it."""

    def __call__(self, message: str, near: str | None = None) -> None: ...


def _params(raw: SqlcQuery, catalog: Catalog, report: Report) -> list[Param]:
    params: list[Param] = []
    for pname, p in zip(
        _param_names(raw.params, _compared_lists(raw.text)), raw.params, strict=True
    ):
        described = p.column
        ptype = _pg_type(described, catalog)
        if described.is_sqlc_slice:
            ptype = PgType(ptype.name, ptype.array_dims + 1)
        message = _check_type(ptype, catalog, f"parameter {pname}")
        if message:
            report(message)
        params.append(
            Param(p.number, pname, ptype, not described.not_null, described.is_sqlc_slice)
        )
    return params


def place(source: str, loc: Location, name: str) -> tuple[int, int]:
    """The file line and column where result column ``name`` is named in the query's
    block (``AS name``, else the name itself), or the ``-- name:`` line when not found."""
    pattern = rf'\bAS\s+"?{re.escape(name)}"?\b|\b{re.escape(name)}\b'
    for offset, text in enumerate(source.split("\n")):
        if text.lstrip().startswith("--"):
            continue
        match = re.search(pattern, text, re.IGNORECASE)
        if match:
            return loc.line + offset, match.start() + 1
    return loc.line, loc.col


def _columns(
    raw: SqlcQuery, tree: exp.Expr, catalog: Catalog, report: Report
) -> list[ResultColumn]:
    columns = [
        ResultColumn(
            naming.snake(c.name or f"column_{i + 1}"), _pg_type(c, catalog), not c.not_null
        )
        for i, c in enumerate(raw.columns)
    ]
    columns = _repair_columns(columns, tree, catalog)
    seen: set[str] = set()
    for col in columns:
        message = _check_type(col.type, catalog, f"result column {col.name}")
        if message:
            report(message, col.name)
        if col.name in seen:
            report(f"duplicate result column {col.name!r}; give it an alias", col.name)
        seen.add(col.name)
    return columns


def _check_command(
    cmd: str,
    tree: exp.Expr,
    insert_table: str | None,
    params: list[Param],
    columns: list[ResultColumn],
    report: Report,
) -> tuple[str, ...] | None:
    """What the annotation asks of the statement; for :copyfrom, its insert columns.
    None: the query cannot be generated."""
    if cmd == ":batchexec" and columns:
        report(
            ":batchexec runs a statement per row and returns nothing; drop RETURNING or use :many"
        )
    if cmd in (":one", ":many", ":batchone", ":batchmany") and not columns:
        report(f"{cmd} needs a statement that returns columns")
    if cmd in (":batchexec", ":batchone", ":batchmany") and not params:
        report(f"{cmd} runs the statement once per parameter row; it needs parameters")
    if cmd != ":copyfrom":
        return ()
    if not isinstance(tree, exp.Insert) or insert_table is None:
        report(":copyfrom needs INSERT INTO t (cols) VALUES")
        return None
    schema = tree.this
    insert_columns = (
        tuple(i.name for i in schema.expressions) if isinstance(schema, exp.Schema) else ()
    )
    values = tree.expression
    row = values.expressions[0] if isinstance(values, exp.Values) else None
    plain = row is not None and [param_number(e) for e in row.expressions] == list(
        range(1, len(params) + 1)
    )
    if not plain or len(insert_columns) != len(params) or tree.args.get("returning"):
        report(":copyfrom takes one VALUES row of plain parameters $1..$n, one per listed column")
        return None
    return insert_columns


def _row_count_params(tree: exp.Expr) -> tuple[int, ...]:
    """Parameters used as LIMIT or OFFSET."""
    return tuple(
        sorted(
            {
                n
                for clause in tree.find_all(exp.Limit, exp.Offset)
                for node in clause.walk()
                if (n := param_number(node)) is not None
            }
        )
    )


def _model_table(raw: SqlcQuery, columns: list[ResultColumn], catalog: Catalog) -> str | None:
    """The table whose model a row maps to, when the columns are exactly that table's."""
    tables = {c.table for c in raw.columns}
    if len(tables) != 1:
        return None
    table = catalog.table(str(next(iter(tables))))
    if table is None or len(table.columns) != len(columns):
        return None
    for tc, rc in zip(table.columns, columns, strict=True):
        if tc.name != rc.name or tc.type != rc.type or tc.not_null == rc.nullable:
            return None
    return table.name
