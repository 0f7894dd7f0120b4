"""SQLite variants: ``sql/queries/sqlite/<file>.sql`` holds hand-written SQLite versions of
queries whose meaning one statement cannot carry on both dialects (full-text search, JSON
operators).

Each variant is analysed by sqlc's SQLite engine against the translated schema, so it is
checked like any query; the SQLite stage (:mod:`codegen.dialects.queries`) then proves
it has the same parameters and result columns, with the same Python types, as the
PostgreSQL query of the same name.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from aragora_repos.backends.sqlite.functions import install

from ..errors import CodegenError, Problem
from ..model import naming
from ..model.ir import Catalog, Migration, Variant
from ..model.sqlc import SqlcColumn, SqlcRequest
from ..model.types import py_type
from .sqlc import DIAGNOSTIC, query_locations, sqlc_binary

VARIANT_DIR = "sqlite"

#: sqlc's SQLite type names -> the Python type a value of that storage class decodes to.
_STORAGE_PY = {"integer": "int", "int": "int", "real": "float", "text": "str", "blob": "bytes"}


def variant_dir(root: Path, queries_dir: str) -> Path:
    return root / queries_dir / VARIANT_DIR


def _sqlc_schema(migrations: Sequence[Migration]) -> str:
    """The final SQLite tables (virtual ones included, FTS5 shadow tables left out)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    install(conn)  # the runtime's SQL functions (aragora_now, ...)
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


def _py_of(raw: SqlcColumn, catalog: Catalog) -> str | None:
    """The Python type of a sqlc SQLite column: the catalog column's when sqlc traced it to
    one (a TEXT column may hold timestamps), else the storage class's."""
    source = catalog.table(raw.table) if raw.table else None
    column = source.column(raw.original_name) if source else None
    if column is not None:
        return py_type(column.type, catalog.enum_names())
    return _STORAGE_PY.get(raw.type_name.lower())


class VariantRun:
    """sqlc's SQLite engine at work on the variant files, in a scratch directory: started
    by :func:`start_variants` so that it runs beside the rest of the generator."""

    def __init__(
        self, root: Path, queries_dir: str, files: list[Path], migrations: Sequence[Migration]
    ) -> None:
        self.root = root
        self.rel_dir = f"{queries_dir}/{VARIANT_DIR}"
        self._scratch = tempfile.TemporaryDirectory(prefix="aragora-variants-")
        work = self.work = Path(self._scratch.name)
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
        self._proc = subprocess.Popen(
            [sqlc_binary(), "generate", "-f", "sqlc.yaml"],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def cancel(self) -> None:
        self._proc.kill()
        self._proc.communicate()
        self._scratch.cleanup()

    def finish(self, catalog: Catalog) -> dict[tuple[str, str], Variant]:
        try:
            out, err = self._proc.communicate()
            if self._proc.returncode != 0:
                raise CodegenError(_problems(err + out, self.rel_dir))
            request = SqlcRequest.parse(
                json.loads((self.work / "out" / "request.json").read_text(encoding="utf-8"))
            )
        finally:
            self._scratch.cleanup()
        return _variants(self.root, self.rel_dir, request, catalog)


def start_variants(
    root: Path, queries_dir: str, migrations: Sequence[Migration]
) -> VariantRun | None:
    """Start sqlc on the variant files, or None when there are none."""
    directory = variant_dir(root, queries_dir)
    files = sorted(directory.glob("*.sql")) if directory.is_dir() else []
    return VariantRun(root, queries_dir, files, migrations) if files else None


def _variants(
    root: Path, rel_dir: str, request: SqlcRequest, catalog: Catalog
) -> dict[tuple[str, str], Variant]:
    locations = {
        key: value
        for key, value in query_locations(root, rel_dir).items()
        if value[0].startswith(rel_dir + "/")
    }
    out: dict[tuple[str, str], Variant] = {}
    for raw in request.queries:
        filename = PurePosixPath(raw.filename).name
        name = raw.name
        rel, line, _ = locations.get((filename, name), (f"{rel_dir}/{filename}", 1, ""))
        params = tuple(
            (
                p.number,
                naming.snake(p.column.name or f"arg{p.number}"),
                _py_of(p.column, catalog),
            )
            for p in raw.params
        )
        columns = tuple(
            (naming.snake(c.name), _py_of(c, catalog), not c.not_null) for c in raw.columns
        )
        stem = naming.snake(PurePosixPath(filename).stem)
        out[(stem, name)] = Variant(name, rel, line, raw.text, params, columns)
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
