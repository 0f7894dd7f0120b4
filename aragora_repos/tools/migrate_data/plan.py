"""Planning a copy: the tables both sides share, their columns, order and keys."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg

from aragora_repos import errors
from aragora_repos.tools.convert import (
    TargetColumn,
    UnsupportedType,
    converter,
)
from aragora_repos.tools.migrate_data.state import SKIPPED_TABLES, quote

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]


@dataclass(slots=True)
class TablePlan:
    name: str
    columns: list[TargetColumn]
    order_by: list[str]
    """``rowid``, or the primary key of a WITHOUT ROWID table."""
    key_columns: list[str]
    """Columns that identify a row in the reject file (the primary key, else rowid)."""
    serial: list[tuple[str, str]] = field(default_factory=list)
    """(column, sequence) pairs to move past the copied keys."""
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    """Single-column keys to other tables: orphans are found by one query per batch
    instead of by splitting a refused COPY."""
    later_parents: set[str] = field(default_factory=set)
    """Parent tables copied after this one (a foreign-key cycle): a row whose parent the
    source holds waits for it rather than being refused as an orphan."""
    self_keys: list[str] = field(default_factory=list)
    """Constraint names of foreign keys from the table to itself: a row refused by one of
    them waits until the rest of the table is in (its parent may come later)."""
    parents: set[str] = field(default_factory=set)
    """Every other table a foreign key of this one references (single-column or not):
    its copy starts once theirs are done (see :func:`fk_order`)."""


@dataclass(slots=True)
class Plan:
    tables: list[TablePlan]
    unmatched: list[str]
    dropped: dict[str, list[str]]
    left_behind: dict[str, int] = field(default_factory=dict)


def _count(db: sqlite3.Connection, sql: str) -> int:
    return int(db.execute(sql).fetchone()[0])


def _source_tables(db: sqlite3.Connection) -> dict[str, tuple[list[str], list[str], bool]]:
    """name -> (columns, primary key columns, has rowid)."""
    found: dict[str, tuple[list[str], list[str], bool]] = {}
    rows = db.execute(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    virtual = [n for n, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL TABLE")]
    for name, sql in rows:
        if name in SKIPPED_TABLES or any(name == v or name.startswith(v + "_") for v in virtual):
            continue  # bookkeeping, full-text indexes and their shadow tables
        info = db.execute(f"PRAGMA table_info({quote(name)})").fetchall()
        columns = [r[1] for r in info]
        pk = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        rowid = "WITHOUT ROWID" not in " ".join((sql or "").upper().split())
        found[name] = (columns, pk, rowid)
    return found


async def target_columns(conn: Connection, schema: str) -> dict[str, list[TargetColumn]]:
    rows = await conn.fetch(
        """
        SELECT c.relname, a.attname, t.typname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, a.atttypmod,
               coalesce((SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                         FROM pg_enum e WHERE e.enumtypid = t.oid), '{}')
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0
          AND NOT a.attisdropped AND a.attgenerated = ''
        ORDER BY c.relname, a.attnum
        """,
        schema,
    )
    tables: dict[str, list[TargetColumn]] = {}
    for table, name, typname, formatted, not_null, typmod, labels in rows:
        tables.setdefault(table, []).append(
            TargetColumn(name, typname, formatted, not_null, tuple(labels), typmod)
        )
    return tables


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """A single-column foreign key, checked per batch before COPY."""

    name: str
    column: str
    parent: str
    parent_column: str
    type_name: str
    """``format_type`` of the referencing column, for the array of values sent."""


async def _foreign_keys(conn: Connection, schema: str) -> list[tuple[str, str, ForeignKey | None]]:
    """(child table, parent table, the key when it has one column) per foreign key."""
    rows = await conn.fetch(
        """
        SELECT c.relname, p.relname, k.conname, k.conkey, a.attname, pa.attname,
               format_type(a.atttypid, a.atttypmod)
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
        JOIN pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = k.confkey[1]
        WHERE k.contype = 'f' AND n.nspname = $1
        """,
        schema,
    )
    return [
        (r[0], r[1], ForeignKey(r[2], r[4], r[1], r[5], r[6]) if len(r[3]) == 1 else None)
        for r in rows
    ]


async def _constraint_names(conn: Connection, schema: str) -> list[tuple[str, str, str]]:
    """(child table, parent table, constraint name) of every foreign key."""
    rows = await conn.fetch(
        """
        SELECT c.relname, p.relname, k.conname FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE k.contype = 'f' AND n.nspname = $1
        """,
        schema,
    )
    return [(r[0], r[1], r[2]) for r in rows]


def fk_order(tables: Sequence[str], edges: Sequence[tuple[str, str]]) -> list[str]:
    """``tables`` with every referenced table before the tables referencing it (stable by
    name; self-references ignored; members of a cycle keep name order)."""
    wanted = set(tables)
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in edges:
        if child in wanted and parent in wanted and child != parent:
            parents[child].add(parent)
    order: list[str] = []
    placed: set[str] = set()
    remaining = sorted(tables)
    while remaining:
        ready = [t for t in remaining if parents[t] <= placed] or remaining[:1]
        for t in ready:
            order.append(t)
            placed.add(t)
        remaining = [t for t in remaining if t not in placed]
    return order


async def _serial_columns(conn: Connection, schema: str, table: str) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        """
        SELECT a.attname, pg_get_serial_sequence(format('%I.%I', $1::text, $2::text), a.attname)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
        """,
        schema,
        table,
    )
    return [(r[0], r[1]) for r in rows if r[1] is not None]


async def plan(
    source: sqlite3.Connection,
    conn: Connection,
    *,
    schema: str = "public",
    tables: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> Plan:
    """What to copy. Source data with no place in the target (a table the target lacks, a
    column with values the target table lacks) is refused unless named in ``exclude``
    (``table`` or ``table.column``); what is excluded is counted as left behind.

    Raises:
        MigrationError: naming every table and column that would be left behind.
    """
    if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
        raise errors.MigrationError(
            f"cannot migrate data: the target has no schema {schema!r}; apply the schema "
            "first (aragora-repos migrate up)"
        )
    src = _source_tables(source)
    target = await target_columns(conn, schema)
    excluded = set(exclude)
    if tables:
        unknown = [t for t in tables if t not in src or t not in target]
        if unknown:
            raise errors.ConfigError(
                f"--tables: {', '.join(unknown)} not in both the source and the target"
            )
    left_behind = {
        t: _count(source, f"SELECT count(*) FROM {quote(t)}") for t in sorted(excluded) if t in src
    }
    names = [t for t in (tables or sorted(src)) if t in target and t not in excluded]
    unmatched = [] if tables else sorted(t for t in src if t not in target and t not in excluded)
    lost: list[str] = [
        f"table {t} ({_count(source, f'SELECT count(*) FROM {quote(t)}'):,} rows)"
        for t in unmatched
    ]
    for name in names:
        have = {c.name for c in target[name]}
        for extra_column in (c for c in src[name][0] if c not in have):
            key = f"{name}.{extra_column}"
            values = _count(source, f"SELECT count({quote(extra_column)}) FROM {quote(name)}")
            if key in excluded:
                left_behind[key] = values
            elif values:
                lost.append(f"column {key} ({values:,} non-NULL values)")
    if lost:
        raise errors.MigrationError(
            f"cannot migrate data: the target schema {schema!r} has no place for "
            + "; ".join(lost)
            + ". Apply the schema that has them (aragora-repos migrate up), or leave them out "
            "by name with --exclude-tables (TABLE or TABLE.COLUMN)"
        )
    dropped: dict[str, list[str]] = {}
    plans = []
    keys = await _foreign_keys(conn, schema)
    names_of_keys = await _constraint_names(conn, schema)
    order = fk_order(names, [(child, parent) for child, parent, _ in keys])
    for position, name in enumerate(order):
        columns, pk, rowid = src[name]
        wanted = set(columns)
        wanted_columns = [c for c in target[name] if c.name in wanted]
        extra = [c for c in columns if c not in {t.name for t in target[name]}]
        if extra:
            dropped[name] = extra
        if not wanted_columns:
            unmatched.append(name)
            continue
        for column in wanted_columns:
            try:
                converter(column, Counter())
            except UnsupportedType as exc:
                raise errors.ConfigError(f"{name}.{exc}") from None
        plans.append(
            TablePlan(
                name,
                wanted_columns,
                ["rowid"] if rowid else pk,
                pk or ["rowid"],
                await _serial_columns(conn, schema, name),
                [
                    key
                    for child, parent, key in keys
                    if child == name and parent != name and key is not None and key.column in wanted
                ],
                self_keys=[n for child, parent, n in names_of_keys if child == parent == name],
            )
        )
        plans[-1].later_parents = {
            parent for child, parent, _ in keys if child == name and parent in order[position + 1 :]
        }
        plans[-1].parents = {parent for child, parent, _ in keys if child == name != parent}
    return Plan(plans, sorted(unmatched), dropped, left_behind)


# --- foreign keys set aside during the copy -------------------------------------------
