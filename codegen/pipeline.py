"""The generator, top to bottom.

The stages run in this order:

1. analysis: config, lint, sqlc (its JSON parsed into the typed records of
   :mod:`codegen.model.sqlc`), the schema (each migration with its SQLite statements),
   the SQLite variants;
2. model: the query IR, with what the SQLite rules will need to know of each query;
3. dialects: each query's SQLite text (translation or variant), then verification of
   every migration and query on a real SQLite database, and, when a server is named, on
   a scratch PostgreSQL database (each statement prepared, its types compared);
4. render: the IR into files; 5. writer (the caller): all files or none.

Imports run one way, downwards: ``model`` (the IR, sqlc's records, the query builder)
imports no other stage; ``dialects`` imports ``model``; ``analysis`` imports ``model``
and the dialect's DDL; ``render`` imports ``model`` and the dialect's storage forms;
only this module imports them all. Every stage reports to one :class:`Problems`
collector, and every stage that can still run does, so one run reports every problem:
the queries sqlc refuses are left out of a second sqlc run, and the rest go on through
translation and verification; a problem sqlc finds in the schema stops the run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlglot

from .analysis.lint import lint_sources
from .analysis.schema import load_schema, read_migrations
from .analysis.sqlc import (
    query_locations,
    read_queries,
    run_sqlc_around,
    sqlc_version,
    start_sqlc,
)
from .analysis.variants import start_variants
from .config import Config, Entry, load_config
from .dialects.queries import translate_queries
from .dialects.verify import verify
from .dialects.verify_postgres import verify_postgres
from .errors import CodegenError, Problems
from .format import format_files
from .model.build import build_queries
from .model.ir import Catalog, Migration, Project
from .model.sqlc import SqlcRequest
from .render import render


def generate(root: Path, config: Config | None = None) -> dict[str, str]:
    """Return every generated file, relative to the output directory, for the project at
    ``root`` (one package per ``sql`` entry of its ``sqlc.yaml``); raise CodegenError."""
    # sqlglot logs "Falling back to parsing as a 'Command'" for statements it reads only
    # as text; the problem each becomes is reported with its place instead.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    config = config or load_config(root)
    problems = Problems()
    # sqlc runs while the sources are linted and the schema is read (two cores).
    sqlc = start_sqlc(config.root)
    try:
        for entry in config.entries:
            problems.extend(
                lint_sources(read_migrations(root, entry.schema_dir), read_queries(root, entry))
            )
        problems.raise_if_any()
        schemas: dict[str, tuple[Catalog, tuple[Migration, ...]]] = {}
        for entry in config.entries:
            try:
                schemas[entry.schema_dir] = load_schema(root, entry.schema_dir)
            except CodegenError as schema_problems:
                problems.extend(schema_problems.problems)
    except BaseException:
        sqlc.kill()
        sqlc.communicate()
        raise
    try:
        requests, refused = run_sqlc_around(config, sqlc)
        problems.extend(refused)  # the other queries still go through every stage
    except CodegenError as exc:
        # sqlc's problems stop the run; the schema's own (which need no sqlc) are reported
        # with them, so one run shows every problem it can find.
        problems.extend(exc.problems)
        problems.raise_if_any()
        raise
    if len(schemas) < len(config.entries):
        problems.raise_if_any()  # a schema that did not load: nothing more to analyse
    files: dict[str, str] = {}
    for entry, request in zip(config.entries, requests, strict=True):
        files.update(_package(root, entry, request, schemas[entry.schema_dir], problems))
    problems.raise_if_any()
    return format_files(files, config.packages)


def _package(
    root: Path,
    entry: Entry,
    request: SqlcRequest,
    schema: tuple[Catalog, tuple[Migration, ...]],
    problems: Problems,
) -> dict[str, str]:
    catalog, migrations = schema
    locations = query_locations(root, entry.queries_dir)
    # sqlc's SQLite engine reads the variants while the queries are built (two cores).
    pending = start_variants(root, entry.queries_dir, migrations)
    try:
        built = build_queries(request, catalog, locations, entry.queries_dir, problems)
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise
    variants = {} if pending is None else pending.finish(catalog)
    files = translate_queries(built, catalog, variants, entry.queries_dir, problems)
    sqlite_schema = verify(migrations, files, problems)
    verify_postgres(migrations, files, problems)
    if problems:
        return {}
    versions = {
        "sqlc": request.sqlc_version or sqlc_version(),
        "sqlglot": sqlglot.__version__,  # type: ignore[attr-defined]
    }
    project = Project(catalog, migrations, files, versions, sqlite_schema=sqlite_schema)
    return render(project, package=entry.package, schema_out=entry.schema_out)
