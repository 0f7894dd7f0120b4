"""Build the IR from sqlc's request and the catalog; translate each query to SQLite.

Pure: takes parsed data, returns IR or raises :class:`CodegenError` with every problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from codegen.analysis.variants import Variant, apply_variant
from codegen.dialects import sqlite
from codegen.errors import Problem
from codegen.model import naming, types
from codegen.model.ir import Catalog, Location, Param, PgType, Query, QueryFile, ResultColumn

COMMANDS = frozenset(
    {":one", ":many", ":exec", ":execrows", ":execresult", ":copyfrom", ":batchexec"}
)
_SLICE_IN = re.compile(r"\bIN\s*\(\s*\$(\d+)\s*\)", re.IGNORECASE)


def _pg_type(col: Mapping[str, Any], catalog: Catalog) -> PgType:
    name = types.normalize(str(col["type"]["name"]))
    dims = int(col.get("array_dims") or (1 if col.get("is_array") else 0))
    return PgType(name, dims)


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
        if isinstance(inner, exp.Min | exp.Max | exp.Sum | exp.Avg):
            arg = _unwrap(inner.this)
            if col.type.name in types.PSEUDO and isinstance(arg, exp.Column):
                for table in tables:
                    source = table.column(arg.name) if table else None
                    if source is not None:
                        col = ResultColumn(col.name, source.type, col.nullable)
                        break
            if not grouped or not _never_null(arg, not_null):
                col = ResultColumn(col.name, col.type, True)
        out.append(col)
    return out


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
    tables = [catalog.table(ref.name) for ref in tree.find_all(exp.Table)]
    return frozenset(
        col.name
        for table in tables
        if table is not None
        for col in table.columns
        if col.type.name in ("json", "jsonb") and not col.type.array_dims
    )


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


def _param_names(raw: list[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for p in raw:
        base = naming.snake(str(p["column"]["name"] or f"arg{p['number']}"))
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def _locate(source: str, construct: str, line: int) -> tuple[int, int]:
    """Line and column of ``construct`` in a query's source block (annotation excluded)."""
    words = [w for w in re.split(r"[\s()']+", construct) if w and w not in ("::",)]
    lines = source.split("\n")
    for word in sorted(words, key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w:]){re.escape(word.lstrip(':'))}(?!\w)", re.IGNORECASE)
        for offset, text in enumerate(lines[1:], start=1):
            if text.lstrip().startswith("--"):
                continue
            match = pattern.search(text)
            if match:
                return line + offset, match.start() + 1
    return line, 1


def build_queries(
    request: Mapping[str, Any],
    catalog: Catalog,
    locations: Mapping[tuple[str, str], tuple[str, int, str]],
    queries_dir: str,
    variants: Mapping[tuple[str, str], Variant] | None = None,
) -> tuple[tuple[QueryFile, ...], list[Problem]]:
    """Build every query; problems are returned, so verification can still report more.

    A query with a SQLite variant takes the variant's text instead of a translation, once
    :func:`apply_variant` has shown both have the same parameters and columns.
    """
    variants = variants or {}
    used: set[tuple[str, str]] = set()
    problems: list[Problem] = []
    by_file: dict[str, list[Query]] = {}
    paths: dict[str, str] = {}
    for raw in request.get("queries") or []:
        filename = str(raw["filename"])
        name = str(raw["name"])
        rel, line, source = locations.get(
            (PurePosixPath(filename).name, name), (f"{queries_dir}/{filename}", 1, "")
        )
        loc = Location(rel, line, 1)
        stem = naming.snake(PurePosixPath(filename).stem)
        paths[stem] = rel
        cmd = str(raw["cmd"])
        if cmd not in COMMANDS:
            problems.append(
                Problem(
                    rel,
                    line,
                    1,
                    f"query {name}: command {cmd} is not supported "
                    f"(use one of {', '.join(sorted(COMMANDS))})",
                )
            )
            continue
        variant = variants.get((stem, name))
        query = _build_one(raw, name, cmd, loc, source, catalog, problems, variant is not None)
        if query is not None and variant is not None:
            used.add((stem, name))
            query, mismatches = apply_variant(query, variant, catalog)
            problems.extend(
                Problem(variant.path, variant.line, 1, f"query {name}: sqlite variant: {m}")
                for m in mismatches
            )
            if mismatches:
                continue  # no SQLite text to verify
            if query.readonly and not _reads_only(variant.sql):
                problems.append(
                    Problem(
                        variant.path,
                        variant.line,
                        1,
                        f"query {name}: sqlite variant: the PostgreSQL query only reads, "
                        "so the variant must be a SELECT",
                    )
                )
        if query is not None:
            by_file.setdefault(stem, []).append(query)
    for key, variant in sorted(variants.items()):
        if key not in used:
            problems.append(
                Problem(
                    variant.path,
                    variant.line,
                    1,
                    f"query {variant.name}: sqlite variant has no PostgreSQL query of that name "
                    f"in {queries_dir}/{key[0]}.sql",
                )
            )
    files = tuple(QueryFile(stem, paths[stem], tuple(qs)) for stem, qs in sorted(by_file.items()))
    return files, problems


