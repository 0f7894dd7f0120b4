"""Staging: every source table mapped into the project's tables, by named rules, in one
SQLite file the copy then reads.

A source table goes to the project table of the same name (or its consolidation rename);
its columns by name. Where the stores Aragora has written differ from this project's
schema, a named rule places the value, and each application is counted per column:

- ``key_map``: a table whose key is an integer here and text there (consensus ids such as
  ``c-1``) gets new integer keys, after the largest integer key the sources hold; the
  map is kept in the staged file and written beside the report;
- ``key_map_ref``: a reference to such a key (``dissent.consensus_id``) follows the map;
- ``slug_from_task``: a debate without a slug gets one from its task and day, made unique
  as the runtime makes them (and the slug counters set to match);
- ``null_fill``: a NULL where the project requires a value and has a fixed stand-in
  (``audit_log.resource_type`` -> ``'unknown'``);
- ``null_default`` / ``null_now``: a NULL in a NOT NULL column takes the column's default
  (the time of the copy, for a ``now()`` default).

The same row in two files (a directory holding both layouts) is staged once and counted
as a duplicate; a key two files give different rows is a reject, with both named. Source
columns the project has no place for are counted as left behind, never dropped silently.
Staging reads the sources in a fixed order, so the same sources stage the same file.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aragora_repos.backends.sqlite import open_read_only
from aragora_repos.backends.sqlite.functions import install
from aragora_repos.backends.sqlite.opener import for_file
from aragora_repos.codec import encode_timestamptz
from aragora_repos.config import SqliteKey
from aragora_repos.drift import ExpectedSchema
from aragora_repos.errors import SQLITE_OPERATIONAL_ERROR
from aragora_repos.files import create_private
from aragora_repos.migrations import Migration
from aragora_repos.tools.adopt.sources import SourceFile, source_tables, target_table
from aragora_repos.tools.migrate_data.plan import fk_order
from aragora_repos.tools.migrate_data.state import quote
from aragora_repos.tools.slugs import slug_base, with_suffix

RULES = {
    "key_map": "text key replaced by a new integer key (recorded in the key map)",
    "key_map_ref": "reference to a text key replaced by its new integer key",
    "slug_from_task": "slug derived from the task and day, made unique",
    "null_fill": "NULL given the project's stand-in value",
    "null_default": "NULL in a NOT NULL column given the column's default",
    "null_now": "NULL in a NOT NULL time column given the time of the copy (its default)",
}
#: Fixed stand-ins for NULLs the project does not allow and has no default for.
FILLS: dict[tuple[str, str], object] = {("audit_log", "resource_type"): "unknown"}
#: Tables of the staged file that are not project tables.
PROVENANCE = "_adopt_rows"
KEY_MAP = "_adopt_key_map"
_INT_TEXT = re.compile(r"[+-]?[0-9]+\Z")


@dataclass(slots=True)
class TargetTable:
    """A project table as staging needs it (from the generated package)."""

    name: str
    columns: list[str]
    types: dict[str, str]
    not_null: set[str]
    defaults: dict[str, tuple[object, bool]]
    """column -> (value in SQLite storage form, whether it is the time of the insert)."""
    pk: list[str]
    references: list[tuple[str, str, str]]
    """(column, parent table, parent column) of each single-column foreign key."""

    @property
    def integer_key(self) -> bool:
        return len(self.pk) == 1 and self.types.get(self.pk[0]) in ("int2", "int4", "int8")


def apply_schema(db: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    """The project's SQLite schema on a scratch database: every migration's up section."""
    for migration in migrations:
        for statement in migration.up.sqlite:
            db.execute(statement)
    db.commit()


def target_tables(
    migrations: Sequence[Migration], expected: ExpectedSchema
) -> dict[str, TargetTable]:
    """The project's tables, from its SQLite migrations applied to a scratch database."""
    scratch = sqlite3.connect(":memory:")
    install(scratch)  # defaults may call the runtime's functions (aragora_now)
    try:
        apply_schema(scratch, migrations)
        out: dict[str, TargetTable] = {}
        for table in expected.tables:
            info = scratch.execute(f"PRAGMA table_info({quote(table.name)})").fetchall()
            defaults: dict[str, tuple[object, bool]] = {}
            for _cid, name, _type, _notnull, default, _pk in info:
                if default is not None:
                    value = scratch.execute(f"SELECT {default}").fetchone()[0]
                    defaults[name] = (value, "'now'" in default.lower())
            keys: dict[int, list[tuple[str, str, str]]] = {}
            for row in scratch.execute(f"PRAGMA foreign_key_list({quote(table.name)})"):
                keys.setdefault(row[0], []).append((row[3], row[2], row[4]))
            out[table.name] = TargetTable(
                table.name,
                [c.name for c in table.columns],
                {c.name: "_" * c.array_dims + c.pg_type for c in table.columns},
                {c.name for c in table.columns if c.not_null or c.sqlite_rowid},
                defaults,
                [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])],
                [parts[0] for parts in keys.values() if len(parts) == 1 and parts[0][2]],
            )
        return out
    finally:
        scratch.close()


