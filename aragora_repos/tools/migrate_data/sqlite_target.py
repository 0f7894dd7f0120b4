"""The SQLite target: copy a SQLite source into a project's own SQLite database.

The same engine as the PostgreSQL target, from the same parts: the plan of shared tables
and columns (refusing source data with no place), :class:`SourceReader`'s byte-bounded
batches in key order, the converters by the target column's PostgreSQL type (each change a
counted rule, each refusal a reject with its reason) and the canonical row checksums.
What differs is the last step: each converted value is written in the form the generated
code keeps in SQLite (``codegen/model/types.py``), and each batch commits in one
``BEGIN IMMEDIATE`` transaction together with its progress row and its rejects, in the
target file, so a run killed at any point resumes after the last committed batch.

Foreign keys are not enforced during the copy (SQLite has no deferred check across a
cycle); orphans are found per batch instead, as on PostgreSQL: a row whose parent is
neither in the target nor, for a parent table copied later, in the source is rejected
(23503). ``PRAGMA foreign_key_check`` runs at the end.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aragora_repos import errors
from aragora_repos.backends.sqlite.functions import install
from aragora_repos.backends.sqlite.opener import ENV, Opener, for_file, is_encrypted_file
from aragora_repos.backup import locked
from aragora_repos.codec import decode_timestamptz, encode_timestamp, encode_timestamptz
from aragora_repos.config import SqliteKey
from aragora_repos.drift import ExpectedSchema
from aragora_repos.errors import SQLITE_INTEGRITY_ERROR
from aragora_repos.files import replacing
from aragora_repos.tools.canonical import row_hasher
from aragora_repos.tools.convert import DECIMAL_JSON, JsonText, TargetColumn, describe_rules
from aragora_repos.tools.jsonb import jsonb_text
from aragora_repos.tools.migrate_data.copier import _reject_line
from aragora_repos.tools.migrate_data.plan import ForeignKey, TablePlan, _source_tables, fk_order
from aragora_repos.tools.migrate_data.report import DataMigrationReport, TableReport
from aragora_repos.tools.migrate_data.source import (
    DEFAULT_BATCH_BYTES,
    Batch,
    SourceReader,
    _open_source,
    present,
    source_has,
)
from aragora_repos.tools.migrate_data.state import RejectRow, quote
from aragora_repos.tools.migrate_data.verify import Checksum, source_checksum

#: Progress of each source table, kept in the target file beside the data.
PROGRESS_TABLE = "aragora_migrate_progress"
_STATE_DDL = f"""
CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (
    source TEXT NOT NULL,
    table_name TEXT NOT NULL,
    last_key TEXT,
    rows_read INTEGER NOT NULL DEFAULT 0,
    rows_copied INTEGER NOT NULL DEFAULT 0,
    rows_skipped INTEGER NOT NULL DEFAULT 0,
    rows_rejected INTEGER NOT NULL DEFAULT 0,
    batches INTEGER NOT NULL DEFAULT 0,
    conversions TEXT NOT NULL DEFAULT '{{}}',
    refused_rows INTEGER NOT NULL DEFAULT 0,
    refused_sum TEXT NOT NULL DEFAULT '0',
    done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source, table_name)
);
CREATE TABLE IF NOT EXISTS aragora_migrate_rejects (
    source TEXT NOT NULL,
    table_name TEXT NOT NULL,
    position TEXT NOT NULL,
    key TEXT NOT NULL,
    column_name TEXT,
    reason TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (source, table_name, position)
);
"""
REJECTS_TABLE = "aragora_migrate_rejects"
_ENUM_CHECK = re.compile(r"CHECK \((?:\"[^\"]+\"|\w+) IN \(((?:'(?:[^']|'')*'(?:, )?)+)\)\)")


def _same(value: Any) -> Any:
    return value


def _storage(column: TargetColumn) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(encode, decode) between a converted value and its SQLite storage form."""
    kind = column.type_name

    if kind == "bool":
        return int, bool
    if kind == "numeric":
        return str, Decimal
    if kind == "timestamptz":
        return encode_timestamptz, decode_timestamptz
    if kind == "timestamp":
        return encode_timestamp, datetime.fromisoformat
    if kind == "date":
        return date.isoformat, date.fromisoformat
    if kind == "jsonb":
        # One value per key, as jsonb keeps it: SQLite's JSON functions would otherwise
        # read the first of two repeated keys where PostgreSQL reads the last.
        return (
            lambda v: jsonb_text(v.document if type(v) is JsonText else DECIMAL_JSON.decode(v)),
            _same,
        )
    if kind.startswith("_"):
        return (
            lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")),
            json.loads,
        )
    if kind in ("float4", "float8"):
        return _same, float
    return _same, _same


