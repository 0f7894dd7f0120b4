"""Drift detection: compare a live database with the schema the migrations describe.

The generator writes the expected schema (``aragora_db.schema.EXPECTED``); here the
database is introspected through ``pg_catalog`` on PostgreSQL and pragmas on SQLite
(pragma.html#pragma_table_xinfo), and every difference is reported.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from aragora_repos.backends.base import Backend
from aragora_repos.backends.postgres import PostgresDatabase
from aragora_repos.backends.sqlite import AsyncSqliteDatabase, SqliteConnection
from aragora_repos.errors import MigrationError

SKIP_VARIABLE = "ARAGORA_SKIP_SCHEMA_VALIDATION"
#: Tables the runtime and migrate-data keep for themselves in a SQLite database.
_BOOKKEEPING = {"schema_version", "aragora_migrate_progress", "aragora_migrate_rejects"}
_FTS_CONTENT = re.compile(r"content\s*=\s*'([^']+)'")


@dataclass(frozen=True, slots=True)
class ExpectedColumn:
    name: str
    pg_type: str
    """Base type name as in ``pg_type.typname`` (``int8``, ``timestamptz``, an enum)."""
    array_dims: int
    sqlite_type: str
    not_null: bool
    sqlite_rowid: bool = False
    """An INTEGER PRIMARY KEY: SQLite reports it nullable, as the rowid alias."""


@dataclass(frozen=True, slots=True)
class ExpectedTable:
    name: str
    columns: tuple[ExpectedColumn, ...]
    indexes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExpectedSchema:
    version: int | None
    tables: tuple[ExpectedTable, ...]


@dataclass(frozen=True, slots=True)
class LiveColumn:
    name: str
    type: str
    array_dims: int
    not_null: bool


@dataclass(frozen=True)
class ValidationResult:
    """What :func:`validate_schema` found: errors make ``success`` false."""

    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def success(self) -> bool:
        return not self.errors

    def render(self) -> str:
        if self.success and not self.warnings:
            return "schema ok: the database matches sql/schema"
        lines = [f"error: {e}" for e in self.errors] + [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


@dataclass
class _Live:
    tables: dict[str, list[LiveColumn]] = field(default_factory=dict)
    indexes: dict[str, str] = field(default_factory=dict)  # name -> table
    version: int | None = None


async def _live_postgres(db: PostgresDatabase) -> _Live:
    live = _Live()
    rows = await db.fetch(
        "SELECT c.relname, a.attname, t.typname, a.attndims, a.attnotnull, t.typcategory = 'A', "
        "et.typname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid "
        "LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A' "
        "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY c.relname, a.attnum",
        (),
    )
    for table, column, typname, ndims, not_null, is_array, element in rows:
        live.tables.setdefault(table, []).append(
            LiveColumn(
                column, element if is_array else typname, max(ndims, 1) if is_array else 0, not_null
            )
        )
    for name, table in await db.fetch(
        "SELECT i.relname, c.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND NOT EXISTS (SELECT 1 FROM pg_constraint k "
        "WHERE k.conindid = x.indexrelid)",
        (),
    ):
        live.indexes[name] = table
    live.version = await db.schema_version()
    return live


def _live_sqlite(conn: SqliteConnection) -> _Live:
    live = _Live()
    tables = [
        r[0]
        for r in conn.fetchall(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
            "ESCAPE '\\' ORDER BY name",
            (),
        )
    ]
    # A full-text index is an FTS5 table (plus shadow tables) over its content table.
    for name, sql in conn.fetchall(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'table' "
        "AND sql LIKE 'CREATE VIRTUAL TABLE%USING fts5(%'",
        (),
    ):
        content = _FTS_CONTENT.search(str(sql))
        live.indexes[name] = content.group(1) if content else name
        tables = [t for t in tables if t != name and not t.startswith(f"{name}_")]
    for table in tables:
        live.tables[table] = [
            LiveColumn(r[1], str(r[2]).upper(), 0, bool(r[3]))
            for r in conn.fetchall("SELECT * FROM pragma_table_xinfo(?)", (table,))
        ]
    for name, table in conn.fetchall(
        "SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL", ()
    ):
        live.indexes[name] = table
    live.version = conn.schema_version()
    return live


def compare(expected: ExpectedSchema, live: _Live, dialect: str) -> ValidationResult:
    errors: list[str] = []
    warnings: list[str] = []
    if live.version != expected.version:
        errors.append(
            f"database is at version {live.version}, migrations end at "
            f"{expected.version}: run `aragora-repos migrate --migrate`"
            if (live.version or 0) < (expected.version or 0)
            else f"database is at version {live.version}, newer than the code's {expected.version}"
        )
    known = {t.name for t in expected.tables}
    for table in expected.tables:
        columns = {c.name: c for c in live.tables.get(table.name, [])}
        if table.name not in live.tables:
            errors.append(f"table {table.name} is missing")
            continue
        for col in table.columns:
            found = columns.pop(col.name, None)
            if found is None:
                errors.append(f"column {table.name}.{col.name} is missing")
                continue
            want = (col.pg_type, col.array_dims) if dialect == "postgres" else (col.sqlite_type, 0)
            if (found.type, found.array_dims) != want:
                shown = want[0] + "[]" * want[1]
                errors.append(
                    f"column {table.name}.{col.name} has type "
                    f"{found.type + '[]' * found.array_dims}, expected {shown}"
                )
            nullable_ok = dialect == "sqlite" and col.sqlite_rowid
            if found.not_null != col.not_null and not nullable_ok:
                errors.append(
                    f"column {table.name}.{col.name} is "
                    f"{'NOT NULL' if found.not_null else 'nullable'}, expected "
                    f"{'NOT NULL' if col.not_null else 'nullable'}"
                )
        warnings.extend(f"column {table.name}.{extra} is not in sql/schema" for extra in columns)
        for index in table.indexes:
            if live.indexes.get(index) != table.name:
                errors.append(f"index {index} on {table.name} is missing")
    for table_name in sorted(set(live.tables) - known - _BOOKKEEPING):
        warnings.append(f"table {table_name} is not in sql/schema")
    expected_indexes = {i for t in expected.tables for i in t.indexes}
    for index, table_name in sorted(live.indexes.items()):
        if index not in expected_indexes and table_name not in _BOOKKEEPING:
            warnings.append(f"index {index} on {table_name} is not in sql/schema")
    return ValidationResult(tuple(errors), tuple(warnings))


async def validate_schema(
    db: Backend, expected: ExpectedSchema, *, versions: bool = True
) -> ValidationResult:
    """Compare the live database with the expected schema; never raises for drift.
    ``versions=False`` compares the tables only, not the recorded migration version
    (for ``migrate stamp``, which records it)."""
    if isinstance(db, PostgresDatabase):
        live = await _live_postgres(db)
    elif isinstance(db, AsyncSqliteDatabase):
        live = await db.run(_live_sqlite, db.connection)
    else:
        raise TypeError(f"cannot read the schema of {type(db).__name__}")
    if not versions:
        live.version = expected.version
    return compare(expected, live, db.kind.value)


async def check_at_startup(db: Backend, expected: ExpectedSchema) -> ValidationResult:
    """Validate unless ``ARAGORA_SKIP_SCHEMA_VALIDATION`` is set; raise on errors."""
    if os.environ.get(SKIP_VARIABLE, "").strip().lower() in ("1", "true", "yes"):
        return ValidationResult(warnings=(f"schema validation skipped ({SKIP_VARIABLE})",))
    result = await validate_schema(db, expected)
    if not result.success:
        raise MigrationError(
            "cannot start: the database schema differs from sql/schema:\n"
            + "\n".join(result.errors)
        )
    return result
