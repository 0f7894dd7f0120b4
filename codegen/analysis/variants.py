"""SQLite variants: ``sql/queries/sqlite/<file>.sql`` holds hand-written SQLite versions of
queries whose meaning one statement cannot carry on both dialects (full-text search, JSON
operators).

Each variant is analysed by sqlc's SQLite engine against the translated schema, so it is
checked like any query; :func:`apply_variant` then proves it has the same parameters and
result columns, with the same Python types, as the PostgreSQL query of the same name.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from codegen.analysis.sqlc import DIAGNOSTIC, query_locations, sqlc_binary
from codegen.errors import CodegenError, Problem
from codegen.model import naming, types
from codegen.model.ir import Catalog, Migration, PgType, Query

VARIANT_DIR = "sqlite"

#: sqlc's SQLite type names -> the Python type a value of that storage class decodes to.
_STORAGE_PY = {"integer": "int", "int": "int", "real": "float", "text": "str", "blob": "bytes"}


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    path: str
    line: int
    sql: str
    """sqlc's text: parameters as ``?n`` numbered in order of first appearance."""
    params: tuple[tuple[int, str, str | None], ...]
    """(number, name, Python type or None when sqlc cannot tell)."""
    columns: tuple[tuple[str, str | None, bool], ...]
    """(name, Python type or None, nullable)."""


def variant_dir(root: Path, queries_dir: str) -> Path:
    return root / queries_dir / VARIANT_DIR


def _sqlc_schema(migrations: Sequence[Migration]) -> str:
    """The final SQLite tables (virtual ones included, FTS5 shadow tables left out)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for m in migrations:
            for statement in m.up.sqlite:
                conn.execute(statement)
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ).fetchall()
    finally:
        conn.close()
    virtual = [name for name, sql in rows if str(sql).startswith("CREATE VIRTUAL TABLE")]
    return "".join(
        f"{sql};\n" for name, sql in rows if not any(name.startswith(f"{v}_") for v in virtual)
    )


def _py_of(raw: Mapping[str, Any], catalog: Catalog) -> str | None:
    """The Python type of a sqlc SQLite column: the catalog column's when sqlc traced it to
    one (a TEXT column may hold timestamps), else the storage class's."""
    table = (raw.get("table") or {}).get("name")
    source = catalog.table(str(table)) if table else None
    column = source.column(str(raw.get("original_name") or raw.get("name"))) if source else None
    if column is not None:
        return py_type(column.type, catalog)
    return _STORAGE_PY.get(str(raw["type"]["name"]).lower())


def py_type(t: PgType, catalog: Catalog) -> str:
    info = types.BUILTIN.get(t.name)
    base = info.py if info is not None else naming.pascal(t.name) if catalog.enum(t.name) else "?"
    for _ in range(t.array_dims):
        base = f"list[{base}]"
    return base


def load_variants(
    root: Path, queries_dir: str, migrations: Sequence[Migration], catalog: Catalog
) -> dict[tuple[str, str], Variant]:
    """Analyse every variant file with sqlc's SQLite engine; key: (file stem, query name)."""
    directory = variant_dir(root, queries_dir)
    files = sorted(directory.glob("*.sql")) if directory.is_dir() else []
    if not files:
        return {}
    rel_dir = f"{queries_dir}/{VARIANT_DIR}"
    with tempfile.TemporaryDirectory(prefix="aragora-variants-") as tmp:
        work = Path(tmp)
        (work / "schema").mkdir()
        (work / "schema" / "schema.sql").write_text(_sqlc_schema(migrations), encoding="utf-8")
        (work / "queries").mkdir()
        for f in files:
            (work / "queries" / f.name).write_text(f.read_text(encoding="utf-8"), "utf-8")
        (work / "sqlc.yaml").write_text(
            'version: "2"\nsql:\n  - engine: "sqlite"\n    schema: "schema"\n'
            '    queries: "queries"\n    gen:\n      json:\n        out: "out"\n'
            '        filename: "request.json"\n',
            encoding="utf-8",
        )
        proc = subprocess.run(
            [sqlc_binary(), "generate", "-f", "sqlc.yaml"],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise CodegenError(_problems(proc.stderr + proc.stdout, rel_dir))
        request = json.loads((work / "out" / "request.json").read_text(encoding="utf-8"))
    locations = {
        key: value
        for key, value in query_locations(root, rel_dir).items()
        if value[0].startswith(rel_dir + "/")
    }
    out: dict[tuple[str, str], Variant] = {}
    for raw in request.get("queries") or []:
        filename = PurePosixPath(str(raw["filename"])).name
        name = str(raw["name"])
        rel, line, _ = locations.get((filename, name), (f"{rel_dir}/{filename}", 1, ""))
        params = tuple(
            (
                int(p["number"]),
                naming.snake(str(p["column"]["name"] or f"arg{p['number']}")),
                _py_of(p["column"], catalog),
            )
            for p in sorted(raw.get("params") or [], key=lambda p: int(p["number"]))
        )
        columns = tuple(
            (naming.snake(str(c["name"])), _py_of(c, catalog), not c.get("not_null"))
            for c in raw.get("columns") or []
        )
        stem = naming.snake(PurePosixPath(filename).stem)
        out[(stem, name)] = Variant(name, rel, line, str(raw["text"]), params, columns)
    return out


def _problems(output: str, rel_dir: str) -> list[Problem]:
    problems = []
    for raw in output.splitlines():
        match = DIAGNOSTIC.match(raw.strip())
        if match:
            name = PurePosixPath(match["file"]).name
            problems.append(
                Problem(
                    f"{rel_dir}/{name}",
                    int(match["line"]),
                    max(1, int(match["col"])),
                    f"sqlite variant: {match['msg']}",
                )
            )
    return problems or [Problem(rel_dir, 1, 1, f"sqlc (sqlite engine): {output.strip()}")]


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?(\d+)")


def apply_variant(query: Query, variant: Variant, catalog: Catalog) -> tuple[Query, list[str]]:
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
        want = py_type(target.type, catalog)
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
            want = py_type(col.type, catalog)
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