def _target_columns(
    db: sqlite3.Connection, expected: ExpectedSchema
) -> dict[str, list[TargetColumn]]:
    out: dict[str, list[TargetColumn]] = {}
    for table in expected.tables:
        sql = db.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (table.name,)
        ).fetchone()
        if sql is None:
            raise errors.MigrationError(
                f"cannot migrate data: the target has no table {table.name}; apply the schema "
                "first (aragora-repos migrate up)"
            )
        columns = []
        for c in table.columns:
            type_name = ("_" * c.array_dims) + c.pg_type
            labels: tuple[str, ...] = ()
            if c.sqlite_type == "TEXT" and c.array_dims == 0 and not _builtin(c.pg_type):
                labels = _enum_labels(sql[0], c.name)
            columns.append(TargetColumn(c.name, type_name, type_name, c.not_null, labels))
        out[table.name] = columns
    return out


def _builtin(pg_type: str) -> bool:
    from aragora_repos.tools.convert import _BUILDERS

    return pg_type in _BUILDERS


def _enum_labels(sql: str, column: str) -> tuple[str, ...]:
    for match in _ENUM_CHECK.finditer(sql):
        head = match.group(0)[7:].split(" IN ", 1)[0].strip('"').replace('""', '"')
        if head == column:
            return tuple(
                v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'", match.group(1))
            )
    return ()


def _plan(
    source: sqlite3.Connection,
    target: sqlite3.Connection,
    expected: ExpectedSchema,
    tables: Sequence[str] | None,
    exclude: Sequence[str],
) -> tuple[list[TablePlan], list[str], dict[str, list[str]], dict[str, int]]:
    src = _source_tables(source)
    columns = _target_columns(target, expected)
    excluded = set(exclude)
    if tables:
        unknown = [t for t in tables if t not in src or t not in columns]
        if unknown:
            raise errors.ConfigError(
                f"--tables: {', '.join(unknown)} not in both the source and the target"
            )
    names = [t for t in (tables or sorted(src)) if t in columns and t not in excluded]
    unmatched = [] if tables else sorted(t for t in src if t not in columns and t not in excluded)

    def count(sql: str) -> int:
        return int(source.execute(sql).fetchone()[0])

    left_behind = {
        t: count(f"SELECT count(*) FROM {quote(t)}") for t in sorted(excluded) if t in src
    }
    lost = [f"table {t} ({count(f'SELECT count(*) FROM {quote(t)}'):,} rows)" for t in unmatched]
    dropped: dict[str, list[str]] = {}
    for name in names:
        have = {c.name for c in columns[name]}
        for extra in (c for c in src[name][0] if c not in have):
            values = count(f"SELECT count({quote(extra)}) FROM {quote(name)}")
            if f"{name}.{extra}" in excluded:
                left_behind[f"{name}.{extra}"] = values
            elif values:
                lost.append(f"column {name}.{extra} ({values:,} non-NULL values)")
            dropped.setdefault(name, []).append(extra)
    if lost:
        raise errors.MigrationError(
            "cannot migrate data: the target has no place for "
            + "; ".join(lost)
            + ". Apply the schema that has them (aragora-repos migrate up), or leave them out "
            "by name with --exclude-tables (TABLE or TABLE.COLUMN)"
        )
    edges: list[tuple[str, str, ForeignKey | None]] = []
    for name in names:
        keys: dict[int, list[tuple[str, str, str]]] = {}
        for row in target.execute(f"PRAGMA foreign_key_list({quote(name)})"):
            keys.setdefault(row[0], []).append((row[2], row[3], row[4]))
        for key_id, parts in keys.items():
            parent = parts[0][0]
            single = None
            if len(parts) == 1 and parts[0][2] is not None:
                single = ForeignKey(f"{name}_fk{key_id}", parts[0][1], parent, parts[0][2], "")
            edges.append((name, parent, single))
    order = fk_order(names, [(c, p) for c, p, _ in edges])
    plans = []
    for position, name in enumerate(order):
        source_columns, pk, rowid = src[name]
        wanted = set(source_columns)
        plan = TablePlan(
            name,
            [c for c in columns[name] if c.name in wanted],
            ["rowid"] if rowid else pk,
            pk or ["rowid"],
            foreign_keys=[
                k for c, p, k in edges if c == name and k is not None and k.column in wanted
            ],
        )
        plan.later_parents = {p for c, p, _ in edges if c == name and p in order[position:]}
        plans.append(plan)
    return plans, unmatched, dropped, left_behind


