"""Copy an SQLite database into PostgreSQL: typed, resumable, verifiable.

``migrate_data()`` (and ``aragora-repos migrate-data``) copies every table the SQLite file
and the PostgreSQL schema share, parents before children. Values are converted by the
target column's type (:mod:`aragora_repos.convert`); a value no rule converts, and a row
PostgreSQL refuses (an orphan, a duplicate key), goes to the reject file with its table,
key and reason. Rows travel by binary COPY in batches; each batch commits together with
its progress record and its rejects, so a run killed at any point resumes after the last
committed batch: nothing is copied twice and at most the batch in flight is redone.
Afterwards identity and serial sequences are moved past the largest copied key.

Single-column foreign keys between copied tables are dropped for the copy (orphans are
found per batch) and added back, validated, at the end; each drop is recorded in the
same transaction, so a killed run's keys are added back by the next run.

``verify=True`` computes, per table, the row count and an order-independent checksum of
canonicalized values on both sides and reports any difference: the source side from the
rows as they were converted and copied in this run, and for rows an earlier run copied,
from the SQLite file as it is now; the target side in PostgreSQL, over the stored rows.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import hashlib
import json
import logging
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import asyncpg

from aragora_repos import errors
from aragora_repos.backends.postgres import connect_one
from aragora_repos.backends.sqlite import open_read_only
from aragora_repos.config import Secret
from aragora_repos.convert import (
    InvalidText,
    Reject,
    TargetColumn,
    UnsupportedType,
    converter,
    describe_rules,
    row_converter,
    row_hash_sql,
    row_hasher,
)
from aragora_repos.files import open_append_private, replacing

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

log = logging.getLogger("aragora_repos.migrate_data")

#: Where progress and rejects are kept in the target (outside the application schema).
STATE_SCHEMA = "aragora_migrate"
STATE_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA};
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.progress (
    source       text NOT NULL,
    table_name   text NOT NULL,
    last_key     text,
    rows_read    bigint NOT NULL DEFAULT 0,
    rows_copied  bigint NOT NULL DEFAULT 0,
    rows_skipped bigint NOT NULL DEFAULT 0,
    rows_rejected bigint NOT NULL DEFAULT 0,
    batches      bigint NOT NULL DEFAULT 0,
    conversions  jsonb NOT NULL DEFAULT '{{}}',
    done         boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, table_name)
);
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.deferred (
    source     text NOT NULL,
    table_name text NOT NULL,
    position   text NOT NULL,
    PRIMARY KEY (source, table_name, position)
);
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.rejects (
    source      text NOT NULL,
    table_name  text NOT NULL,
    position    text NOT NULL,
    key         text NOT NULL,
    column_name text,
    reason      text NOT NULL,
    value       text,
    PRIMARY KEY (source, table_name, position)
);
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.set_aside_keys (
    schema_name     text NOT NULL,
    table_name      text NOT NULL,
    constraint_name text NOT NULL,
    columns         text[] NOT NULL,
    ref_schema      text NOT NULL,
    ref_table       text NOT NULL,
    ref_columns     text[] NOT NULL,
    match_type      text NOT NULL,
    on_update       text NOT NULL,
    on_delete       text NOT NULL,
    is_deferrable   boolean NOT NULL,
    is_deferred     boolean NOT NULL,
    PRIMARY KEY (schema_name, table_name, constraint_name)
);
"""


#: A refused row: (position, key, column, reason, value).
RejectRow = tuple[str, str, str | None, str, str | None]


#: Tables each side keeps for itself: the migration runner's record.
SKIPPED_TABLES = frozenset({"schema_version"})


def quote(name: str) -> str:
    """An identifier quoted for both SQLite and PostgreSQL."""
    if "\x00" in name:
        raise errors.ProgrammingError(f"identifier {name!r} holds a NUL byte")
    return '"' + name.replace('"', '""') + '"'


# --- report -----------------------------------------------------------------------------


@dataclass(slots=True)
class TableReport:
    table: str
    source_rows: int = 0
    migrated: int = 0
    skipped: int = 0
    errors: int = 0
    already_done: int = 0
    """Rows committed by earlier runs (resume), not copied again."""
    batches: int = 0
    seconds: float = 0.0
    conversions: dict[str, dict[str, int]] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    """Sequence name -> the value its next call returns, for those this run moved."""
    verified: bool | None = None
    verify_detail: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.migrated / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class DataMigrationReport:
    source: str
    dry_run: bool = False
    tables: dict[str, TableReport] = field(default_factory=dict)
    unmatched_tables: list[str] = field(default_factory=list)
    """Source tables with no table of the same name in the target (not copied)."""
    dropped_columns: dict[str, list[str]] = field(default_factory=dict)
    """Source columns with no target column (not copied): empty ones, or excluded."""
    left_behind: dict[str, int] = field(default_factory=dict)
    """Rows (``table``) or non-NULL values (``table.column``) the user excluded."""
    reject_file: str | None = None
    foreign_keys: list[str] = field(default_factory=list)
    """Foreign keys set aside during the copy and added back (validated) afterwards."""
    seconds: float = 0.0

    @property
    def total_migrated(self) -> int:
        return sum(t.migrated for t in self.tables.values())

    @property
    def total_skipped(self) -> int:
        return sum(t.skipped for t in self.tables.values())

    @property
    def total_errors(self) -> int:
        return sum(t.errors for t in self.tables.values())

    @property
    def verified(self) -> bool | None:
        results = [t.verified for t in self.tables.values() if t.verified is not None]
        return None if not results else all(results)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            total_migrated=self.total_migrated,
            total_skipped=self.total_skipped,
            total_errors=self.total_errors,
            verified=self.verified,
        )
        for name, table in self.tables.items():
            data["tables"][name]["rows_per_second"] = round(table.rows_per_second, 1)
        return data

    def render(self) -> str:
        lines = [
            f"{'table':<28} {'source':>10} {'migrated':>10} {'skipped':>9} {'errors':>7}  verify"
        ]
        for t in self.tables.values():
            check = {None: "-", True: "ok", False: "MISMATCH"}[t.verified]
            lines.append(
                f"{t.table:<28} {t.source_rows:>10,} {t.migrated:>10,} {t.skipped:>9,} "
                f"{t.errors:>7,}  {check}"
            )
            if t.verify_detail and not t.verified:
                lines.append(f"    {t.verify_detail}")
        lines.append(
            f"total: {self.total_migrated:,} migrated, {self.total_skipped:,} skipped, "
            f"{self.total_errors:,} errors in {self.seconds:.1f} s"
            + (" (dry run: nothing written)" if self.dry_run else "")
        )
        for name, count in self.left_behind.items():
            what = "non-NULL values" if "." in name else "rows"
            lines.append(f"left behind (excluded): {name}: {count:,} {what}")
        for name, columns in self.dropped_columns.items():
            lines.append(f"note: {name}: source columns {', '.join(columns)} have no target column")
        if self.foreign_keys:
            lines.append(f"foreign keys added back and validated: {', '.join(self.foreign_keys)}")
        if self.total_errors and self.reject_file:
            lines.append(f"rejected rows: {self.reject_file}")
        return "\n".join(lines)


