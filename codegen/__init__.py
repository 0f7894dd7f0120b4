"""Generator: from PostgreSQL schema and sqlc-annotated queries to typed repositories.

The pipeline reads top to bottom in :func:`codegen.pipeline.run`: load config, analyse
(sqlc + sqlglot), build the model, translate to SQLite, verify, render, write or diff.
Only :mod:`codegen.analysis` and :mod:`codegen.writer` do I/O.
"""