class _SqliteCopier:
    def __init__(
        self,
        source: Path,
        target: Path,
        *,
        batch_size: int,
        batch_bytes: int,
        skip_existing: bool,
        dry_run: bool,
        verify: bool,
        source_opener: Opener,
        target_opener: Opener,
    ) -> None:
        self.source = source
        self.source_id = str(source.resolve())
        self.source_opener = source_opener
        self.db = target_opener.connect(target, isolation_level=None, timeout=30.0)
        install(self.db)  # a column left to its default may call aragora_now()
        self.db.execute("PRAGMA foreign_keys = OFF")
        # Each batch commits with its progress row: a power cut that takes the last
        # commits takes their progress with them, and the rerun resumes from what is on
        # disk. So the copy need not wait for the disk at every commit (WAL, NORMAL).
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.skip_existing = skip_existing
        self.dry_run = dry_run
        self.verify = verify
        self.rejects: list[tuple[str, *RejectRow]] = []
        """A dry run's rejects (a real run keeps them in the target, with its progress)."""
        self.hashed: dict[str, tuple[Any, Checksum, Checksum]] = {}
        """Per table: where this run started, the rows earlier runs refused after
        conversion, and the checksum of the converted rows this run kept."""
        self.hashers: dict[str, Callable[[tuple[Any, ...]], int]] = {}
        """Row hashers of the tables verified (to take refused rows out of the sums)."""
        self.columns: dict[str, list[TargetColumn]] = {}
        """Every target table's columns (a parent's storage form, for the orphan check)."""
        self.pausable = (
            self.db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_local'"
            ).fetchone()
            is not None
        )
        """Whether the target captures changes for the sync (codegen.analysis.synced):
        copied rows are no changes, so each batch's transaction turns capture off."""

    def _begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        if self.pausable:
            self.db.execute(
                "INSERT OR IGNORE INTO sync_local (name, value) VALUES ('capture_paused', 'copy')"
            )

    def _commit(self) -> None:
        if self.pausable:
            self.db.execute("DELETE FROM sync_local WHERE name = 'capture_paused'")
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def table(self, table: TablePlan) -> TableReport:
        report = TableReport(table.name)
        started = time.perf_counter()
        reader = SourceReader(
            self.source,
            table,
            batch_bytes=self.batch_bytes,
            hashes=self.verify,
            opener=self.source_opener,
        )
        counts = [Counter[str]() for _ in table.columns]
        try:
            report.source_rows = reader.count()
            after: Any = None
            state = None
            if not self.dry_run:
                state = self.db.execute(
                    "SELECT last_key, rows_copied, rows_skipped, rows_rejected, conversions, "
                    f"refused_rows, refused_sum, done FROM {PROGRESS_TABLE} "
                    "WHERE source = ? AND table_name = ?",
                    (self.source_id, table.name),
                ).fetchone()
            refused = Checksum(0, 0)
            run = Checksum(0, 0)
            if state is not None:
                after = None if state[0] is None else json.loads(state[0])
                report.already_done = state[1] + state[2] + state[3]
                report.migrated, report.skipped, report.errors = state[1], state[2], state[3]
                for i, column in enumerate(table.columns):
                    counts[i].update(json.loads(state[4]).get(column.name, {}))
                refused = Checksum(state[5], int(state[6]))
            # What verification compares: the rows before ``after`` (earlier runs) are
            # read again from the source then; this run's are summed as they go.
            self.hashed[table.name] = (after, refused, run)
            if state is not None and state[7]:
                report.conversions = _readable(table, counts)
                return report
            encoders = [_storage(c)[0] for c in table.columns]
            names = ", ".join(quote(c.name) for c in table.columns)
            conflict = ""
            if self.skip_existing and table.key_columns != ["rowid"]:
                conflict = (
                    f" ON CONFLICT ({', '.join(quote(c) for c in table.key_columns)}) DO NOTHING"
                )
            insert = (
                f"INSERT INTO {quote(table.name)} ({names}) "
                f"VALUES ({', '.join('?' * len(table.columns))}){conflict}"
            )
            while (batch := reader.read(after, self.batch_size)).read:
                after = batch.last_key
                copied, skipped, rejects, gone = self._batch(table, batch, insert, encoders)
                refused = Checksum(refused.rows + gone.rows, refused.total + gone.total)
                if batch.hashes is not None:
                    run = Checksum(
                        run.rows + len(batch.hashes) - gone.rows,
                        run.total + sum(batch.hashes) - gone.total,
                    )
                    start, earlier, _ = self.hashed[table.name]
                    self.hashed[table.name] = (start, earlier, run)
                for i, c in enumerate(batch.counts):
                    counts[i].update(c)
                report.batches += 1
                report.migrated += copied
                report.skipped += skipped
                report.errors += len(rejects)
                if not self.dry_run:
                    self._progress(table, report, after, counts, refused, done=False)
                    self._commit()
            if not self.dry_run:
                self._begin()
                self._progress(table, report, after, counts, refused, done=True)
                self._commit()
        finally:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            reader.close()
        report.conversions = _readable(table, counts)
        report.seconds = time.perf_counter() - started
        return report

    def _batch(
        self,
        table: TablePlan,
        batch: Batch,
        insert: str,
        encoders: list[Callable[[Any], Any]],
    ) -> tuple[int, int, list[RejectRow], Checksum]:
        """Write one batch (the transaction is left open for its progress row). Returns
        rows copied, rows skipped (their key already there), the rejects, and the checksum
        of the converted rows refused after conversion (orphans, constraint violations)."""
        records, sources, rejects, refused = self._orphans(table, batch)
        rows = [
            tuple(None if v is None else enc(v) for v, enc in zip(r, encoders, strict=True))
            for r in records
        ]
        copied = 0
        failed: list[tuple[Any, ...]] = []
        if not self.dry_run:
            self._begin()
            # rowcount counts the rows each INSERT wrote (a conflict skipped writes none),
            # not what triggers wrote (a full-text index kept in step).
            try:
                self.db.execute("SAVEPOINT batch")
                copied = self.db.executemany(insert, rows).rowcount if rows else 0
                self.db.execute("RELEASE batch")
            except SQLITE_INTEGRITY_ERROR:
                self.db.execute("ROLLBACK TO batch")
                self.db.execute("RELEASE batch")
                copied = 0
                for row, record, source in zip(rows, records, sources, strict=True):
                    try:
                        copied += self.db.execute(insert, row).rowcount
                    except SQLITE_INTEGRITY_ERROR as exc:
                        failed.append(record)
                        rejects.append(
                            (batch.position(source), batch.key(source), None, _reason(exc), None)
                        )
        skipped = 0 if self.dry_run else len(rows) - copied - len(failed)
        hasher = self.hashers.get(table.name)
        gone = refused + failed
        checksum = Checksum(len(gone), sum(map(hasher, gone)) if hasher else 0)
        if not self.dry_run:
            self.db.executemany(
                f"INSERT OR REPLACE INTO {REJECTS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(self.source_id, table.name, *r) for r in rejects],
            )
        else:
            self.rejects += [(table.name, *r) for r in rejects]
        return copied, skipped, rejects, checksum

    def _orphans(
        self, table: TablePlan, batch: Batch
    ) -> tuple[
        list[tuple[Any, ...]], list[tuple[Any, ...]], list[RejectRow], list[tuple[Any, ...]]
    ]:
        """The batch without rows whose single-column foreign key has no parent (in the
        target, or for a parent table copied later, in the source): (records, sources,
        every reject of the batch, the refused records)."""
        records, sources = batch.records, batch.sources
        rejects = list(batch.rejects)
        refused: list[tuple[Any, ...]] = []
        names = [c.name for c in table.columns]
        for key in table.foreign_keys:
            at = names.index(key.column)
            parent = next(
                (c for c in self.columns.get(key.parent, []) if c.name == key.parent_column), None
            )
            encode = _storage(parent)[0] if parent is not None else _same
            stored = {r[at]: encode(r[at]) for r in records if r[at] is not None}
            if not stored:
                continue
            there = present(self.db, key.parent, key.parent_column, list(stored.values()))
            missing = {v for v, s in stored.items() if s not in there}
            later = key.parent in table.later_parents or key.parent == table.name
            if missing and (later or self.dry_run):  # a dry run wrote no parents
                missing -= source_has(
                    self.source, key.parent, key.parent_column, list(missing), self.source_opener
                )
            if not missing:
                continue
            kept_records, kept_sources = [], []
            for record, source in zip(records, sources, strict=True):
                if record[at] in missing:
                    refused.append(record)
                    rejects.append(
                        (
                            batch.position(source),
                            batch.key(source),
                            key.column,
                            f'23503: insert or update on table "{table.name}" violates a '
                            f"foreign key (Key ({key.column})=({record[at]}) is not present "
                            f'in table "{key.parent}".)',
                            None,
                        )
                    )
                else:
                    kept_records.append(record)
                    kept_sources.append(source)
            records, sources = kept_records, kept_sources
        return records, sources, rejects, refused

    def _progress(
        self,
        table: TablePlan,
        report: TableReport,
        after: Any,
        counts: list[Counter[str]],
        refused: Checksum,
        *,
        done: bool,
    ) -> None:
        conversions = json.dumps(
            {c.name: dict(+n) for c, n in zip(table.columns, counts, strict=True) if +n}
        )
        self.db.execute(
            f"INSERT INTO {PROGRESS_TABLE} (source, table_name, last_key, rows_read, rows_copied, "
            "rows_skipped, rows_rejected, batches, conversions, refused_rows, refused_sum, done) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (source, table_name) DO UPDATE SET "
            "last_key = excluded.last_key, rows_read = excluded.rows_read, "
            "rows_copied = excluded.rows_copied, rows_skipped = excluded.rows_skipped, "
            "rows_rejected = excluded.rows_rejected, batches = excluded.batches, "
            "conversions = excluded.conversions, refused_rows = excluded.refused_rows, "
            "refused_sum = excluded.refused_sum, done = excluded.done",
            (
                self.source_id,
                table.name,
                None if after is None else json.dumps(after),
                report.migrated + report.skipped + report.errors,
                report.migrated,
                report.skipped,
                report.errors,
                report.batches,
                conversions,
                refused.rows,
                str(refused.total),
                int(done),
            ),
        )

    def checksum(self, table: TablePlan) -> Checksum:
        decoders = [_storage(c)[1] for c in table.columns]
        hasher = row_hasher(table.columns)
        rows = total = 0
        names = ", ".join(quote(c.name) for c in table.columns)
        for row in self.db.execute(f"SELECT {names} FROM {quote(table.name)}"):
            rows += 1
            total += hasher(
                tuple(None if v is None else d(v) for v, d in zip(row, decoders, strict=True))
            )
        return Checksum(rows, total)


