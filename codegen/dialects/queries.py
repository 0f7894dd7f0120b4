"""The SQLite stage for queries: each query's SQLite text, by translation or variant.

A query without a hand-written variant is translated by the named rules of
:mod:`codegen.dialects.sqlite` from sqlc's text and the hints the model stage recorded;
a construct no rule carries is reported on the line and column it stands on. A query
with a variant (``sql/queries/sqlite/``) takes the variant's text once
:func:`apply_variant` has shown both have the same parameters and result columns.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import replace

from ..errors import Problems
from ..model.ir import Catalog, Query, QueryFile, Variant
from ..model.nodes import parse_postgres
from ..model.types import py_type
from . import sqlite


def translate_queries(
    files: Sequence[QueryFile],
    catalog: Catalog,
    variants: Mapping[tuple[str, str], Variant],
    queries_dir: str,
    problems: Problems,
) -> tuple[QueryFile, ...]:
    """Every query with its SQLite text; the ones that get none are reported and left out."""
    enums = catalog.enum_names()
    used: set[tuple[str, str]] = set()
    out: list[QueryFile] = []
    for qf in files:
        queries: list[Query] = []
        for query in qf.queries:
            variant = variants.get((qf.stem, query.name))
            if variant is None:
                translated = _translate(query, problems)
            else:
                used.add((qf.stem, query.name))
                translated = _with_variant(query, variant, enums, problems)
            if translated is not None:
                queries.append(translated)
        out.append(replace(qf, queries=tuple(queries)))
    for key, variant in sorted(variants.items()):
        if key not in used:
            problems.add(
                variant.path,
                variant.line,
                1,
                f"query {variant.name}: sqlite variant has no PostgreSQL query of that name "
                f"in {queries_dir}/{key[0]}.sql",
            )
    return tuple(qf for qf in out if qf.queries)


def _translate(query: Query, problems: Problems) -> Query | None:
    tree = parse_postgres(query.source_sql)  # translate() works on a copy
    try:
        sql = sqlite.render(sqlite.translate(tree, query.hints))
    except sqlite.Untranslatable as exc:
        loc = query.location
        line, col = locate(query.source_block, exc.construct, loc.line)
        problems.add(loc.file, line, col, f"query {query.name}: {exc}")
        return None
    return replace(query, sqlite_sql=sql)


def _with_variant(
    query: Query, variant: Variant, enums: Container[str], problems: Problems
) -> Query | None:
    result, mismatches = apply_variant(query, variant, enums)
    for m in mismatches:
        problems.add(variant.path, variant.line, 1, f"query {query.name}: sqlite variant: {m}")
    if mismatches:
        return None  # no SQLite text to verify
    if query.readonly and not _reads_only(variant.sql):
        problems.add(
            variant.path,
            variant.line,
            1,
            f"query {query.name}: sqlite variant: the PostgreSQL query only reads, "
            "so the variant must be a SELECT",
        )
    return result


def locate(source: str, construct: str, line: int) -> tuple[int, int]:
    """The line and column of ``construct`` in a query's annotated block (``line`` is the
    annotation's); the annotation itself when it cannot be found."""
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


def _reads_only(sql: str) -> bool:
    first = re.match(r"\s*(\w+)", re.sub(r"--[^\n]*", "", sql))
    return first is not None and first.group(1).upper() in ("SELECT", "WITH", "VALUES")


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?(\d+)")


def apply_variant(query: Query, variant: Variant, enums: Container[str]) -> tuple[Query, list[str]]:
    """The query with the variant as its SQLite text, or the reasons it does not match.

    Parameters match by name and Python type (the variant numbers them its own way; its
    placeholders are renumbered to the PostgreSQL query's); result columns match by
    position, name, Python type, and a variant column may not be NULL where the query's
    is not.
    """
    errors: list[str] = []
    pg_params = {p.name: p for p in query.params}
    renumber: dict[int, int] = {}
    for number, name, py in variant.params:
        target = pg_params.get(name)
        if target is None:
            errors.append(f"parameter {name} is not a parameter of the PostgreSQL query")
            continue
        want = py_type(target.type, enums)
        if py is None:
            errors.append(f"cannot infer the type of parameter {name}; add a CAST")
        elif py != want and not (target.type.array_dims and py == "str"):
            errors.append(f"parameter {name} is {py} here but {want} in the PostgreSQL query")
        renumber[number] = target.number
    missing = sorted(set(pg_params) - {name for _, name, _ in variant.params})
    if missing:
        errors.append(f"parameters missing from the variant: {', '.join(missing)}")
    if len(variant.columns) != len(query.columns):
        errors.append(
            f"returns {len(variant.columns)} columns, the PostgreSQL query {len(query.columns)}"
        )
    else:
        for (name, py, nullable), col in zip(variant.columns, query.columns, strict=True):
            want = py_type(col.type, enums)
            if name != col.name:
                errors.append(f"column {name} is {col.name} in the PostgreSQL query")
            elif py is None:
                errors.append(f"cannot infer the type of column {name}; add a CAST")
            elif py != want:
                errors.append(f"column {name} is {py} here but {want} in the PostgreSQL query")
            elif nullable and not col.nullable:
                errors.append(f"column {name} may be NULL here but not in the PostgreSQL query")
    if errors:
        return query, errors

    def swap(match: re.Match[str]) -> str:
        number = match.group(1)
        return match.group(0) if number is None else f"?{renumber[int(number)]}"

    sql = _PLACEHOLDER.sub(swap, variant.sql.strip().rstrip(";"))
    return replace(query, sqlite_sql=sql, sqlite_variant=f"{variant.path}:{variant.line}"), []