# --- plan -------------------------------------------------------------------------------


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
    self_keys: list[str] = field(default_factory=list)
    """Constraint names of foreign keys from the table to itself: a row refused by one of
    them waits until the rest of the table is in (its parent may come later)."""


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


async def _target_columns(conn: Connection, schema: str) -> dict[str, list[TargetColumn]]:
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
    target = await _target_columns(conn, schema)
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
    for name in fk_order(names, [(child, parent) for child, parent, _ in keys]):
        columns, pk, rowid = src[name]
        wanted = set(columns)
        target_columns = [c for c in target[name] if c.name in wanted]
        extra = [c for c in columns if c not in {t.name for t in target[name]}]
        if extra:
            dropped[name] = extra
        if not target_columns:
            unmatched.append(name)
            continue
        for column in target_columns:
            try:
                converter(column, Counter())
            except UnsupportedType as exc:
                raise errors.ConfigError(f"{name}.{exc}") from None
        plans.append(
            TablePlan(
                name,
                target_columns,
                ["rowid"] if rowid else pk,
                pk or ["rowid"],
                await _serial_columns(conn, schema, name),
                [
                    key
                    for child, parent, key in keys
                    if child == name and parent != name and key is not None and key.column in wanted
                ],
                [n for child, parent, n in names_of_keys if child == parent == name],
            )
        )
    return Plan(plans, sorted(unmatched), dropped, left_behind)


# --- foreign keys set aside during the copy -------------------------------------------


async def set_aside_foreign_keys(conn: Connection, schema: str, tables: list[TablePlan]) -> bool:
    """Drop the validated single-column foreign keys of the copied tables for the copy;
    False (and the keys left in place) when this role may not (it does not own them).

    Orphans of these keys are found by one query per batch (``_Copier._orphans``), so the
    server need not check every row with a trigger. Each definition is recorded in the
    same transaction as its drop, so a run killed at any point leaves it where the next
    run (or :func:`restore_foreign_keys`) adds it back.
    """
    wanted = [(t.name, k.name) for t in tables for k in t.foreign_keys]
    if not wanted:
        return True
    try:
        await _drop_foreign_keys(conn, schema, wanted)
    except asyncpg.InsufficientPrivilegeError as exc:
        log.warning("foreign keys stay in place during the copy (%s)", exc)
        return False
    return True


#: pg_constraint's action and match codes (catalog-pg-constraint.html); a code not listed
#: here is refused rather than written into SQL.
_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_MATCH = {"s": "", "f": " MATCH FULL"}
#: Written by versions that stored constraint definitions as SQL text, which could be
#: edited by whoever owns the database and was then run by whoever ran migrate-data.
_LEGACY_KEYS_TABLE = f"{STATE_SCHEMA}.dropped_keys"


@dataclass(frozen=True, slots=True)
class SetAsideKey:
    """A foreign key dropped for the copy, recorded as parts (never as SQL text)."""

    schema: str
    table: str
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    match_type: str
    on_update: str
    on_delete: str
    deferrable: bool
    deferred: bool

    def add_sql(self) -> str:
        """``ALTER TABLE ... ADD CONSTRAINT`` built from the parts, every name quoted.

        Raises:
            MigrationError: for an action or match code PostgreSQL does not have.
        """
        try:
            update, delete = _ACTIONS[self.on_update], _ACTIONS[self.on_delete]
            match = _MATCH[self.match_type]
        except KeyError:
            raise errors.MigrationError(
                f"cannot add back foreign key {self.name!r}: its recorded action or match "
                "code is not one PostgreSQL has"
            ) from None
        if not self.columns or len(self.columns) != len(self.ref_columns):
            raise errors.MigrationError(
                f"cannot add back foreign key {self.name!r}: its recorded columns do not pair up"
            )
        cols = ", ".join(quote(c) for c in self.columns)
        refs = ", ".join(quote(c) for c in self.ref_columns)
        deferral = (
            " DEFERRABLE INITIALLY DEFERRED"
            if self.deferred
            else " DEFERRABLE"
            if self.deferrable
            else ""
        )
        return (
            f"ALTER TABLE {quote(self.schema)}.{quote(self.table)} ADD CONSTRAINT "
            f"{quote(self.name)} FOREIGN KEY ({cols}) REFERENCES "
            f"{quote(self.ref_schema)}.{quote(self.ref_table)} ({refs}){match} "
            f"ON UPDATE {update} ON DELETE {delete}{deferral}"
        )


async def _drop_foreign_keys(conn: Connection, schema: str, wanted: list[tuple[str, str]]) -> None:
    async with conn.transaction():
        rows = await conn.fetch(
            """
            SELECT c.relname, k.conname,
                   ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
                         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n
                         ORDER BY u.i),
                   rn.nspname, rc.relname,
                   ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
                         JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n
                         ORDER BY u.i),
                   k.confmatchtype::text, k.confupdtype::text, k.confdeltype::text,
                   k.condeferrable,
                   k.condeferred
            FROM pg_constraint k
            JOIN pg_class c ON c.oid = k.conrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_class rc ON rc.oid = k.confrelid
            JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE n.nspname = $1 AND k.contype = 'f' AND k.convalidated
              AND k.confdelsetcols IS NULL
              AND (c.relname, k.conname) IN (SELECT * FROM unnest($2::text[], $3::text[]))
            ORDER BY 1, 2
            """,
            schema,
            [table for table, _ in wanted],
            [name for _, name in wanted],
        )
        for r in rows:
            table, name = r[0], r[1]
            await conn.execute(
                f"INSERT INTO {STATE_SCHEMA}.set_aside_keys VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
                schema,
                *r,
            )
            await conn.execute(
                f"ALTER TABLE {quote(schema)}.{quote(table)} DROP CONSTRAINT {quote(name)}"
            )
            log.info("%s: foreign key %s set aside for the copy", table, name)