def _reason(exc: Exception) -> str:
    text = str(exc)
    if "UNIQUE" in text or "PRIMARY KEY" in text:
        return f"23505: {text}"
    if "NOT NULL" in text:
        return f"23502: {text}"
    if "CHECK" in text:
        return f"23514: {text}"
    return text


def _readable(table: TablePlan, counts: list[Counter[str]]) -> dict[str, dict[str, int]]:
    return {c.name: describe_rules(n) for c, n in zip(table.columns, counts, strict=True) if +n}


def _verify(copier: _SqliteCopier, path: Path, table: TablePlan, report: TableReport) -> None:
    """The source's converted rows, less those refused after conversion, against every
    row of the target table (a row already there with other values is a difference):
    this run's rows as hashed during the copy, earlier runs' read again from the source."""
    start, earlier_refused, run = copier.hashed[table.name]
    earlier = Checksum(0, 0)
    if start is not None:
        earlier = source_checksum(path, table, upto=start, opener=copier.source_opener)
    want = Checksum(
        earlier.rows - earlier_refused.rows + run.rows,
        earlier.total - earlier_refused.total + run.total,
    )
    have = copier.checksum(table)
    report.verified = want.rows == have.rows and (want.total - have.total) % 2**64 == 0
    report.verify_detail = f"source {want}; target {have}"


