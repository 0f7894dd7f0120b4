"""``adopt``: bring an existing installation's data into this project's schema.

Finds the layout, migrates the target schema, stages every recognised store through the
mapping rules (:mod:`.stage`), copies the staged rows with migrate-data's engine into
PostgreSQL or the project's SQLite database, optionally verifies, and reports per source
table: rows copied, converted (by rule), rejected and left behind. Every source row is
accounted for: copied, already there, the same as a row of another file, or rejected
with its reason in ``adopt.rejects.jsonl``.

The staged file and the reports live in ``<data dir>/adopt/``; a rerun on unchanged
sources resumes the copy, a rerun on changed sources stages again and copies what is new.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from aragora_repos import errors
from aragora_repos.backends.sqlite.opener import for_file
from aragora_repos.backup import locked
from aragora_repos.config import Config, SqliteKey
from aragora_repos.drift import ExpectedSchema
from aragora_repos.files import private_dir, replacing
from aragora_repos.migrations import Migration
from aragora_repos.tools.adopt.sources import Found, find_sources
from aragora_repos.tools.adopt.stage import (
    KEY_MAP,
    PROVENANCE,
    StageReport,
    apply_schema,
    stage,
    target_tables,
)
from aragora_repos.tools.migrate_data.report import DataMigrationReport


@dataclass(slots=True)
class AdoptedTable:
    file: str
    table: str
    target: str | None
    rows: int
    in_target: int = 0
    """Rows now in the target: copied by this run, or by an earlier one, or already there
    (the target table's report line says how many the copy found there already)."""
    duplicates: int = 0
    rejected: int = 0
    left_behind: int = 0
    """Rows of a table the project has no place for."""
    left_behind_columns: dict[str, int] = field(default_factory=dict)
    rules: dict[str, dict[str, int]] = field(default_factory=dict)
    """Mapping rules applied while staging: column -> rule -> rows."""

    @property
    def accounted(self) -> bool:
        done = self.in_target + self.duplicates + self.rejected
        return done + self.left_behind == self.rows


@dataclass(slots=True)
class AdoptReport:
    source: str
    layout: str
    target: str
    dry_run: bool
    tables: list[AdoptedTable] = field(default_factory=list)
    copied: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per target table: rows ``copied``, ``already_there`` (skipped) and ``rejected`` by the
    copy, these runs together, of which ``by_earlier_runs`` before this one (a resumed copy)."""
    conversions: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """Per target table: column -> conversion rule -> rows (the copy's)."""
    verified: bool | None = None
    reject_file: str | None = None
    key_map_file: str | None = None
    seconds: float = 0.0
    stage_seconds: float = 0.0
    """Of which mapping the sources into the staged file (0 when it was current)."""
    copy_seconds: float = 0.0
    """Of which the copy, with its verification."""

    @property
    def accounted(self) -> bool:
        return all(t.accounted for t in self.tables)

    @property
    def left_behind(self) -> bool:
        return any(t.left_behind or any(t.left_behind_columns.values()) for t in self.tables)

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.tables)

    def exit_code(self) -> int:
        """0: every row copied (or there already); 3: some rejected, each with a reason;
        1: rows or values left behind, a row unaccounted for, or verification failed."""
        if not self.accounted or self.left_behind or self.verified is False:
            return 1
        return 3 if self.rejected else 0

    def to_json(self) -> str:
        return json.dumps(
            {**asdict(self), "accounted": self.accounted, "exit_code": self.exit_code()},
            indent=2,
        )

    def render(self) -> str:
        lines = [f"adopt {self.source} ({self.layout}) -> {self.target}"]
        lines.append(f"{'source table':<48} {'rows':>9} {'in target':>10} {'dup':>6} {'reject':>7}")
        for t in self.tables:
            name = f"{t.file}:{t.table}"
            if t.target and t.target != t.table:
                name += f" -> {t.target}"
            if t.target is None:
                lines.append(f"{name:<48} {t.rows:>9,}  LEFT BEHIND (no such table in the project)")
                continue
            lines.append(
                f"{name:<48} {t.rows:>9,} {t.in_target:>10,} {t.duplicates:>6,} {t.rejected:>7,}"
                + ("" if t.accounted else "  UNACCOUNTED")
            )
            for column, values in t.left_behind_columns.items():
                if values:
                    lines.append(f"    {column}: {values:,} values LEFT BEHIND (no such column)")
            for column, rules in t.rules.items():
                for rule, n in rules.items():
                    lines.append(f"    {column}: {n:,} {rule}")
        for table, counts in sorted(self.copied.items()):
            there = counts["already_there"]
            earlier = counts["by_earlier_runs"]
            line = f"{table}: {counts['copied']:,} copied"
            line += f", {there:,} there already" if there else ""
            line += f" ({earlier:,} rows done by earlier runs)" if earlier else ""
            lines.append(line)
            for column, rules in self.conversions.get(table, {}).items():
                for rule, n in rules.items():
                    lines.append(f"    {column}: {n:,} {rule}")
        lines.append(
            f"{self.seconds:.1f} s: staging {self.stage_seconds:.1f} s, "
            f"copy {self.copy_seconds:.1f} s"
        )
        if self.verified is not None:
            lines.append("verified: " + ("checksums match" if self.verified else "DIFFERENCES"))
        if self.reject_file:
            lines.append(f"rejected rows, each with its reason: {self.reject_file}")
        if self.key_map_file:
            lines.append(f"text keys given integer keys: {self.key_map_file}")
        return "\n".join(lines)


def _fingerprint(found: Found, target: str) -> str:
    digest = hashlib.sha256(target.encode())
    for f in found.files:
        stat = f.path.stat()
        digest.update(f"{f.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        for extra in ("-wal",):
            side = f.path.with_name(f.path.name + extra)
            if side.exists():
                digest.update(f"{side.stat().st_size}:{side.stat().st_mtime_ns}".encode())
    return digest.hexdigest()


async def adopt(
    source: Path,
    config: Config,
    migrations: tuple[Migration, ...],
    expected: ExpectedSchema,
    *,
    target: str = "sqlite",
    dry_run: bool = False,
    verify: bool = False,
    batch_size: int = 1000,
) -> AdoptReport:
    """Adopt ``source`` (a data directory or a SQLite file) into the database ``config``
    names: the project's SQLite file (``target="sqlite"``) or PostgreSQL (``"postgres"``)."""
    started = time.perf_counter()
    if target not in ("sqlite", "postgres"):
        raise errors.ConfigError(f"adopt: --target must be sqlite or postgres, got {target!r}")
    if target == "postgres" and config.dsn is None:
        raise errors.ConfigError("adopt --target postgres needs --database-url or DATABASE_URL")
    found = find_sources(source)
    where = "postgres" if target == "postgres" else str(config.sqlite_file)
    if target == "sqlite" and any(
        f.path.resolve() == config.sqlite_file.resolve() for f in found.files
    ):
        raise errors.ConfigError(f"adopt: {config.sqlite_file} is both the source and the target")
    work = config.data_dir / "adopt"
    private_dir(work)
    # One adopt at a time per data directory (they share the staged file); a second
    # waits, then finds the copy done and resumes nothing.
    with locked(work, exclusive=True):
        return await _adopt_locked(
            source,
            config,
            migrations,
            expected,
            target=target,
            dry_run=dry_run,
            verify=verify,
            batch_size=batch_size,
            found=found,
            where=where,
            work=work,
            started=started,
        )


async def _adopt_locked(
    source: Path,
    config: Config,
    migrations: tuple[Migration, ...],
    expected: ExpectedSchema,
    *,
    target: str,
    dry_run: bool,
    verify: bool,
    batch_size: int,
    found: Found,
    where: str,
    work: Path,
    started: float,
) -> AdoptReport:
    from aragora_repos.backends import open_async
    from aragora_repos.tools.migrate_data import migrate_data
    from aragora_repos.tools.migrate_data.sqlite_target import copy_into_sqlite

    staged = work / "staged.db"
    mark = work / "staged.fingerprint"
    fingerprint = _fingerprint(found, where)
    restage = not (staged.is_file() and mark.is_file() and mark.read_text() == fingerprint)
    report = AdoptReport(str(source), found.layout, where, dry_run)
    targets = target_tables(migrations, expected)
    if restage:
        mark.unlink(missing_ok=True)
        staging = time.perf_counter()
        staged_report = stage(found.files, targets, staged, config.sqlite_key)
        report.stage_seconds = time.perf_counter() - staging
        with replacing(mark) as f:
            f.write(fingerprint)
        with replacing(work / "stage.json") as f:
            f.write(json.dumps(asdict(staged_report)))
    else:
        staged_report = StageReport(**json.loads((work / "stage.json").read_text()))
        from aragora_repos.tools.adopt.stage import SourceTableReport

        staged_report.tables = [SourceTableReport(**t) for t in staged_report.tables]  # type: ignore[arg-type]
    backend_config = config if target == "postgres" else _sqlite_only(config)
    if not dry_run:
        db = await open_async(backend_config)
        try:
            await db.migrate(migrations)
        finally:
            await db.close()
    copying = time.perf_counter()
    exclude = [PROVENANCE, KEY_MAP]
    copy_rejects = work / "copy.rejects.jsonl"
    copy: DataMigrationReport
    if target == "postgres":
        assert config.dsn is not None
        copy = await migrate_data(
            staged,
            config.dsn,
            dry_run=dry_run,
            verify=verify,
            restart=restage,
            reject_file=copy_rejects,
            exclude_tables=exclude,
            batch_size=batch_size,
            key=config.sqlite_key,
            pooler=config.pooler,
            direct_dsn=config.direct_dsn,
        )
    elif dry_run:
        copy = _dry_sqlite(
            staged, expected, migrations, copy_rejects, exclude, batch_size, config.sqlite_key
        )
    else:
        import asyncio

        copy = await asyncio.to_thread(
            copy_into_sqlite,
            staged,
            config.sqlite_file,
            expected,
            verify=verify,
            restart=restage,
            reject_file=copy_rejects,
            exclude_tables=exclude,
            batch_size=batch_size,
            key=config.sqlite_key,
        )
    report.copy_seconds = time.perf_counter() - copying
    _account(report, staged_report, copy, staged, copy_rejects, work, config.sqlite_key)
    report.verified = copy.verified if verify and not dry_run else None
    report.seconds = time.perf_counter() - started
    return report


def _sqlite_only(config: Config) -> Config:
    import dataclasses

    return dataclasses.replace(config, backend="sqlite", dsn=None, replicas=())


def _dry_sqlite(
    staged: Path,
    expected: ExpectedSchema,
    migrations: tuple[Migration, ...],
    rejects: Path,
    exclude: list[str],
    batch_size: int,
    key: SqliteKey | None,
) -> DataMigrationReport:
    """A dry run into SQLite: every staged row converted and checked against a scratch
    database of the project's schema; nothing is written but the reject file."""
    import sqlite3
    import tempfile

    from aragora_repos.tools.migrate_data.sqlite_target import copy_into_sqlite

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "scratch.db"
        db = sqlite3.connect(scratch)
        try:
            apply_schema(db, migrations)
        finally:
            db.close()
        return copy_into_sqlite(
            staged,
            scratch,
            expected,
            dry_run=True,
            reject_file=rejects,
            exclude_tables=exclude,
            batch_size=batch_size,
            key=key,
        )


def _account(
    report: AdoptReport,
    staged: StageReport,
    copy: DataMigrationReport,
    staged_path: Path,
    copy_rejects: Path,
    work: Path,
    key: SqliteKey | None,
) -> None:
    """Per source table: what staging did, and which of its staged rows the copy refused
    (traced back through the provenance table); per target table, what the copy did."""

    by_source: dict[tuple[str, str], AdoptedTable] = {}
    for t in staged.tables:
        adopted = AdoptedTable(
            t.file,
            t.table,
            t.target,
            t.rows,
            duplicates=t.duplicates,
            rejected=t.rejected,
            left_behind=0 if t.target else t.rows,
            left_behind_columns=dict(t.left_behind_columns),
            rules=dict(t.rules),
        )
        by_source[(t.file, t.table)] = adopted
        report.tables.append(adopted)
    lines = list(staged.rejects)
    refused: dict[tuple[str, str], int] = {}
    db = for_file(staged_path, key).connect(staged_path)
    try:
        if copy_rejects.is_file():
            for raw in copy_rejects.read_text(encoding="utf-8").splitlines():
                entry = json.loads(raw)
                origin = db.execute(
                    f"SELECT file, source_table, position FROM {PROVENANCE} "
                    "WHERE target = ? AND staged = ?",
                    (entry["table"], entry["position"]),
                ).fetchone()
                if origin is None:
                    raise errors.MigrationError(
                        f"adopt: a rejected staged row ({entry['table']} at "
                        f"{entry['position']}) has no recorded origin"
                    )
                where = (origin[0], origin[1])
                refused[where] = refused.get(where, 0) + 1
                lines.append(
                    {
                        "file": origin[0],
                        "table": origin[1],
                        "position": json.loads(origin[2]),
                        "key": entry["key"],
                        "column": entry.get("column"),
                        "reason": entry["reason"],
                        "value": entry.get("value"),
                    }
                )
        staged_rows = {
            (f, t): n
            for f, t, n in db.execute(
                f"SELECT file, source_table, count(*) FROM {PROVENANCE} GROUP BY 1, 2"
            )
        }
        keys = db.execute(f"SELECT target, source_key, key FROM {KEY_MAP}").fetchall()
    finally:
        db.close()
    for where, adopted in by_source.items():
        if adopted.target is not None:
            adopted.rejected += refused.get(where, 0)
            adopted.in_target = staged_rows.get(where, 0) - refused.get(where, 0)
    for name, table in copy.tables.items():
        report.copied[name] = {
            "copied": table.migrated,
            "already_there": table.skipped,
            "rejected": table.errors,
            "by_earlier_runs": table.already_done,
        }
        if table.conversions:
            report.conversions[name] = table.conversions
    reject_file = work / "adopt.rejects.jsonl"
    if lines:
        with replacing(reject_file) as f:
            for line in lines:
                f.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        report.reject_file = str(reject_file)
    else:
        reject_file.unlink(missing_ok=True)
    if keys:
        key_file = work / "adopt.keymap.jsonl"
        with replacing(key_file) as f:
            for target, source_key, key in keys:
                f.write(json.dumps({"table": target, "source_key": source_key, "key": key}) + "\n")
        report.key_map_file = str(key_file)
