"""``python -m codegen.fk_indexes [--root DIR]``: every foreign key has an index.

A foreign key whose columns do not lead some index (a plain index, the primary key or a
unique constraint) makes each delete or key update of a parent row scan the child table
(``ON DELETE CASCADE``/``SET NULL``, and the check that no child is left), on PostgreSQL
and SQLite alike. Each such key is reported at its table's ``CREATE TABLE`` as
``file:line:col``, with the index to create, unless a schema file marks it as intended::

    -- unindexed foreign key: audit_log (user_id): rows are never deleted

Part of ``make check``; exit 1 when anything is reported.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .analysis.schema import analyse_schema, read_migrations
from .config import load_config
from .errors import CodegenError, Problem
from .model.ir import Catalog

MARK = re.compile(
    r"--\s*unindexed foreign key:\s*(?P<table>[\w.\"]+)\s*\((?P<columns>[^)]*)\)", re.IGNORECASE
)


def _names(text: str) -> tuple[str, ...]:
    return tuple(c.strip().strip('"') for c in text.split(",") if c.strip())


def marked(files: dict[str, str]) -> set[tuple[str, tuple[str, ...]]]:
    """The foreign keys the schema files mark as intended: (table, columns)."""
    return {
        (m.group("table").strip('"'), _names(m.group("columns")))
        for text in files.values()
        for m in MARK.finditer(text)
    }


def unindexed(catalog: Catalog, intended: set[tuple[str, tuple[str, ...]]]) -> list[Problem]:
    """A problem for each foreign key no index leads with, unless it is ``intended``."""
    leading: dict[str, list[tuple[str, ...]]] = {}
    for table in catalog.tables:
        keys = [table.primary_key, *table.uniques]
        leading.setdefault(table.name, []).extend(k for k in keys if k)
    for index in catalog.indexes:
        if index.leading:
            leading.setdefault(index.table, []).append(index.leading)
    problems = []
    for table in catalog.tables:
        for fk in table.foreign_keys:
            width = len(fk.columns)
            if any(set(cols[:width]) == set(fk.columns) for cols in leading.get(table.name, [])):
                continue
            if (table.name, fk.columns) in intended:
                continue
            columns = ", ".join(fk.columns)
            problems.append(
                Problem(
                    table.location.file,
                    table.location.line,
                    table.location.col,
                    f"foreign key {table.name} ({columns}) -> {fk.ref_table} has no index "
                    f"leading with its columns: deleting a {fk.ref_table} row scans "
                    f"{table.name}. Add `CREATE INDEX ON {table.name} ({columns});`, or mark "
                    f"it intended: `-- unindexed foreign key: {table.name} ({columns}): why`",
                )
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen.fk_indexes")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project directory")
    args = parser.parse_args(argv)
    problems: list[Problem] = []
    try:
        config = load_config(args.root)
        for entry in config.entries:
            files = read_migrations(args.root, entry.schema_dir)
            catalog, _ = analyse_schema(files)
            problems += unindexed(catalog, marked(files))
    except CodegenError as exc:
        problems = list(exc.problems)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} foreign key(s) without an index", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