def copy_into_sqlite(
    sqlite_path: str | Path,
    target: str | Path,
    expected: ExpectedSchema,
    *,
    tables: Sequence[str] | None = None,
    batch_size: int = 1000,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    skip_existing: bool = True,
    dry_run: bool = False,
    verify: bool = False,
    restart: bool = False,
    reject_file: str | Path | None = None,
    exclude_tables: Sequence[str] = (),
    key: SqliteKey | object | None = ENV,
) -> DataMigrationReport:
    """Copy ``sqlite_path`` into the project's SQLite database ``target`` (its schema
    applied, e.g. by ``aragora-repos migrate up``; ``expected`` is the generated package's
    ``EXPECTED``). Arguments as :func:`aragora_repos.tools.migrate_data.migrate_data`.
    Either file may be encrypted (SQLCipher), opened with ``key`` (default: the
    environment's ``ARAGORA_SQLITE_KEY``)."""
    target = Path(target)
    if dry_run or not target.is_file():  # nothing written, or the clear error of _copy
        return _copy(
            sqlite_path=sqlite_path,
            target=target,
            expected=expected,
            tables=tables,
            batch_size=batch_size,
            batch_bytes=batch_bytes,
            skip_existing=skip_existing,
            dry_run=dry_run,
            verify=verify,
            restart=restart,
            reject_file=reject_file,
            exclude_tables=exclude_tables,
            key=key,
        )
    # One copy into a database at a time: two at once would each keep their own place in
    # the same progress rows. A second waits, then resumes where the first left off.
    with locked(target.parent, exclusive=True):
        return _copy(
            sqlite_path=sqlite_path,
            target=target,
            expected=expected,
            tables=tables,
            batch_size=batch_size,
            batch_bytes=batch_bytes,
            skip_existing=skip_existing,
            dry_run=dry_run,
            verify=verify,
            restart=restart,
            reject_file=reject_file,
            exclude_tables=exclude_tables,
            key=key,
        )