@dataclass(slots=True)
class SourceTableReport:
    file: str
    table: str
    target: str | None
    rows: int = 0
    staged: int = 0
    duplicates: int = 0
    """Rows another file already gave, value for value."""
    rejected: int = 0
    left_behind_columns: dict[str, int] = field(default_factory=dict)
    """Source columns the project has no place for -> their non-NULL values."""
    rules: dict[str, dict[str, int]] = field(default_factory=dict)
    """column -> rule description -> rows."""


@dataclass(slots=True)
class StageReport:
    tables: list[SourceTableReport] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    key_map: list[dict[str, Any]] = field(default_factory=list)


class _Stager:
    def __init__(self, staged: sqlite3.Connection, targets: dict[str, TargetTable]) -> None:
        self.db = staged
        self.targets = targets
        self.key_maps: dict[str, dict[object, int]] = {}
        self.next_key: dict[str, int] = {}
        self.slugs: dict[str, int] = {}
        """slug base -> debates staged with it."""
        self.created: dict[str, list[str]] = {}
        self.statements: dict[tuple[str, tuple[str, ...], tuple[bool, ...]], str] = {}
        self.derived: tuple[str, str] | None = None
        """The column derived for the row being staged, and its slug base."""
        self.now = encode_timestamptz(datetime.now(UTC))
        self.report = StageReport()

    def create(self, target: TargetTable, columns: list[str]) -> list[str]:
        """The staged table for ``target`` with ``columns`` (untyped, so values keep their
        storage class), keyed as the project table when the key is among them."""
        if target.name in self.created:
            have = self.created[target.name]
            for extra in (c for c in columns if c not in have):
                self.db.execute(f"ALTER TABLE {quote(target.name)} ADD COLUMN {quote(extra)}")
                have.append(extra)
            return have
        key = ""
        if target.pk and all(c in columns for c in target.pk):
            key = f", PRIMARY KEY ({', '.join(quote(c) for c in target.pk)})"
        self.db.execute(
            f"CREATE TABLE {quote(target.name)} ({', '.join(quote(c) for c in columns)}{key})"
        )
        self.created[target.name] = list(columns)
        return self.created[target.name]

    def plan_keys(self, target: TargetTable, sources: list[tuple[SourceFile, str]]) -> None:
        """Map the table's keys when some source key is text where the project's is an
        integer: new keys start after the largest integer key of any source."""
        if not target.integer_key:
            return
        column, text, largest = target.pk[0], False, 0
        for source, table in sources:
            db = open_read_only(source.path)
            try:
                names = [r[1] for r in db.execute(f"PRAGMA table_info({quote(table)})")]
                if column not in names:
                    continue
                for kind, _low, high, count in db.execute(
                    f"SELECT typeof({quote(column)}), min({quote(column)}), max({quote(column)}), "
                    f"count(*) FROM {quote(table)} WHERE {quote(column)} IS NOT NULL GROUP BY 1"
                ):
                    if kind == "integer":
                        largest = max(largest, high)
                    elif kind == "text" and count:
                        texts = (
                            f"SELECT {quote(column)} FROM {quote(table)} "
                            f"WHERE typeof({quote(column)}) = 'text'"
                        )
                        for (value,) in db.execute(texts):
                            if _INT_TEXT.match(value):
                                largest = max(largest, int(value))
                            else:
                                text = True
            finally:
                db.close()
        if text:
            self.key_maps[target.name] = {}
            self.next_key[target.name] = largest + 1

    def table(self, source: SourceFile, table: str, target: TargetTable) -> None:
        report = SourceTableReport(source.name, table, target.name)
        self.report.tables.append(report)
        db = open_read_only(source.path)
        try:
            names = [r[1] for r in db.execute(f"PRAGMA table_info({quote(table)})")]
            wanted = set(target.columns)
            for extra in (c for c in names if c not in wanted):
                values = db.execute(f"SELECT count({quote(extra)}) FROM {quote(table)}").fetchone()[
                    0
                ]
                report.left_behind_columns[extra] = values
            kept = [c for c in names if c in wanted]
            derived = self._derived(target, kept)
            columns = self.create(target, kept + derived)
            counts: dict[str, Counter[str]] = {}
            for rowid, row in _rows(db, table, kept):
                report.rows += 1
                values = dict(zip(kept, row, strict=True))
                self.derived = None
                applied: dict[str, Counter[str]] = {}
                self._apply(target, values, applied)
                if self._insert(source, table, target, columns, rowid, values, report):
                    for column, rules in applied.items():
                        counts.setdefault(column, Counter()).update(rules)
                elif self.derived is not None:
                    # A duplicate takes no slug: the next debate of that base gets it.
                    self.slugs[self.derived[1]] -= 1
            report.rules = {
                c: {RULES[r]: n for r, n in sorted(rules.items())} for c, rules in counts.items()
            }
        finally:
            db.close()

    def _derived(self, target: TargetTable, kept: list[str]) -> list[str]:
        debate = target.name == "debates" and "slug" in target.not_null
        return ["slug"] if debate and "slug" not in kept and "task" in kept else []

    def _apply(
        self, target: TargetTable, values: dict[str, Any], counts: dict[str, Counter[str]]
    ) -> None:
        def count(column: str, rule: str) -> None:
            counts.setdefault(column, Counter())[rule] += 1

        if target.name in self.key_maps:
            column = target.pk[0]
            value = values.get(column)
            if isinstance(value, str) and not _INT_TEXT.match(value):
                mapping = self.key_maps[target.name]
                if value not in mapping:
                    mapping[value] = self.next_key[target.name]
                    self.next_key[target.name] += 1
                    self.report.key_map.append(
                        {"table": target.name, "source_key": value, "key": mapping[value]}
                    )
                values[column] = mapping[value]
                count(column, "key_map")
        for column, parent, _parent_column in target.references:
            refs = self.key_maps.get(parent)
            value = values.get(column)
            if refs and isinstance(value, str) and value in refs:
                values[column] = refs[value]
                count(column, "key_map_ref")
        if target.name == "debates" and values.get("slug") is None and "task" in values:
            day = _day(values.get("created_at"))
            base = slug_base(str(values.get("task") or ""), day)
            used = self.slugs.get(base, 0)
            self.slugs[base] = used + 1
            values["slug"] = with_suffix(base, used)
            self.derived = ("slug", base)
            count("slug", "slug_from_task")
        for column in list(values):
            if values[column] is not None or column not in target.not_null:
                continue
            if (target.name, column) in FILLS:
                values[column] = FILLS[(target.name, column)]
                count(column, "null_fill")
            elif column in target.defaults:
                value, now = target.defaults[column]
                values[column] = self.now if now else value
                count(column, "null_now" if now else "null_default")

    def _insert(
        self,
        source: SourceFile,
        table: str,
        target: TargetTable,
        columns: list[str],
        rowid: object,
        values: dict[str, Any],
        report: SourceTableReport,
    ) -> bool:
        """Stage one row; False when it was not (a duplicate, or a reject)."""
        names = [c for c in columns if c in values]
        params = [values[c] for c in names]
        raw = tuple(type(v) is _RawText for v in params)
        shape = (target.name, tuple(names), raw)
        statement = self.statements.get(shape)
        if statement is None:
            statement = self.statements[shape] = (
                f"INSERT INTO {quote(target.name)} ({', '.join(quote(c) for c in names)}) "
                f"VALUES ({', '.join(_value(v) for v in params)}) ON CONFLICT DO NOTHING"
            )
        cursor = self.db.execute(statement, params)
        if cursor.rowcount == 1:
            report.staged += 1
            self.db.execute(
                f"INSERT INTO {PROVENANCE} VALUES (?, ?, ?, ?, ?)",
                (target.name, cursor.lastrowid, source.name, table, _position(rowid)),
            )
            return True
        where = " AND ".join(f"{quote(c)} IS ?" for c in target.pk)
        compared = [c for c in names if self.derived is None or c != self.derived[0]]
        held = self.db.execute(
            f"SELECT {', '.join(quote(c) for c in compared)}, rowid FROM {quote(target.name)} "
            f"WHERE {where}",
            [values[c] for c in target.pk],
        ).fetchone()
        if held is not None and list(held[:-1]) == [values[c] for c in compared]:
            report.duplicates += 1
            return False
        first = self.db.execute(
            f"SELECT file, source_table FROM {PROVENANCE} WHERE target = ? AND staged = ?",
            (target.name, held[-1] if held else None),
        ).fetchone()
        report.rejected += 1
        key = [values[c] for c in target.pk]
        self.report.rejects.append(
            {
                "file": source.name,
                "table": table,
                "position": rowid,
                "key": key[0] if len(key) == 1 else key,
                "reason": f"key also given by {first[0]}:{first[1]} with other values"
                if first
                else "key given twice",
            }
        )
        return False


