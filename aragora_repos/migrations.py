"""Migrations: the generated list, a ``schema_version`` table per database, and a planner
shared by both backends.

A plan is a list of :class:`Step`; a real run executes exactly the statements of its
steps (``--dry-run`` prints them), each step in its own transaction together with its
bookkeeping where the backend allows. Integrity rules, checked before any DDL runs:

* an applied migration whose text changed since is refused (checksum, as Flyway/sqlx);
* a version the code does not know is refused (the code is older than the database);
* a step that could not run in a transaction and was interrupted leaves a row with
  ``success = false``; every later run refuses until ``repair`` (sqlx's "dirty" state).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from aragora_repos.errors import MigrationError
from aragora_repos.keyring import KeyRing

Direction = Literal["up", "down"]
Dialect = Literal["postgres", "sqlite"]

SCHEMA_VERSION_POSTGRES = """CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    execution_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    success BOOLEAN NOT NULL DEFAULT TRUE
)"""
SCHEMA_VERSION_SQLITE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f000+00:00', 'now')),
    execution_ms REAL NOT NULL DEFAULT 0,
    success INTEGER NOT NULL DEFAULT 1
) STRICT"""
#: Key for pg_try_advisory_lock while migrating (an arbitrary constant of this project).
ADVISORY_LOCK_KEY = 0x0A7A_60A2_E905


@dataclass(frozen=True, slots=True)
class Section:
    """One direction of a migration, as statements for each dialect."""

    postgres: tuple[str, ...]
    sqlite: tuple[str, ...]
    transactional: bool = True
    """False when a PostgreSQL statement cannot run in a transaction (CONCURRENTLY)."""
    sqlite_rebuild: bool = False
    """A SQLite table rebuild: foreign keys off around the transaction, checked at the end."""
    crypts: tuple[Crypt, ...] = ()
    """Encrypted columns whose stored values this section seals or opens (data steps run
    by the runtime with its column keys, between the statements)."""

    def steps(self, dialect: Dialect) -> list[str | Crypt]:
        """The section's statements for ``dialect`` with its data steps in place."""
        statements: tuple[str, ...] = getattr(self, dialect)
        crypts = sorted(self.crypts, key=lambda c: c.at(dialect))
        out: list[str | Crypt] = []
        for i, sql in enumerate(statements):
            out.extend(c for c in crypts if c.at(dialect) == i)
            out.append(sql)
        out.extend(c for c in crypts if c.at(dialect) >= len(statements))
        return out