def _copy(
    sqlite_path: str | Path,
    target: str | Path,
    expected: ExpectedSchema,
    *,
    tables: Sequence[str] | None = None,
    batch_size: int = 1000,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    skip_existing: bool = True,
    dry_run: bool = False,
    verify: bool = False,
    restart: bool = False,
    reject_file: str | Path | None = None,
    exclude_tables: Sequence[str] = (),
    key: SqliteKey | object | None = ENV,
) -> DataMigrationReport:
    if batch_size < 1:
        raise errors.ConfigError(f"batch size must be at least 1, got {batch_size}")
    path, target = Path(sqlite_path), Path(target)
    if not target.is_file():
        raise errors.MigrationError(
            f"cannot migrate data: no SQLite database at {target}; run migrate up first"
        )
    reject_path = Path(reject_file) if reject_file else path.with_name(path.name + ".rejects.jsonl")
    report = DataMigrationReport(str(path), dry_run=dry_run, reject_file=str(reject_path))
    started = time.perf_counter()
    copier = _SqliteCopier(
        path,
        target,
        batch_size=batch_size,
        batch_bytes=batch_bytes,
        skip_existing=skip_existing,
        dry_run=dry_run,
        verify=verify,
        source_opener=for_file(path, key),
        target_opener=for_file(target, key),
    )
    source = _open_source(path, copier.source_opener)
    try:
        if not dry_run:
            copier.db.executescript(_STATE_DDL)
            if restart:
                copier.db.execute(
                    f"DELETE FROM {PROGRESS_TABLE} WHERE source = ?", (copier.source_id,)
                )
        plans, unmatched, dropped, left_behind = _plan(
            source, copier.db, expected, tables, exclude_tables
        )
        report.unmatched_tables, report.dropped_columns, report.left_behind = (
            unmatched,
            dropped,
            left_behind,
        )
        copier.columns = {p.name: p.columns for p in plans}
        if verify:
            copier.hashers = {p.name: row_hasher(p.columns) for p in plans}
        for table in plans:
            report.tables[table.name] = copier.table(table)
        if not dry_run:
            broken = copier.db.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise errors.ForeignKeyViolation(
                    f"migrate-data: {len(broken)} row(s) reference a missing parent after the copy "
                    f"(first: {broken[0][0]} rowid {broken[0][1]} -> {broken[0][2]}); "
                    "their parents were rejected: see the reject file"
                )
        if verify and not dry_run:
            for table in plans:
                _verify(copier, path, table, report.tables[table.name])
        rows = copier.rejects
        if not dry_run:
            rows = copier.db.execute(
                "SELECT table_name, position, key, column_name, reason, value "
                f"FROM {REJECTS_TABLE} WHERE source = ? ORDER BY table_name, position",
                (copier.source_id,),
            ).fetchall()
        report.reject_file = None
        if rows:
            with replacing(reject_path) as f:
                withhold = is_encrypted_file(path)
                for r in rows:
                    f.write(_reject_line(*r, withhold=withhold))
            report.reject_file = str(reject_path)
        elif reject_path.exists():
            reject_path.unlink()
    finally:
        source.close()
        copier.close()
    report.seconds = time.perf_counter() - started
    return report