def _value(value: Any) -> str:
    """The placeholder of one value: text that is not UTF-8 is written as TEXT still, so
    the copy rejects it with its reason instead of taking it for a blob."""
    return "CAST(? AS TEXT)" if isinstance(value, _RawText) else "?"


class _RawText(bytes):
    """A TEXT value of the source that is not valid UTF-8."""


def _position(rowid: object) -> str:
    return json.dumps(rowid, default=str)


def _day(value: object) -> date:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    if isinstance(value, int | float) and 0 < value < 1e11:
        return datetime.fromtimestamp(value, UTC).date()
    return date(1970, 1, 1)


def _rows(
    db: sqlite3.Connection, table: str, columns: list[str]
) -> Iterator[tuple[object, tuple[Any, ...]]]:
    """(rowid or key, values) of every row in rowid (else key) order; text that is not
    UTF-8 comes as :class:`_RawText`."""
    listed = ", ".join(quote(c) for c in columns) or "NULL"
    try:
        db.execute(f"SELECT rowid FROM {quote(table)} LIMIT 0")
        lead, order = "rowid", "rowid"
    except SQLITE_OPERATIONAL_ERROR:  # WITHOUT ROWID
        pk = [
            r[1]
            for r in sorted(db.execute(f"PRAGMA table_info({quote(table)})"), key=lambda r: r[5])
            if r[5]
        ]
        lead = "json_array(" + ", ".join(quote(c) for c in pk) + ")"
        order = ", ".join(quote(c) for c in pk)
    done = 0
    try:
        for row in db.execute(f"SELECT {lead}, {listed} FROM {quote(table)} ORDER BY {order}"):
            yield row[0], tuple(row[1 : 1 + len(columns)])
            done += 1
        return
    except SQLITE_OPERATIONAL_ERROR as exc:
        if "decode" not in str(exc):
            raise
    # Some text is not UTF-8: read on, from the row that failed, with each value's type.
    typed = ", ".join(f"typeof({quote(c)}), {quote(c)}" for c in columns) or "NULL, NULL"
    db.text_factory = bytes
    try:
        rows = db.execute(
            f"SELECT {lead}, {typed} FROM {quote(table)} ORDER BY {order} LIMIT -1 OFFSET ?",
            (done,),
        )
        for row in rows:
            values: list[Any] = []
            for i in range(1, len(row) - 1, 2):
                kind, value = row[i], row[i + 1]
                if kind == b"text":
                    try:
                        value = value.decode("utf-8")
                    except UnicodeDecodeError:
                        value = _RawText(value)
                values.append(value)
            lead_value = row[0].decode() if isinstance(row[0], bytes) else row[0]
            yield lead_value, tuple(values)
    finally:
        db.text_factory = str


