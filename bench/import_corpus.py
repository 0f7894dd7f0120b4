"""The import corpus, case by case (``python -m bench.import_corpus``): each case of
``tests/migrate_data/corpus.py`` imported on its own, then its data copied into a scratch
SQLite database of the imported schema and into a fresh PostgreSQL database, both
verified. Prints per case: tables, columns and the types they got (with the guesses
listed), rows copied, converted (by rule) and rejected on each target, and the time.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import asyncpg

from aragora_repos.drift import ExpectedColumn, ExpectedSchema, ExpectedTable
from aragora_repos.tools.import_sqlite import import_sqlite
from aragora_repos.tools.migrate_data import migrate_data
from aragora_repos.tools.migrate_data.report import DataMigrationReport
from aragora_repos.tools.migrate_data.sqlite_target import copy_into_sqlite
from codegen.analysis.schema import analyse_schema
from codegen.render.schema import expected_tables
from tests.migrate_data import corpus


def _expected(sql: str) -> tuple[ExpectedSchema, tuple[str, ...]]:
    catalog, migrations = analyse_schema({"0001_import.sql": sql})
    tables = tuple(
        ExpectedTable(
            t.name,
            tuple(
                ExpectedColumn(
                    c.name, c.pg_type, c.array_dims, c.sqlite_type, c.not_null, c.sqlite_rowid
                )
                for c in t.columns
            ),
            t.indexes,
        )
        for t in expected_tables(catalog)
    )
    return ExpectedSchema(1, tables), migrations[0].up.sqlite


def _summary(report: DataMigrationReport) -> dict[str, object]:
    rules: dict[str, int] = {}
    for table in report.tables.values():
        for column in table.conversions.values():
            for rule, n in column.items():
                rules[rule] = rules.get(rule, 0) + n
    return {
        "copied": report.total_migrated,
        "rejected": report.total_errors,
        "verified": report.verified,
        "converted": rules,
        "seconds": round(report.seconds, 3),
    }


async def main(dsn: str) -> list[dict[str, object]]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in corpus.CASES:
            case = Path(tmp) / name
            case.mkdir()
            source = corpus.build(case, name)
            result = import_sqlite(source)
            up = result.sql.split("-- migrate:down")[0]
            expected, sqlite_ddl = _expected(result.sql)
            target = case / "target.db"
            db = sqlite3.connect(target)
            for statement in sqlite_ddl:
                db.execute(statement)
            db.commit()
            db.close()
            lite = copy_into_sqlite(source, target, expected, verify=True)
            admin = await asyncpg.connect(dsn)
            database = f"bench_corpus_{os.getpid()}_{name}"
            try:
                await admin.execute(f'CREATE DATABASE "{database}"')
                url = dsn.rsplit("/", 1)[0] + "/" + database
                conn = await asyncpg.connect(url)
                try:
                    await conn.execute(up)
                finally:
                    await conn.close()
                pg = await migrate_data(source, url, verify=True)
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                await admin.close()
            columns = {
                f"{t.name}.{c.name}": c.pg_type + "[]" * c.array_dims
                for t in expected.tables
                for c in t.columns
            }
            out.append(
                {
                    "case": name,
                    "tables": len(result.tables),
                    "rows": sum(corpus.row_counts(source).values()),
                    "columns": columns,
                    "guesses": result.guesses,
                    "sqlite": _summary(lite),
                    "postgres": _summary(pg),
                }
            )
    return out


if __name__ == "__main__":
    started = time.perf_counter()
    dsn = os.environ.get(
        "ARAGORA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    print(json.dumps(asyncio.run(main(dsn)), indent=2))