async def restore_foreign_keys(conn: Connection, schema: str) -> list[str]:
    """Add back every foreign key a run set aside in ``schema`` (validating it against the
    copied rows); ``table.constraint`` of each. A key that no longer validates raises
    :class:`errors.ForeignKeyViolation` and stays recorded for the next attempt.

    The statement is built from the recorded parts with every name quoted; SQL text read
    from a table is never run (whoever owns the database could have written it).
    """
    if await conn.fetchval("SELECT to_regclass($1)", _LEGACY_KEYS_TABLE) is not None:
        legacy = await conn.fetchval(f"SELECT count(*) FROM {_LEGACY_KEYS_TABLE}")
        if legacy:
            raise errors.MigrationError(
                f"cannot migrate data: {_LEGACY_KEYS_TABLE} holds {legacy} foreign key "
                "definition(s) recorded as SQL text by an older version; stored SQL text is "
                "never run: add those keys back by hand, then DROP TABLE "
                f"{_LEGACY_KEYS_TABLE}"
            )
        await conn.execute(f"DROP TABLE {_LEGACY_KEYS_TABLE}")
    rows = await conn.fetch(
        f"SELECT * FROM {STATE_SCHEMA}.set_aside_keys WHERE schema_name = $1 ORDER BY 2, 3",
        schema,
    )
    restored = []
    for r in rows:
        key = SetAsideKey(
            r[0], r[1], r[2], tuple(r[3]), r[4], r[5], tuple(r[6]), r[7], r[8], r[9], r[10], r[11]
        )
        target = f"{quote(schema)}.{quote(key.table)}"
        try:
            async with conn.transaction():
                present = await conn.fetchval(
                    "SELECT count(*) FROM pg_constraint WHERE conrelid = $1::regclass "
                    "AND conname = $2",
                    target,
                    key.name,
                )
                if not present:
                    await conn.execute(key.add_sql())
                await conn.execute(
                    f"DELETE FROM {STATE_SCHEMA}.set_aside_keys "
                    "WHERE schema_name = $1 AND table_name = $2 AND constraint_name = $3",
                    schema,
                    key.table,
                    key.name,
                )
        except asyncpg.PostgresError as exc:
            raise errors.from_sqlstate(
                exc.sqlstate,
                f"migrate-data: foreign key {key.name} of {key.table} could not be added back "
                f"({_reason(exc)}); it stays recorded in {STATE_SCHEMA}.set_aside_keys "
                "and the next run adds it back",
            ) from exc
        log.info("%s: foreign key %s added back and validated", key.table, key.name)
        restored.append(f"{key.table}.{key.name}")
    return restored


# --- reading the source -----------------------------------------------------------------


@dataclass(slots=True)
class Batch:
    records: list[tuple[Any, ...]]
    sources: list[tuple[Any, ...]]
    """The source row of each record; its leading values are its position and key."""
    rejects: list[RejectRow]
    last_key: Any
    read: int
    counts: list[Counter[str]]
    width: int
    """How many leading values of a source row are its position (the rest up to ``lead``
    are its key)."""
    lead: int
    hashes: list[int] | None = None
    """The row hash of each record (verification), when the reader was asked for them."""

    def position(self, source: tuple[Any, ...]) -> str:
        return _position(source, self.width)

    def find(self, positions: set[str]) -> list[int]:
        """Indexes in ``sources`` of the rows at ``positions`` (as ``position`` writes
        them). Integer positions (rowids) are matched by value, without writing out the
        position of every row."""
        if not positions:
            return []
        if self.width == 1:
            values = [json.loads(p) for p in positions]
            if all(type(v) is int for v in values):
                wanted = set(values)
                return [i for i, s in enumerate(self.sources) if s[0] in wanted]
        return [i for i, s in enumerate(self.sources) if self.position(s) in positions]

    def key(self, source: tuple[Any, ...]) -> str:
        return _key(source, self.width, self.lead)


#: Bytes of text and blobs read into one batch at most (besides ``batch_size`` rows).
DEFAULT_BATCH_BYTES = 16 * 1024 * 1024


def _take(cursor: sqlite3.Cursor, budget: int | None) -> list[tuple[Any, ...]]:
    if budget is None:
        return cursor.fetchall()
    rows: list[tuple[Any, ...]] = []
    size = 0
    try:
        for row in cursor:
            rows.append(row)
            size += sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)
            if size >= budget:
                break
    finally:
        cursor.close()
    return rows


