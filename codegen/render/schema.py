"""Text of the schema for the generated package and the review: the expected tables
(drift detection), migration sections as Python literals, the PostgreSQL snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from ..analysis import append_only
from ..dialects import sqlite_ddl
from ..model.ir import Catalog, Section, Table

_TYPNAMES = {
    "varchar": "varchar",
    "character varying": "varchar",
    "char": "bpchar",
    "character": "bpchar",
    "bpchar": "bpchar",
    "name": "name",
    "citext": "citext",
}


@dataclass(frozen=True)
class ExpectedColumnSpec:
    name: str
    pg_type: str
    array_dims: int
    sqlite_type: str
    not_null: bool
    sqlite_rowid: bool


@dataclass(frozen=True)
class ExpectedTableSpec:
    name: str
    columns: tuple[ExpectedColumnSpec, ...]
    indexes: tuple[str, ...]


def expected_tables(catalog: Catalog) -> list[ExpectedTableSpec]:
    """Column types as ``pg_type.typname`` and SQLite's declared storage, per table."""
    enums = {e.name for e in catalog.enums}
    out = []
    for table in sorted(catalog.tables, key=lambda t: t.name):
        cols = []
        for c in table.columns:
            raw = c.pg_type_sql.split("(")[0].removesuffix("[]").strip()
            rowid = c.identity and table.primary_key == (c.name,)
            storage = "BLOB" if c.encrypted else sqlite_ddl.storage_of(c.type, enums)
            cols.append(
                ExpectedColumnSpec(
                    c.name,
                    "bytea" if c.encrypted else _TYPNAMES.get(raw, c.type.name),
                    c.type.array_dims,
                    storage,
                    c.not_null,
                    rowid,
                )
            )
        indexes = tuple(sorted(i.name for i in catalog.indexes if i.table == table.name))
        out.append(ExpectedTableSpec(table.name, tuple(cols), indexes))
    return out


def section(section: Section) -> str:
    def statements(items: tuple[str, ...]) -> str:
        return "(" + "".join(f"{literal(s)}, " for s in items) + ")"

    flags = ""
    if not section.transactional:
        flags += ", transactional=False"
    if section.sqlite_rebuild:
        flags += ", sqlite_rebuild=True"
    if section.crypts:
        steps = "".join(
            f"Crypt({c.table!r}, {c.column!r}, {c.row_key!r}, seal={c.seal}, "
            f"postgres_at={c.postgres_at}, sqlite_at={c.sqlite_at}"
            f"{', deterministic=True' if c.deterministic else ''}), "
            for c in section.crypts
        )
        flags += f", crypts=({steps})"
    return (
        f"Section(postgres={statements(section.postgres)}, "
        f"sqlite={statements(section.sqlite)}{flags})"
    )


def literal(sql: str) -> str:
    """``sql`` as a triple-quoted Python literal that reads back exactly: backslashes, a
    run of three quotes, a quote at the very end (``DROP TABLE "X"``), carriage returns
    (which Python would read as newlines) and NULs escaped."""
    body = sql.replace("\\", "\\\\").replace("\r", "\\r").replace("\x00", "\\x00")
    if body.endswith('"'):
        body = body[:-1] + '\\"'
    body = body.replace('"""', '\\"\\"\\"')
    return f'"""{body}"""'


def dependency_order(tables: tuple[Table, ...]) -> tuple[list[Table], set[tuple[str, int]]]:
    """The tables with every table after those its foreign keys reference (the smallest
    name first among those that may come next, so the order is deterministic), and the
    keys that close a cycle, as (table, key position): those are added after every table
    exists."""
    by_name = {t.name: t for t in tables}
    needs = {
        t.name: {fk.ref_table for fk in t.foreign_keys if fk.ref_table in by_name} - {t.name}
        for t in tables
    }
    order: list[Table] = []
    created: set[str] = set()
    deferred: set[tuple[str, int]] = set()
    while needs:
        ready = [n for n, wanted in needs.items() if wanted <= created]
        name = min(ready) if ready else min(needs)  # none ready: a cycle, broken here
        table = by_name[name]
        for at, fk in enumerate(table.foreign_keys):
            if fk.ref_table in by_name and fk.ref_table != name and fk.ref_table not in created:
                deferred.add((name, at))
        order.append(table)
        created.add(name)
        del needs[name]
    return order, deferred


def postgres_schema(catalog: Catalog) -> str:
    """The resulting PostgreSQL schema, deterministic, for review in pull requests, in an
    order ``psql -f`` applies to an empty database: types, then tables after the tables
    they reference (keys closing a cycle added afterwards), then indexes."""
    parts: list[str] = []
    for enum in sorted(catalog.enums, key=lambda e: e.name):
        values = ", ".join(exp.Literal.string(v).sql("postgres") for v in enum.values)
        parts.append(f"CREATE TYPE {enum.name} AS ENUM ({values});")
    tables, deferred = dependency_order(catalog.tables)
    for table in tables:
        lines = []
        for c in table.columns:
            line = f"{c.name} {c.pg_type_sql}"
            if c.not_null and not c.identity:
                line += " NOT NULL"
            if c.default_pg is not None:
                line += f" DEFAULT {c.default_pg}"
            lines.append(line)
        if table.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
        lines.extend(f"UNIQUE ({', '.join(u)})" for u in table.uniques)
        lines.extend(f"CHECK ({c.postgres})" for c in table.checks)
        lines.extend(
            sqlite_ddl.foreign_key_sql(fk, str)
            for at, fk in enumerate(table.foreign_keys)
            if (table.name, at) not in deferred
        )
        body = ",\n    ".join(lines)
        parts.append(f"CREATE TABLE {table.name} (\n    {body}\n);")
    for name, at in sorted(deferred):
        fk = catalog.table(name).foreign_keys[at]  # type: ignore[union-attr]
        parts.append(f"ALTER TABLE {name} ADD {sqlite_ddl.foreign_key_sql(fk, str)};")
    parts.extend(f"{i.postgres_sql};" for i in sorted(catalog.indexes, key=lambda i: i.name))
    guarded = [t for t in sorted(catalog.tables, key=lambda t: t.name) if t.append_only]
    for at, table in enumerate(guarded):
        assert table.append_only is not None
        statements = append_only.postgres_sql(table.name, table.append_only)
        parts.extend(f"{sql};" for sql in (statements if at == 0 else statements[1:]))
    return "\n\n".join(parts) + "\n"
