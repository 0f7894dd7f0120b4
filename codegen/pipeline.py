"""The generator, top to bottom: config, analysis, model, translation, verification, render."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from codegen.analysis.lint import lint_sources
from codegen.analysis.schema import load_schema, read_migrations
from codegen.analysis.sqlc import query_locations, read_queries, run_sqlc, sqlc_version
from codegen.analysis.variants import load_variants
from codegen.config import load_config
from codegen.dialects.verify import verify
from codegen.errors import CodegenError
from codegen.format import format_files
from codegen.model.build import build_queries
from codegen.model.ir import Project
from codegen.render import render


def generate(root: Path) -> dict[str, str]:
    """Return every generated file for the project at ``root``; raise CodegenError.

    sqlc's problems stop the run (nothing else can be analysed without its result); after
    that, translation and verification problems are collected and reported together.
    """
    config = load_config(root)
    lint = lint_sources(read_migrations(root, config.schema_dir), read_queries(root, config))
    if lint:
        raise CodegenError(lint)
    request = run_sqlc(config)
    catalog, migrations = load_schema(root, config.schema_dir)
    locations = query_locations(root, config.queries_dir)
    variants = load_variants(root, config.queries_dir, migrations, catalog)
    files, problems = build_queries(request, catalog, locations, config.queries_dir, variants)
    sqlite_schema = verify(migrations, files, problems)
    if problems:
        raise CodegenError(sorted(problems))
    versions = {
        "sqlc": str(request.get("sqlc_version") or sqlc_version()),
        "sqlglot": version("sqlglot"),
    }
    project = Project(catalog, migrations, files, versions, sqlite_schema=sqlite_schema)
    return format_files(render(project))