class SourceReader:
    """Reads one table in key order and converts each row; used from one thread."""

    def __init__(
        self,
        path: Path,
        table: TablePlan,
        *,
        hashes: bool = False,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
    ) -> None:
        self.table = table
        self.batch_bytes = batch_bytes
        self.hash_row = row_hasher(table.columns) if hashes else None
        self.db = _open_source(path)
        names = ", ".join(quote(c.name) for c in table.columns)
        order = ", ".join(quote(c) if c != "rowid" else "rowid" for c in table.order_by)
        self.width = len(table.order_by)
        key_expr = ", ".join(quote(c) if c != "rowid" else "rowid" for c in table.key_columns)
        self.key_width = len(table.key_columns)
        head = f"SELECT {order}, {key_expr}, {names} FROM {quote(table.name)}"
        if self.width == 1:
            after = f"{order} > ?"
        else:
            after = f"({order}) > ({', '.join('?' * self.width)})"
        self.first = f"{head} ORDER BY {order} LIMIT ?"
        self.next = f"{head} WHERE {after} ORDER BY {order} LIMIT ?"
        typed = ", ".join(f"typeof({quote(c.name)}), {quote(c.name)}" for c in table.columns)
        self.raw_first = f"SELECT {order}, {key_expr}, {typed} FROM {quote(table.name)}"
        self.raw_first += f" ORDER BY {order} LIMIT ?"
        self.raw_next = f"SELECT {order}, {key_expr}, {typed} FROM {quote(table.name)}"
        self.raw_next += f" WHERE {after} ORDER BY {order} LIMIT ?"

    def close(self) -> None:
        self.db.close()

    def read_positions(self, positions: list[str], upto: Any = None) -> Batch:
        """The rows at these positions (as ``_position`` encodes them), converted; only
        those not after ``upto`` when it is given."""
        rows: list[tuple[Any, ...]] = []
        order = ", ".join(quote(c) if c != "rowid" else "rowid" for c in self.table.order_by)
        head = self.first.split(" ORDER BY ")[0]
        for start in range(0, len(positions), 200):
            chunk = [json.loads(p) for p in positions[start : start + 200]]
            if self.width == 1:
                where = f"{order} IN ({', '.join('?' * len(chunk))})"
                params: list[Any] = chunk
            else:
                one = "(" + ", ".join("?" * self.width) + ")"
                where = f"({order}) IN (VALUES {', '.join([one] * len(chunk))})"
                params = [v for p in chunk for v in p]
            if upto is not None:
                where += f" AND ({order}) <= ({', '.join('?' * self.width)})"
                params += list(upto) if self.width > 1 else [upto]
            typed_head = self.raw_first.split(" ORDER BY ")[0]
            rows.extend(
                self._rows(
                    f"{head} WHERE {where} ORDER BY {order}",
                    f"{typed_head} WHERE {where} ORDER BY {order}",
                    params,
                )
            )
        return self._convert(rows)

    def count(self) -> int:
        row = self.db.execute(f"SELECT count(*) FROM {quote(self.table.name)}").fetchone()
        return int(row[0])

    def _fetch(self, after: Any, size: int, upto: Any = None) -> list[tuple[Any, ...]]:
        """Up to ``size`` rows after position ``after``, and not after ``upto``."""
        params: tuple[Any, ...] = ()
        if after is not None:
            params = tuple(after) if self.width > 1 else (after,)
        sql, typed = (self.first, self.raw_first) if after is None else (self.next, self.raw_next)
        if upto is not None:
            order = ", ".join(quote(c) if c != "rowid" else "rowid" for c in self.table.order_by)
            bound = f"({order}) <= ({', '.join('?' * self.width)})"
            joiner = " AND " if after is not None else " WHERE "
            sql, typed = (
                q.replace(" ORDER BY ", f"{joiner}{bound} ORDER BY ", 1) for q in (sql, typed)
            )
            params += tuple(upto) if self.width > 1 else (upto,)
        return self._rows(sql, typed, (*params, size), budget=self.batch_bytes)

    def _rows(
        self, sql: str, typed_sql: str, params: Sequence[Any], *, budget: int | None = None
    ) -> list[tuple[Any, ...]]:
        """``sql``'s rows; when some text is not UTF-8, ``typed_sql``'s (each column with
        its ``typeof``) with valid text decoded and invalid text marked, so the row is
        rejected with its reason. With ``budget``, reading stops once the rows' text and
        blobs reach that many bytes (after at least one row): the next read continues
        after the last row's key, so a batch of large rows stays small."""
        try:
            return _take(self.db.execute(sql, params), budget)
        except sqlite3.OperationalError as exc:
            if "decode" not in str(exc):
                raise
        self.db.text_factory = bytes
        try:
            rows = _take(self.db.execute(typed_sql, params), budget)
        finally:
            self.db.text_factory = str
        lead = self.width + self.key_width
        out = []
        for row in rows:
            values: list[Any] = [_text(v) for v in row[:lead]]
            for i in range(lead, len(row), 2):
                kind, value = row[i], row[i + 1]
                if kind == b"text":
                    try:
                        value = value.decode("utf-8")
                    except UnicodeDecodeError:
                        value = InvalidText(value)
                values.append(value)
            out.append(tuple(values))
        return out

    def read(self, after: Any, size: int, upto: Any = None) -> Batch:
        return self._convert(self._fetch(after, size, upto))

    def _convert(self, rows: list[tuple[Any, ...]]) -> Batch:
        table = self.table
        counts = [Counter[str]() for _ in table.columns]
        lead = self.width + self.key_width
        convert_row = row_converter(
            table.columns, counts, lead, keep_documents=self.hash_row is not None
        )
        width = self.width
        records: list[tuple[Any, ...]] = []
        sources: list[tuple[Any, ...]] = []
        rejects: list[RejectRow] = []
        for row in rows:
            try:
                records.append(convert_row(row))
            except Reject:
                column, reason, value = self._why(row, lead, counts)
                rejects.append(
                    (_position(row, width), _key(row, width, lead), column, reason, value)
                )
                continue
            sources.append(row)
        last = None
        if rows:
            last = rows[-1][0] if width == 1 else list(rows[-1][:width])
        hashes = list(map(self.hash_row, records)) if self.hash_row is not None else None
        return Batch(records, sources, rejects, last, len(rows), counts, width, lead, hashes)

    def _why(
        self, row: tuple[Any, ...], lead: int, counts: list[Counter[str]]
    ) -> tuple[str | None, str, str | None]:
        """The column and reason of a rejected row; the rules its earlier columns applied
        are taken back out of ``counts``, which count converted rows only."""
        for i, column in enumerate(self.table.columns):
            applied: Counter[str] = Counter()
            value = row[lead + i]
            try:
                converter(column, applied)(value)
            except Reject as exc:
                return column.name, str(exc), _value_text(value)
            counts[i].subtract(applied)
        return None, "unknown", None


def _text(value: Any) -> Any:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def _position(row: tuple[Any, ...], width: int) -> str:
    return json.dumps(row[0] if width == 1 else list(row[:width]), default=_json_default)