def stage(
    sources: Sequence[SourceFile],
    targets: dict[str, TargetTable],
    staged_path: Path,
    key: SqliteKey | None = None,
) -> StageReport:
    """Stage every recognised table of ``sources`` into a new file at ``staged_path``
    (encrypted with ``key`` when the project's database is: it holds the same data)."""
    staged_path.unlink(missing_ok=True)
    os.close(create_private(staged_path))  # it holds the sources' data: 0600 whatever the umask
    db = for_file(staged_path, key).connect(staged_path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("BEGIN")
        db.execute(
            f"CREATE TABLE {PROVENANCE} (target TEXT, staged INTEGER, file TEXT, "
            "source_table TEXT, position TEXT, PRIMARY KEY (target, staged))"
        )
        stager = _Stager(db, targets)
        found: dict[str, list[tuple[SourceFile, str]]] = {}
        for source in sources:
            for table in source_tables(source.path):
                goes = target_table(source.name, table, set(targets))
                if goes is None:
                    counted = open_read_only(source.path)
                    try:
                        rows = counted.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]
                    finally:
                        counted.close()
                    stager.report.tables.append(SourceTableReport(source.name, table, None, rows))
                    continue
                found.setdefault(goes, []).append((source, table))
        edges = [(t.name, p) for t in targets.values() for _c, p, _pc in t.references]
        for name in fk_order(list(found), edges):
            stager.plan_keys(targets[name], found[name])
            for source, table in found[name]:
                stager.table(source, table, targets[name])
        if stager.slugs and "debate_slug_counters" in targets:
            counters = targets["debate_slug_counters"]
            stager.create(counters, ["base", "used"])
            db.executemany(
                "INSERT INTO debate_slug_counters (base, used) VALUES (?, ?)",
                [(base, n - 1) for base, n in sorted(stager.slugs.items())],
            )
        db.execute(f"CREATE TABLE {KEY_MAP} (target TEXT, source_key TEXT, key INTEGER)")
        db.executemany(
            f"INSERT INTO {KEY_MAP} VALUES (?, ?, ?)",
            [(k["table"], k["source_key"], k["key"]) for k in stager.report.key_map],
        )
        db.execute("COMMIT")
        return stager.report
    finally:
        db.close()