#: Rows a migration's data step (:class:`Crypt`) converts at a time.
CRYPT_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Crypt:
    """A migration's data step: seal (or open) every stored value of ``table.column``
    with the runtime's column keys (:mod:`aragora_repos.keyring`), before the statement at
    ``postgres_at`` / ``sqlite_at``. The values are read, converted and written
    :data:`CRYPT_PAGE` rows at a time, in the migration's transaction, so memory stays
    bounded by the page, not the column."""

    table: str
    column: str
    row_key: tuple[str, ...]
    """The columns that find the row (and, unless deterministic, bind its value)."""
    seal: bool
    postgres_at: int
    sqlite_at: int
    deterministic: bool = False
    """Sealed with AES-SIV, bound to table and column only (see aragora_repos.keyring)."""

    def bound(self, key: tuple[Any, ...]) -> tuple[Any, ...]:
        """The row key a value is bound to: ``key``, or none for a deterministic column."""
        return () if self.deterministic else key

    def at(self, dialect: Dialect) -> int:
        return self.postgres_at if dialect == "postgres" else self.sqlite_at

    def describe(self) -> str:
        """The step as a comment, where a plan is printed."""
        what = "seal" if self.seal else "open (decrypt)"
        return (
            f"-- aragora: {what} every stored value of {self.table}.{self.column} "
            "with the column keys (run by the migrator, ARAGORA_ENCRYPTION_KEY)"
        )

    def page_sql(self, dialect: Dialect, after: bool) -> str:
        """The next rows to convert, in row-key order: row key, then the value. Its
        parameters: how many rows, then (``after``) the last row key of the page before.
        The row key is the primary key or a unique key, NOT NULL (the generator checks),
        so no row is skipped between pages."""
        q = _quoter(dialect)
        keys = ", ".join(q(k) for k in self.row_key)
        mark = "$" if dialect == "postgres" else "?"
        where = f"{q(self.column)} IS NOT NULL"
        if after:
            marks = ", ".join(f"{mark}{i + 2}" for i in range(len(self.row_key)))
            where += f" AND ({keys}) > ({marks})"
        return (
            f"SELECT {keys}, {q(self.column)} FROM {q(self.table)} WHERE {where} "
            f"ORDER BY {keys} LIMIT {mark}1"
        )

    def last_key(self, rows: Sequence[Any]) -> tuple[Any, ...]:
        """The row key of the last of ``rows``: where the next page starts after."""
        return tuple(rows[-1][: len(self.row_key)])

    def update_sql(self, dialect: Dialect) -> str:
        """Set the value (first parameter) of the row whose key follows."""
        q = _quoter(dialect)
        mark = "$" if dialect == "postgres" else "?"
        where = " AND ".join(f"{q(k)} = {mark}{i + 2}" for i, k in enumerate(self.row_key))
        return f"UPDATE {q(self.table)} SET {q(self.column)} = {mark}1 WHERE {where}"

    def convert(self, keys: KeyRing, rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Update arguments for ``rows`` (as :meth:`page_sql` reads them): each value sealed
        (its bytes are the plaintext) or opened (to its plaintext bytes)."""
        out = []
        n = len(self.row_key)
        for row in rows:
            key, value = tuple(row[:n]), bytes(row[n])
            bound = self.bound(key)
            if self.seal:
                new = keys.seal(
                    value, self.table, self.column, bound, deterministic=self.deterministic
                )
            else:
                new = keys.open(value, self.table, self.column, bound)
            out.append((new, *key))
        return out


def _quoter(dialect: Dialect) -> Callable[[str], str]:
    if dialect == "postgres":
        return lambda name: name if name.isidentifier() and name.islower() else _dq(name)
    return _dq


def _dq(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class Migration:
    """One file of ``sql/schema`` in both dialects (see ``aragora_db.migrations``)."""

    version: int
    name: str
    checksum: str
    up: Section
    down: Section | None = None

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class Applied:
    """A row of ``schema_version``."""

    version: int
    name: str
    checksum: str
    applied_at: datetime | str
    execution_ms: float
    success: bool


def applied_row(row: Sequence[object]) -> Applied:
    """A ``schema_version`` row read back, checked: a hand-edited table may hold anything.

    Raises:
        MigrationError: a version that is not an integer, or a name or checksum that is
            not text.
    """
    version, name, checksum, applied_at, execution_ms, success = row
    if isinstance(version, bool) or not isinstance(version, int):
        raise MigrationError(
            f"cannot read schema_version: version {version!r} ({type(version).__name__}) is not "
            "an integer; the table was edited by hand, fix that row"
        )
    if not isinstance(name, str) or not isinstance(checksum, str):
        raise MigrationError(
            f"cannot read schema_version: version {version} has a name or checksum that is "
            "not text; the table was edited by hand, fix that row"
        )
    ms = float(execution_ms) if isinstance(execution_ms, int | float) else 0.0
    when = applied_at if isinstance(applied_at, datetime | str) else str(applied_at)
    return Applied(version, name, checksum, when, ms, bool(success))


@dataclass(frozen=True, slots=True)
class Step:
    """One migration in one direction: exactly the statements a run executes."""

    migration: Migration
    direction: Direction
    statements: tuple[str | Crypt, ...]
    """SQL, and the data steps that seal or open encrypted columns between them."""
    transactional: bool
    sqlite_rebuild: bool

    @property
    def texts(self) -> tuple[str, ...]:
        """The statements as printed and reported: SQL as it runs, a data step as a
        comment saying what it does."""
        return tuple(s.describe() if isinstance(s, Crypt) else s for s in self.statements)


@dataclass(frozen=True, slots=True)
class Status:
    current: int | None
    target: int | None
    applied: tuple[Applied, ...]
    pending: tuple[Migration, ...]

    def render(self) -> str:
        lines = [f"current version: {_v(self.current)}", f"target version:  {_v(self.target)}"]
        for a in self.applied:
            state = "applied" if a.success else "INTERRUPTED (run `migrate repair`)"
            lines.append(
                f"  {a.version:04d}_{a.name}  {state} at {a.applied_at} ({a.execution_ms:.1f} ms)"
            )
        lines += [f"  {m.label}  pending" for m in self.pending]
        return "\n".join(lines)


def _v(version: int | None) -> str:
    return "none" if version is None else f"{version:04d}"


def check_applied(migrations: Sequence[Migration], applied: Mapping[int, Applied]) -> None:
    """Refuse before any DDL when the database and the code disagree."""
    known = {m.version: m for m in migrations}
    for version, row in sorted(applied.items()):
        if not row.success:
            raise MigrationError(
                f"cannot migrate: migration {version:04d}_{row.name} was interrupted part way "
                "(it could not run in a transaction); check the schema by hand, then run "
                "`aragora-repos migrate repair`"
            )
        m = known.get(version)
        if m is None:
            raise MigrationError(
                f"cannot migrate: the database has version {version:04d}, "
                "which this code does not know (is the code older?)"
            )
        if m.checksum != row.checksum:
            raise MigrationError(
                f"cannot migrate: migration {m.label} changed after it was "
                "applied (checksum differs); restore the file or add a new "
                "migration instead"
            )


def pending(migrations: Sequence[Migration], applied: Mapping[int, Applied]) -> list[Migration]:
    check_applied(migrations, applied)
    return [m for m in migrations if m.version not in applied]


def _check_target(migrations: Sequence[Migration], target: int, direction: str) -> None:
    """A target is a version some migration has (or, going down, 0 or below: none)."""
    if direction == "down" and target <= 0:
        return
    versions = [m.version for m in migrations]
    if target not in versions:
        known = f"{min(versions):04d} to {max(versions):04d}" if versions else "none"
        raise MigrationError(
            f"cannot migrate {direction} to version {target}: no migration has that version "
            f"(the versions are {known}"
            + ("; 0 undoes every migration)" if direction == "down" else ")")
        )


def plan_up(
    migrations: Sequence[Migration],
    applied: Mapping[int, Applied],
    dialect: Dialect,
    target: int | None = None,
) -> list[Step]:
    """Steps that apply every pending migration up to and including ``target``."""
    if target is not None:
        _check_target(migrations, target, "up")
    steps = []
    for m in pending(migrations, applied):
        if target is not None and m.version > target:
            break
        steps.append(_step(m, "up", m.up, dialect))
    return steps


def plan_down(
    migrations: Sequence[Migration],
    applied: Mapping[int, Applied],
    dialect: Dialect,
    target: int,
) -> list[Step]:
    """Steps that roll back every applied migration above ``target`` (newest first)."""
    _check_target(migrations, target, "down")
    check_applied(migrations, applied)
    known = {m.version: m for m in migrations}
    steps = []
    for version in sorted((v for v in applied if v > target), reverse=True):
        m = known[version]
        if m.down is None:
            raise MigrationError(
                f"cannot roll back {m.label}: it has no down section (-- migrate:down)"
            )
        steps.append(_step(m, "down", m.down, dialect))
    return steps


def _step(m: Migration, direction: Direction, section: Section, dialect: Dialect) -> Step:
    statements = tuple(section.steps(dialect))
    if dialect == "postgres":
        return Step(m, direction, statements, section.transactional, False)
    return Step(m, direction, statements, True, section.sqlite_rebuild)


def assumed_applied(migrations: Sequence[Migration], version: int) -> dict[int, Applied]:
    """``schema_version`` as it would read at ``version`` (every migration up to it, as
    written): the starting point of an offline plan."""
    if version > 0:
        _check_target(migrations, version, "up")
    return {
        m.version: Applied(m.version, m.name, m.checksum, "", 0.0, True)
        for m in migrations
        if m.version <= version
    }


def render_plan(steps: Sequence[Step], dialect: str) -> str:
    """The SQL a run would execute, with the bookkeeping shown as comments."""
    if not steps:
        return f"-- {dialect}: nothing to do\n"
    out = []
    for step in steps:
        mode = "in one transaction" if step.transactional else "without a transaction"
        out.append(f"-- {step.direction} {step.migration.label} ({dialect}, {mode})")
        if step.sqlite_rebuild:
            out.append(
                "-- PRAGMA foreign_keys = OFF around the transaction; "
                "PRAGMA foreign_key_check before COMMIT"
            )
        out += [
            s.describe() if isinstance(s, Crypt) else f"{s.rstrip(';')};" for s in step.statements
        ]
        record = "record" if step.direction == "up" else "remove"
        out.append(f"-- {record} version {step.migration.version} in schema_version\n")
    return "\n".join(out)


def create_migration(schema_dir: Path, message: str, *, text: str | None = None) -> Path:
    """Write the next ``NNNN_<slug>.sql`` in ``schema_dir``: ``text``, or empty up and down
    sections. An existing file is never overwritten (FileExistsError)."""
    slug = "_".join(re.findall(r"[a-z0-9]+", message.lower()))[:60].strip("_") or "migration"
    numbers = [int(p.name[:4]) for p in schema_dir.glob("[0-9][0-9][0-9][0-9]_*.sql")]
    path = schema_dir / f"{max(numbers, default=0) + 1:04d}_{slug}.sql"
    schema_dir.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as f:
        f.write(
            text if text is not None else f"-- {message}\n-- migrate:up\n\n\n-- migrate:down\n\n"
        )
    return path