def _key(row: tuple[Any, ...], width: int, lead: int) -> str:
    return json.dumps(
        row[width] if lead - width == 1 else list(row[width:lead]), default=_json_default
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


def _value_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return "x'" + value[:64].hex() + ("...'" if len(value) > 64 else "'")
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _open_source(path: Path) -> sqlite3.Connection:
    return open_read_only(path, check_same_thread=False)


# --- progress display -------------------------------------------------------------------


class Progress:
    """A bar per table on a terminal (rows, rows/s, ETA); log lines every 5 s otherwise."""

    def __init__(self, stream: IO[str] | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.table = ""
        self.total = self.done = 0
        self.started = self.shown = 0.0

    def start(self, table: str, total: int, done: int) -> None:
        self.table, self.total, self.done = table, total, done
        self.started = self.shown = time.monotonic()
        self._base = done
        if not self.tty:
            print(
                f"{table}: {total:,} rows" + (f", {done:,} done earlier" if done else ""),
                file=self.stream,
            )

    def advance(self, rows: int) -> None:
        self.done += rows
        now = time.monotonic()
        if now - self.shown >= (0.1 if self.tty else 5.0):
            self.shown = now
            self._show(now, final=False)

    def finish(self) -> None:
        self._show(time.monotonic(), final=True)

    def _show(self, now: float, *, final: bool) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = (self.done - self._base) / elapsed
        left = max(self.total - self.done, 0)
        eta = f"{left / rate:.0f} s" if rate > 0 and not final else "-"
        share = self.done / self.total if self.total else 1.0
        text = (
            f"{self.table:<24} {self.done:>10,}/{self.total:,} rows {rate:>9,.0f} rows/s ETA {eta}"
        )
        if self.tty:
            bar = "#" * int(share * 20)
            print(f"\r[{bar:<20}] {text}\x1b[K", end="\n" if final else "", file=self.stream)
        else:
            print(text + (" done" if final else ""), file=self.stream)
        self.stream.flush()


# --- the copy ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Where a table stood when the run began: verification hashes the rows copied in
    this run as they go, and reads back only those an earlier run copied."""

    last_key: Any
    """The last position an earlier run committed (None: the table starts afresh)."""
    done: bool
    waiting: list[str]
    """Positions waiting for a parent row (they are copied, or rejected, in this run)."""


@dataclass(slots=True)
class Options:
    """What the copy of each table needs to know of the run's arguments."""

    batch_size: int = 1000
    skip_existing: bool = True
    dry_run: bool = False
    schema: str = "public"
    reject_file: Path | None = None
    progress: Progress | None = None
    batch_bytes: int = DEFAULT_BATCH_BYTES


class _Copier:
    def __init__(self, source: Path, conn: Connection, options: Options) -> None:
        self.source = source
        self.source_id = str(source.resolve())
        self.conn = conn
        self.options = options
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite-read")
        self.hashing = False
        """Hash each copied row as it goes (verification)."""
        self.sums: dict[str, list[int]] = {}
        """Table -> [rows, sum of row hashes] of the rows this run copied or skipped."""
        self.starts: dict[str, Start] = {}

    async def _in_reader(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def table(self, table: TablePlan) -> TableReport:
        opts = self.options
        report = TableReport(table.name)
        reader: SourceReader = await self._in_reader(
            functools.partial(
                SourceReader,
                self.source,
                table,
                hashes=self.hashing,
                batch_bytes=self.options.batch_bytes,
            )
        )
        self.sums[table.name] = [0, 0]
        try:
            report.source_rows = await self._in_reader(reader.count)
            state = None if opts.dry_run else await self._state(table.name)
            if self.hashing:
                self.starts[table.name] = await self._start(table.name, state)
            counts: dict[str, Counter[str]] = {c.name: Counter() for c in table.columns}
            last_key = None
            if state is not None:
                last_key = json.loads(state["last_key"]) if state["last_key"] else None
                report.already_done = state["rows_read"]
                for column, rules in json.loads(state["conversions"]).items():
                    counts.setdefault(column, Counter()).update(rules)
                if state["done"]:
                    report.skipped = state["rows_copied"] + state["rows_skipped"]
                    report.errors = state["rows_rejected"]
                    report.conversions = _readable(counts)
                    return report
            direct = opts.dry_run or await self._direct(table, state)
            progress = opts.progress
            if progress:
                progress.start(table.name, report.source_rows, report.already_done)
            started = time.perf_counter()
            pending = asyncio.ensure_future(self._in_reader(reader.read, last_key, opts.batch_size))
            while True:
                batch: Batch = await pending
                if batch.read == 0:
                    break
                pending = asyncio.ensure_future(
                    self._in_reader(reader.read, batch.last_key, opts.batch_size)
                )
                for column, batch_counts in zip(table.columns, batch.counts, strict=True):
                    counts[column.name].update(batch_counts)
                refused: list[RejectRow] = []
                if opts.dry_run:
                    copied, skipped = len(batch.records), 0
                    self._write_rejects_now(table.name, batch.rejects)
                else:
                    copied, skipped, refused = await self._commit(
                        table, batch, direct, counts, report
                    )
                log.info(
                    "%s: batch %d: %d read, %d copied, %d skipped, %d rejected",
                    table.name,
                    report.batches + 1,
                    batch.read,
                    copied,
                    skipped,
                    len(batch.rejects) + len(refused),
                )
                report.migrated += copied
                report.skipped += skipped
                report.errors += len(batch.rejects) + len(refused)
                report.batches += 1
                if progress:
                    progress.advance(batch.read)
            await pending
            if not opts.dry_run:
                if table.self_keys:
                    await self._retry_deferred(table, reader, direct, report, counts)
                report.sequences = await self._move_sequences(table)
                await self.conn.execute(
                    f"UPDATE {STATE_SCHEMA}.progress SET done = true, updated_at = now() "
                    "WHERE source = $1 AND table_name = $2",
                    self.source_id,
                    table.name,
                )
            report.seconds = time.perf_counter() - started
            report.conversions = _readable(counts)
            if progress:
                progress.finish()
            return report
        finally:
            await self._in_reader(reader.close)

    async def _start(self, table: str, state: asyncpg.Record | None) -> Start:
        if state is None or not state["last_key"]:
            return Start(None, False, [])
        waiting = await self.conn.fetch(
            f"SELECT position FROM {STATE_SCHEMA}.deferred WHERE source = $1 AND table_name = $2",
            self.source_id,
            table,
        )
        return Start(json.loads(state["last_key"]), state["done"], [r[0] for r in waiting])

    def _hashed(self, table: str, batch: Batch, left_out: set[str]) -> None:
        """Add the hashes of the batch's records to the table's sums, but for the rows at
        ``left_out`` (refused, or waiting for a parent)."""
        if batch.hashes is None:
            return
        sums = self.sums[table]
        if not left_out:
            sums[0] += len(batch.hashes)
            sums[1] += sum(batch.hashes)
            return
        out = batch.find(left_out)
        sums[0] += len(batch.hashes) - len(out)
        sums[1] += sum(batch.hashes) - sum(batch.hashes[i] for i in out)

    async def _state(self, table: str) -> asyncpg.Record | None:
        return await self.conn.fetchrow(
            f"SELECT * FROM {STATE_SCHEMA}.progress WHERE source = $1 AND table_name = $2",
            self.source_id,
            table,
        )

    async def _direct(self, table: TablePlan, state: asyncpg.Record | None) -> bool:
        """COPY straight into the table unless it holds rows this migration did not put
        there and existing rows are to be skipped (then COPY into a staging table and
        INSERT ... ON CONFLICT DO NOTHING)."""
        if not self.options.skip_existing:
            return True
        ours = state["rows_copied"] if state is not None else 0
        present = await self.conn.fetchval(
            f"SELECT count(*) FROM {quote(self.options.schema)}.{quote(table.name)}"
        )
        return int(present) <= ours

    async def _commit(
        self,
        table: TablePlan,
        batch: Batch,
        direct: bool,
        counts: dict[str, Counter[str]],
        report: TableReport,
    ) -> tuple[int, int, list[RejectRow]]:
        conn = self.conn
        async with conn.transaction():
            # A batch and its progress record commit together, so a server crash loses
            # both or neither: the run resumes before the lost batch.
            await conn.execute("SET LOCAL synchronous_commit = off")
            records, sources, orphans = await self._orphans(table, batch)
            copied, skipped, refused, parked = await self._load(
                table, direct, records, batch, sources
            )
            _take_back_rules(table, batch, counts, orphans + refused)
            rejects = batch.rejects + orphans + refused
            await self._record(table, rejects, parked)
            await conn.execute(
                f"""
                INSERT INTO {STATE_SCHEMA}.progress AS p (source, table_name, last_key,
                    rows_read, rows_copied, rows_skipped, rows_rejected, batches, conversions)
                VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8)
                ON CONFLICT (source, table_name) DO UPDATE SET last_key = $3,
                    rows_read = p.rows_read + $4, rows_copied = p.rows_copied + $5,
                    rows_skipped = p.rows_skipped + $6, rows_rejected = p.rows_rejected + $7,
                    batches = p.batches + 1, conversions = $8, updated_at = now()
                """,
                self.source_id,
                table.name,
                json.dumps(batch.last_key, default=_json_default),
                batch.read,
                copied,
                skipped,
                len(rejects),
                _counts_json(counts),
            )
        self._hashed(table.name, batch, {r[0] for r in orphans + refused} | set(parked))
        return copied, skipped, orphans + refused

    async def _orphans(
        self, table: TablePlan, batch: Batch
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[RejectRow]]:
        """The batch without rows whose single-column foreign key has no parent row, and
        those rows as rejects with the reason PostgreSQL gives (23503)."""
        records, sources = batch.records, batch.sources
        refused: list[RejectRow] = []
        names = [c.name for c in table.columns]
        for key in table.foreign_keys:
            at = names.index(key.column)
            values = list({r[at] for r in records if r[at] is not None})
            if not values:
                continue
            missing = {
                row[0]
                for row in await self.conn.fetch(
                    f"SELECT v FROM unnest($1::{key.type_name}[]) AS u(v) WHERE NOT EXISTS "
                    f"(SELECT 1 FROM {quote(self.options.schema)}.{quote(key.parent)} p "
                    f"WHERE p.{quote(key.parent_column)} = u.v)",
                    values,
                )
            }
            if not missing:
                continue
            kept_records, kept_sources = [], []
            for record, source in zip(records, sources, strict=True):
                value = record[at]
                if value in missing:
                    reason = (
                        f'23503: insert or update on table "{table.name}" violates foreign '
                        f'key constraint "{key.name}" (Key ({key.column})=({value}) is not '
                        f'present in table "{key.parent}".)'
                    )
                    refused.append(
                        (batch.position(source), batch.key(source), key.column, reason, None)
                    )
                else:
                    kept_records.append(record)
                    kept_sources.append(source)
            records, sources = kept_records, kept_sources
        return records, sources, refused

    async def _load(
        self,
        table: TablePlan,
        direct: bool,
        records: list[tuple[Any, ...]],
        batch: Batch,
        sources: list[tuple[Any, ...]],
        *,
        park: bool = True,
    ) -> tuple[int, int, list[RejectRow], list[str]]:
        """Copy ``records`` in a savepoint; when PostgreSQL refuses the lot, split it in
        halves until each refused row is found and returned with the server's reason.
        A row refused only for want of a parent row in its own table is returned apart
        (by position) when ``park``: that parent may come later."""
        if not records:
            return 0, 0, [], []
        try:
            async with self.conn.transaction():
                return (*(await self._copy(table, direct, records)), [], [])
        except (asyncpg.PostgresError, asyncpg.DataError) as exc:
            if len(records) == 1:
                source = sources[0]
                if (
                    park
                    and isinstance(exc, asyncpg.ForeignKeyViolationError)
                    and exc.constraint_name in table.self_keys
                ):
                    return 0, 0, [], [batch.position(source)]
                column = getattr(exc, "column_name", None)
                reject = (batch.position(source), batch.key(source), column, _reason(exc), None)
                return 0, 0, [reject], []
        mid = len(records) // 2
        a = await self._load(table, direct, records[:mid], batch, sources[:mid], park=park)
        b = await self._load(table, direct, records[mid:], batch, sources[mid:], park=park)
        return a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]

    async def _retry_deferred(
        self,
        table: TablePlan,
        reader: SourceReader,
        direct: bool,
        report: TableReport,
        counts: dict[str, Counter[str]],
    ) -> None:
        """Copy the rows that waited for a parent in their own table, pass after pass while
        passes make progress; then reject what is left (true orphans, cycles)."""
        select = (
            f"SELECT position FROM {STATE_SCHEMA}.deferred "
            "WHERE source = $1 AND table_name = $2 ORDER BY position"
        )
        park = True
        while True:
            waiting = [r[0] for r in await self.conn.fetch(select, self.source_id, table.name)]
            if not waiting:
                return
            for start in range(0, len(waiting), self.options.batch_size):
                chunk = waiting[start : start + self.options.batch_size]
                batch: Batch = await self._in_reader(reader.read_positions, chunk)
                copied, rejects = await self._commit_retry(
                    table, batch, chunk, direct, park, counts
                )
                report.migrated += copied
                report.errors += len(rejects)
            if not park:
                return
            left = await self.conn.fetchval(
                f"SELECT count(*) FROM {STATE_SCHEMA}.deferred "
                "WHERE source = $1 AND table_name = $2",
                self.source_id,
                table.name,
            )
            park = left < len(waiting)  # no progress: the next pass rejects the rest

    async def _commit_retry(
        self,
        table: TablePlan,
        batch: Batch,
        chunk: list[str],
        direct: bool,
        park: bool,
        counts: dict[str, Counter[str]],
    ) -> tuple[int, list[RejectRow]]:
        conn = self.conn
        async with conn.transaction():
            await conn.execute(
                f"DELETE FROM {STATE_SCHEMA}.deferred "
                "WHERE source = $1 AND table_name = $2 AND position = ANY($3::text[])",
                self.source_id,
                table.name,
                chunk,
            )
            records, sources, orphans = await self._orphans(table, batch)
            copied, _skipped, refused, parked = await self._load(
                table, direct, records, batch, sources, park=park
            )
            # Counted when first converted; refused at last.
            _take_back_rules(table, batch, counts, orphans + refused)
            found = {batch.position(s) for s in batch.sources} | {r[0] for r in batch.rejects}
            gone: list[RejectRow] = [
                (p, p, None, "the row is no longer in the source", None)
                for p in chunk
                if p not in found
            ]
            rejects = batch.rejects + orphans + refused + gone
            await self._record(table, rejects, parked)
            await conn.execute(
                f"UPDATE {STATE_SCHEMA}.progress SET rows_copied = rows_copied + $3, "
                "rows_rejected = rows_rejected + $4, conversions = $5, updated_at = now() "
                "WHERE source = $1 AND table_name = $2",
                self.source_id,
                table.name,
                copied,
                len(rejects),
                _counts_json(counts),
            )
        self._hashed(table.name, batch, {r[0] for r in orphans + refused} | set(parked))
        return copied, rejects

    async def _record(self, table: TablePlan, rejects: list[RejectRow], parked: list[str]) -> None:
        if rejects:
            await self.conn.executemany(
                f"INSERT INTO {STATE_SCHEMA}.rejects VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT DO NOTHING",
                [(self.source_id, table.name, *r) for r in rejects],
            )
        if parked:
            await self.conn.executemany(
                f"INSERT INTO {STATE_SCHEMA}.deferred VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                [(self.source_id, table.name, p) for p in parked],
            )

    async def _copy(
        self, table: TablePlan, direct: bool, records: list[tuple[Any, ...]]
    ) -> tuple[int, int]:
        columns = [c.name for c in table.columns]
        schema = self.options.schema
        if direct:
            await self.conn.copy_records_to_table(
                table.name, records=records, columns=columns, schema_name=schema
            )
            return len(records), 0
        stage = f"aragora_stage_{hashlib.md5(table.name.encode()).hexdigest()[:12]}"
        target = f"{quote(schema)}.{quote(table.name)}"
        await self.conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
            f"AS SELECT {', '.join(quote(c) for c in columns)} FROM {target} WITH NO DATA; "
            f"TRUNCATE {stage}"
        )
        await self.conn.copy_records_to_table(stage, records=records, columns=columns)
        names = ", ".join(quote(c) for c in columns)
        status = await self.conn.execute(
            f"INSERT INTO {target} ({names}) SELECT {names} FROM {stage} ON CONFLICT DO NOTHING"
        )
        inserted = int(status.split()[-1])
        return inserted, len(records) - inserted

    async def _move_sequences(self, table: TablePlan) -> dict[str, int]:
        moved: dict[str, int] = {}
        target = f"{quote(self.options.schema)}.{quote(table.name)}"
        for column, sequence in table.serial:
            top = await self.conn.fetchval(f"SELECT max({quote(column)}) FROM {target}")
            if top is None:
                continue
            row = await self.conn.fetchrow(f"SELECT last_value, is_called FROM {sequence}")
            assert row is not None
            current = row[0] if row[1] else row[0] - 1
            if top > current:
                await self.conn.execute("SELECT setval($1::regclass, $2)", sequence, top)
                moved[sequence] = int(top) + 1
        return moved

    def _write_rejects_now(self, table: str, rejects: list[RejectRow]) -> None:
        path = self.options.reject_file
        if path is None or not rejects:
            return
        with open_append_private(path) as f:
            for position, key, column, reason, value in rejects:
                f.write(_reject_line(table, position, key, column, reason, value))

    async def write_reject_file(self) -> int:
        """Render every reject of this source, committed so far, to the reject file."""
        path = self.options.reject_file
        rows = await self.conn.fetch(
            f"SELECT table_name, position, key, column_name, reason, value "
            f"FROM {STATE_SCHEMA}.rejects WHERE source = $1 ORDER BY table_name, position",
            self.source_id,
        )
        if path is not None:
            if rows:
                with replacing(path) as f:
                    for r in rows:
                        f.write(_reject_line(*r))
            elif path.exists():
                path.unlink()
        return len(rows)


def _reject_line(
    table: str, position: str, key: str, column: str | None, reason: str, value: str | None
) -> str:
    entry = {
        "table": table,
        "key": json.loads(key),
        "position": json.loads(position),
        "column": column,
        "reason": reason,
        "value": value,
    }
    return json.dumps(entry, ensure_ascii=False) + "\n"


def _reason(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    detail = getattr(exc, "detail", None)
    text = str(exc) + (f" ({detail})" if detail else "")
    return f"{state}: {text}" if state else text


def _counts_json(counts: dict[str, Counter[str]]) -> str:
    return json.dumps({column: dict(+c) for column, c in counts.items() if +c})


def _take_back_rules(
    table: TablePlan, batch: Batch, counts: dict[str, Counter[str]], refused: list[RejectRow]
) -> None:
    """Rules are counted over the rows copied: those of rows PostgreSQL refused (counted
    when their batch was converted) are taken back out."""
    if not refused:
        return
    for at in batch.find({r[0] for r in refused}):
        source = batch.sources[at]
        for i, column in enumerate(table.columns):
            applied: Counter[str] = Counter()
            converter(column, applied)(source[batch.lead + i])
            counts[column.name].subtract(applied)


def _readable(counts: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
    return {column: describe_rules(c) for column, c in counts.items() if +c}


# --- verification -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checksum:
    rows: int
    total: int

    def __str__(self) -> str:
        return f"{self.rows:,} rows, checksum {self.total & 0xFFFFFFFFFFFFFFFF:016x}"


def source_checksum(
    path: Path,
    table: TablePlan,
    positions: list[str] | None = None,
    *,
    upto: Any = None,
    batch_size: int = 5000,
) -> Checksum:
    """Over the source rows as converted (rows no rule converts are left out): the whole
    table, or only the rows at ``positions``; only rows not after ``upto`` when given."""
    reader = SourceReader(path, table, hashes=True)
    rows = total = 0
    try:
        batches: Iterator[Batch]
        if positions is not None:
            batches = (
                reader.read_positions(positions[i : i + batch_size], upto)
                for i in range(0, len(positions), batch_size)
            )
        else:
            batches = _batches(reader, batch_size, upto)
        for batch in batches:
            assert batch.hashes is not None
            rows += len(batch.hashes)
            total += sum(batch.hashes)
    finally:
        reader.close()
    return Checksum(rows, total)


def _batches(reader: SourceReader, batch_size: int, upto: Any = None) -> Iterator[Batch]:
    after = None
    while (batch := reader.read(after, batch_size, upto)).read:
        after = batch.last_key
        yield batch


def target_checksum_sql(schema: str, table: TablePlan) -> str:
    return (
        f"SELECT count(*), coalesce(sum({row_hash_sql(table.columns)}), 0) "
        f"FROM {quote(schema)}.{quote(table.name)}"
    )


class _Verifier:
    """Verification alongside the copy. The source side of a table is the sum of the row
    hashes the copy computed as it went, plus, for rows an earlier run copied, a read of
    the SQLite file as it is now; the target side is one aggregate query on a connection
    of its own, run while the next table copies."""

    def __init__(self, source: Path, source_id: str, schema: str, conn: Connection) -> None:
        self.source, self.source_id, self.schema, self.conn = source, source_id, schema, conn
        self.queue: asyncio.Queue[tuple[TablePlan, TableReport, Start, list[int]] | None]
        self.queue = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    @classmethod
    async def start(cls, source: Path, source_id: str, schema: str, dsn: Secret) -> _Verifier:
        return cls(source, source_id, schema, await connect_one(dsn))

    def submit(self, table: TablePlan, report: TableReport, start: Start, sums: list[int]) -> None:
        self.queue.put_nowait((table, report, start, sums))

    async def finish(self) -> None:
        self.queue.put_nowait(None)
        await self.task

    async def close(self) -> None:
        if not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.conn.close()

    async def _run(self) -> None:
        while (item := await self.queue.get()) is not None:
            await self._table(*item)

    async def _earlier(self, table: TablePlan, start: Start) -> tuple[Checksum, int]:
        """The rows earlier runs copied, read from the source as it is now: up to where
        they stopped (all rows, for a table they finished), less the rejected rows and
        the rows that waited for a parent (this run copied or rejected those)."""
        rejected = [
            r[0]
            for r in await self.conn.fetch(
                f"SELECT position FROM {STATE_SCHEMA}.rejects "
                "WHERE source = $1 AND table_name = $2",
                self.source_id,
                table.name,
            )
        ]
        if start.last_key is None:
            return Checksum(0, 0), len(rejected)
        upto = None if start.done else start.last_key
        full = await asyncio.to_thread(source_checksum, self.source, table, upto=upto)
        left_out = sorted(set(rejected) | set(start.waiting))
        taken = Checksum(0, 0)
        if left_out:
            taken = await asyncio.to_thread(
                source_checksum, self.source, table, left_out, upto=upto
            )
        return Checksum(full.rows - taken.rows, full.total - taken.total), len(rejected)

    async def _table(
        self, table: TablePlan, report: TableReport, start: Start, sums: list[int]
    ) -> None:
        earlier, rejected = await self._earlier(table, start)
        source = Checksum(sums[0] + earlier.rows, sums[1] + earlier.total)
        row = await self.conn.fetchrow(target_checksum_sql(self.schema, table))
        assert row is not None
        target = Checksum(int(row[0]), int(row[1]))
        report.verified = source == target
        if report.verified:
            report.verify_detail = f"{target}; {rejected:,} rejected rows left out"
        else:
            report.verify_detail = (
                f"source (converted, {rejected:,} rejected left out): {source}; target: {target}"
            )


# --- entry point ------------------------------------------------------------------------


async def migrate_data(
    sqlite_path: str | Path,
    postgres_dsn: str | Secret,
    *,
    tables: Sequence[str] | None = None,
    batch_size: int = 1000,
    skip_existing: bool = True,
    dry_run: bool = False,
    verify: bool = False,
    restart: bool = False,
    schema: str = "public",
    reject_file: str | Path | None = None,
    progress: Progress | None = None,
    keep_foreign_keys: bool = False,
    exclude_tables: Sequence[str] = (),
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> DataMigrationReport:
    """Copy ``sqlite_path`` into the PostgreSQL database at ``postgres_dsn`` (whose schema
    must already exist, e.g. by ``aragora-repos migrate up``); see the module docstring.

    Args:
        tables: only these tables (default: every table both sides have).
        batch_size: rows per COPY and per committed batch.
        batch_bytes: a batch also ends once its text and blobs reach this many bytes
            (after at least one row), so memory stays bounded whatever the row size.
        skip_existing: rows whose key the target already holds (put there by something
            else than this migration) are skipped; otherwise they are rejected.
        dry_run: read and convert everything, write nothing but the reject file.
        verify: compare row counts and checksums of both sides (each table as soon as its
            copy is done, alongside the next copies); not with ``dry_run``.
        restart: forget the progress of earlier runs of this source.
        reject_file: JSON Lines of refused rows (default ``<sqlite_path>.rejects.jsonl``).
        keep_foreign_keys: leave every foreign key in place during the copy, so the server
            checks each row (slower). By default the single-column keys between tables,
            whose orphans are found per batch anyway, are dropped for the copy and added
            back, validated, at the end; a killed run leaves them recorded in
            ``aragora_migrate.set_aside_keys`` and the next run adds them back.
        exclude_tables: source tables (``table``) and columns (``table.column``) to leave
            behind; they are counted in ``report.left_behind``. Any other source table or
            non-empty column the target has no place for fails the run before it copies.
    """
    if batch_size < 1:
        raise errors.ConfigError(f"batch size must be at least 1, got {batch_size}")
    path = Path(sqlite_path)
    reject_path = Path(reject_file) if reject_file else path.with_name(path.name + ".rejects.jsonl")
    options = Options(
        batch_size, skip_existing, dry_run, schema, reject_path, progress, batch_bytes
    )
    dsn = postgres_dsn if isinstance(postgres_dsn, Secret) else Secret(postgres_dsn)
    report = DataMigrationReport(str(path), dry_run=dry_run, reject_file=str(reject_path))
    started = time.perf_counter()
    source = await asyncio.to_thread(_open_source, path)
    conn = await connect_one(dsn)
    copier = _Copier(path, conn, options)
    verifier: _Verifier | None = None
    try:
        await _text_codecs(conn)
        if not dry_run:
            await conn.execute(STATE_DDL)
            # Keys a killed run set aside come back first: the plan reads the catalog.
            await restore_foreign_keys(conn, schema)
        the_plan = await plan(source, conn, schema=schema, tables=tables, exclude=exclude_tables)
        report.unmatched_tables = the_plan.unmatched
        report.dropped_columns = the_plan.dropped
        report.left_behind = the_plan.left_behind
        if not dry_run:
            if restart:
                await conn.execute(
                    f"DELETE FROM {STATE_SCHEMA}.progress WHERE source = $1", copier.source_id
                )
                await conn.execute(
                    f"DELETE FROM {STATE_SCHEMA}.rejects WHERE source = $1", copier.source_id
                )
        elif reject_path.exists():
            reject_path.unlink()
        if verify and not dry_run:
            verifier = await _Verifier.start(path, copier.source_id, schema, dsn)
            copier.hashing = True
        if not dry_run and not keep_foreign_keys:
            await set_aside_foreign_keys(conn, schema, the_plan.tables)
        try:
            for table in the_plan.tables:
                report.tables[table.name] = await copier.table(table)
                if verifier is not None:
                    verifier.submit(
                        table,
                        report.tables[table.name],
                        copier.starts[table.name],
                        copier.sums[table.name],
                    )
        except Exception:
            if not dry_run and not conn.is_closed():
                try:
                    await restore_foreign_keys(conn, schema)
                except Exception as exc:  # the copy's own error is the one to raise
                    log.warning("foreign keys not added back yet: %s", exc)
            raise
        if not dry_run:
            report.foreign_keys = await restore_foreign_keys(conn, schema)
            report.reject_file = str(reject_path) if await copier.write_reject_file() else None
        if verifier is not None:
            await verifier.finish()
    except asyncpg.PostgresError as exc:
        raise errors.from_sqlstate(exc.sqlstate, f"migrate-data: {exc}") from exc
    finally:
        if verifier is not None:
            await verifier.close()
        copier.pool.shutdown(wait=True)
        source.close()
        await conn.close()
    report.seconds = time.perf_counter() - started
    return report


async def _text_codecs(conn: Connection) -> None:
    """JSON goes over the wire as the validated source text, unchanged."""
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda text: b"\x01" + text.encode("utf-8"),
        decoder=lambda data: data[1:].decode("utf-8"),
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        encoder=lambda text: text.encode("utf-8"),
        decoder=lambda data: data.decode("utf-8"),
        schema="pg_catalog",
        format="binary",
    )