def _build_one(
    raw: Mapping[str, Any],
    name: str,
    cmd: str,
    loc: Location,
    source: str,
    catalog: Catalog,
    problems: list[Problem],
    has_variant: bool = False,
) -> Query | None:
    text = str(raw["text"])
    raw_params = sorted(raw.get("params") or [], key=lambda p: int(p["number"]))
    names = _param_names(raw_params)
    params: list[Param] = []
    for pname, p in zip(names, raw_params, strict=True):
        col = p["column"]
        ptype = _pg_type(col, catalog)
        is_slice = bool(col.get("is_sqlc_slice"))
        if is_slice:
            ptype = PgType(ptype.name, ptype.array_dims + 1)
        message = _check_type(ptype, catalog, f"parameter {pname}")
        if message:
            problems.append(Problem(loc.file, loc.line, loc.col, f"query {name}: {message}"))
        params.append(Param(int(p["number"]), pname, ptype, not col.get("not_null"), is_slice))

    slices = {p.number for p in params if p.is_slice}
    # PostgreSQL: sqlc.slice expands to IN ($n); a list binds as an array to = ANY($n).
    pg_sql = _SLICE_IN.sub(
        lambda m: f"= ANY(${m.group(1)})" if int(m.group(1)) in slices else m.group(0), text
    )
    try:
        tree = sqlglot.parse_one(text, read="postgres")
    except ParseError as exc:
        problems.append(
            Problem(
                loc.file, loc.line, loc.col, f"query {name}: cannot parse for translation: {exc}"
            )
        )
        return None

    columns = [
        ResultColumn(
            naming.snake(str(c["name"]) or f"column_{i + 1}"),
            _pg_type(c, catalog),
            not c.get("not_null"),
        )
        for i, c in enumerate(raw.get("columns") or [])
    ]
    columns = _repair_columns(columns, tree, catalog)
    seen: set[str] = set()
    for col in columns:
        message = _check_type(col.type, catalog, f"result column {col.name}")
        if message:
            problems.append(Problem(loc.file, loc.line, loc.col, f"query {name}: {message}"))
        if col.name in seen:
            problems.append(
                Problem(
                    loc.file,
                    loc.line,
                    loc.col,
                    f"query {name}: duplicate result column {col.name!r}; give it an alias",
                )
            )
        seen.add(col.name)

    ctx = sqlite.Context(
        list_params=frozenset(p.number for p in params if p.is_slice or p.type.array_dims),
        not_null=_not_null_columns(tree, catalog),
        enums=_enum_columns(tree, catalog),
        json_columns=_json_columns(tree, catalog),
    )
    try:
        sqlite_sql = "" if has_variant else sqlite.render(sqlite.translate(tree, ctx))
    except sqlite.Untranslatable as exc:
        line, col = _locate(source, exc.construct, loc.line)
        problems.append(Problem(loc.file, line, col, f"query {name}: {exc}"))
        return None

    model_table = _model_table(raw, columns, catalog)
    insert = raw.get("insert_into_table")
    insert_table = str(insert["name"]) if insert else None
    insert_columns: tuple[str, ...] = ()
    if cmd == ":copyfrom":
        if not isinstance(tree, exp.Insert) or insert_table is None:
            problems.append(
                Problem(
                    loc.file,
                    loc.line,
                    loc.col,
                    f"query {name}: :copyfrom needs INSERT INTO t (cols) VALUES",
                )
            )
            return None
        schema = tree.this
        insert_columns = (
            tuple(i.name for i in schema.expressions) if isinstance(schema, exp.Schema) else ()
        )
        values = tree.expression
        row = values.expressions[0] if isinstance(values, exp.Values) else None
        plain = row is not None and [sqlite._param_number(e) for e in row.expressions] == list(
            range(1, len(params) + 1)
        )
        if not plain or len(insert_columns) != len(params) or tree.args.get("returning"):
            problems.append(
                Problem(
                    loc.file,
                    loc.line,
                    loc.col,
                    f"query {name}: :copyfrom takes one VALUES row of plain "
                    "parameters $1..$n, one per listed column",
                )
            )
            return None
    if cmd == ":batchexec" and columns:
        problems.append(
            Problem(
                loc.file,
                loc.line,
                loc.col,
                f"query {name}: :batchexec runs a statement per row and "
                "returns nothing; drop RETURNING or use :many",
            )
        )
    if cmd in (":one", ":many") and not columns:
        problems.append(
            Problem(
                loc.file,
                loc.line,
                loc.col,
                f"query {name}: {cmd} needs a statement that returns columns",
            )
        )
    comments = tuple(str(c).strip() for c in raw.get("comments") or [])
    row_count = tuple(
        sorted(
            {
                n
                for key in ("limit", "offset")
                for clause in tree.find_all(exp.Limit if key == "limit" else exp.Offset)
                for node in clause.walk()
                if (n := sqlite._param_number(node)) is not None
            }
        )
    )
    return Query(
        name,
        cmd,
        loc,
        comments,
        pg_sql,
        sqlite_sql,
        tuple(params),
        tuple(columns),
        _is_readonly(tree),
        model_table,
        insert_table,
        insert_columns,
        row_count,
    )


def _reads_only(sql: str) -> bool:
    first = re.match(r"\s*(\w+)", re.sub(r"--[^\n]*", "", sql))
    return first is not None and first.group(1).upper() in ("SELECT", "WITH", "VALUES")


def _model_table(
    raw: Mapping[str, Any], columns: list[ResultColumn], catalog: Catalog
) -> str | None:
    """The table whose model a row maps to, when the columns are exactly that table's."""
    tables = {(c.get("table") or {}).get("name") for c in raw.get("columns") or []}
    if len(tables) != 1:
        return None
    table = catalog.table(str(next(iter(tables))))
    if table is None or len(table.columns) != len(columns):
        return None
    for tc, rc in zip(table.columns, columns, strict=True):
        if tc.name != rc.name or tc.type != rc.type or tc.not_null == rc.nullable:
            return None
    return table.name
