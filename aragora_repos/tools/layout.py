"""Aragora's SQLite file layouts, and consolidation of the legacy one.

Aragora keeps its stores in SQLite files under the data directory in one of two layouts:
``legacy`` (one file per store, with the file names Aragora has always used) and
``consolidated`` (four files: core.db, memory.db, analytics.db, agents.db). ``ARAGORA_DB_MODE``
chooses (default ``consolidated``); :func:`get_db_path` resolves a store's file.

:func:`consolidate` merges the legacy files of a directory into the consolidated ones:
each legacy table is created in its consolidated file with its own definition (a few are
renamed where two stores used the same table name) and its rows copied with
rows already there value for value skipped, so a rerun adds nothing twice; a row whose key
another file (or an earlier run) filled with different values is a collision, written to
``consolidate.rejects.jsonl`` with the row holding the key, and the run is not ok. Each
consolidated file is written in one transaction; a backup of every legacy file is taken
first. ``verify`` checks that every legacy row is present, value for value, in its
consolidated table.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

from aragora_repos.backends.sqlite import connect_read_only, open_read_only
from aragora_repos.backends.sqlite.opener import for_file
from aragora_repos.backup import backup_sqlite, new_backup_folder
from aragora_repos.errors import ConfigError, MigrationError
from aragora_repos.files import ensure_private_file, private_dir, replacing


class DatabaseMode(Enum):
    LEGACY = "legacy"
    """One SQLite file per store."""
    CONSOLIDATED = "consolidated"
    """core.db, memory.db, analytics.db, agents.db."""


class DatabaseType(Enum):
    """Aragora's stores: ``legacy`` is the store's own file, ``consolidated`` the file it
    lives in under the consolidated layout."""

    DEBATES = ("debates", "debates.db", "core.db")
    TRACES = ("traces", "traces.db", "core.db")
    TOURNAMENTS = ("tournaments", "tournaments.db", "core.db")
    EMBEDDINGS = ("embeddings", "debate_embeddings.db", "core.db")
    POSITIONS = ("positions", "grounded_positions.db", "core.db")
    USERS = ("users", "users.db", "core.db")
    TOKEN_BLACKLIST = ("token_blacklist", "token_blacklist.db", "core.db")
    EVOLUTION = ("evolution", "evolution.db", "core.db")
    ONBOARDING = ("onboarding", "onboarding.db", "core.db")
    CONTINUUM_MEMORY = ("continuum_memory", "continuum.db", "memory.db")
    AGENT_MEMORIES = ("agent_memories", "agent_memories.db", "memory.db")
    CONSENSUS_MEMORY = ("consensus_memory", "consensus_memory.db", "memory.db")
    AGORA_MEMORY = ("agora_memory", "agora_memory.db", "memory.db")
    SEMANTIC_PATTERNS = ("semantic_patterns", "semantic_patterns.db", "memory.db")
    SUGGESTION_FEEDBACK = ("suggestion_feedback", "suggestion_feedback.db", "memory.db")
    ELO = ("elo", "agent_elo.db", "analytics.db")
    CALIBRATION = ("calibration", "agent_calibration.db", "analytics.db")
    INSIGHTS = ("insights", "aragora_insights.db", "analytics.db")
    PROMPT_EVOLUTION = ("prompt_evolution", "prompt_evolution.db", "analytics.db")
    META_LEARNING = ("meta_learning", "meta_learning.db", "analytics.db")
    BILLING = ("billing", "billing.db", "analytics.db")
    PERSONAS = ("personas", "agent_personas.db", "agents.db")
    RELATIONSHIPS = ("relationships", "agent_relationships.db", "agents.db")
    LABORATORY = ("laboratory", "persona_lab.db", "agents.db")
    TRUTH_GROUNDING = ("truth_grounding", "aragora_positions.db", "agents.db")
    GENESIS = ("genesis", "genesis.db", "agents.db")
    GENOMES = ("genomes", "genesis.db", "agents.db")

    def __init__(self, key: str, legacy: str, consolidated: str) -> None:
        self.key = key
        self.legacy = legacy
        self.consolidated = consolidated

    def file(self, mode: DatabaseMode) -> str:
        return self.legacy if mode is DatabaseMode.LEGACY else self.consolidated


CONSOLIDATED_FILES = ("core.db", "memory.db", "analytics.db", "agents.db")

#: Tables renamed on consolidation, where two legacy files of one consolidated file use the
#: same table name for different things.
TABLE_RENAMES: Mapping[tuple[str, str], str] = {
    ("continuum.db", "memories"): "continuum_memory",
    ("continuum.db", "archive"): "continuum_memory_archive",
    ("semantic_patterns.db", "embeddings"): "semantic_embeddings",
}


def get_db_mode(env: Mapping[str, str] | None = None) -> DatabaseMode:
    """``ARAGORA_DB_MODE`` (legacy | consolidated, default consolidated)."""
    raw = (os.environ if env is None else env).get("ARAGORA_DB_MODE", "").strip().lower()
    if not raw:
        return DatabaseMode.CONSOLIDATED
    try:
        return DatabaseMode(raw)
    except ValueError:
        raise ConfigError(
            f"invalid ARAGORA_DB_MODE: expected legacy or consolidated, got {raw!r}"
        ) from None


def get_db_path(
    db_type: DatabaseType, data_dir: Path | None = None, mode: DatabaseMode | None = None
) -> Path:
    """The SQLite file of ``db_type`` under ``data_dir`` (default: the configured data
    directory, ``ARAGORA_DATA_DIR`` and its aliases) in ``mode`` (default: ARAGORA_DB_MODE)."""
    if data_dir is None:
        from aragora_repos.config import Config

        data_dir = Config.from_env().data_dir
    return data_dir / db_type.file(mode or get_db_mode())


# --- consolidation ----------------------------------------------------------------------


@dataclass(slots=True)
class TableMove:
    source_file: str
    table: str
    target_file: str
    target_table: str
    source_rows: int = 0
    written: int = 0
    skipped: int = 0
    """Rows already in the consolidated table, value for value (a rerun)."""
    collided: int = 0
    """Rows whose key another row of the consolidated table already holds with different
    values (another legacy file's, or an earlier run's): not written, each listed with the
    row it collides with in the reject file."""
    missing: int | None = None
    """After verification: legacy rows not found in the consolidated table."""

    @property
    def accounted(self) -> bool:
        return self.written + self.skipped + self.collided == self.source_rows


@dataclass(slots=True)
class ConsolidationReport:
    source: str
    target: str
    action: str
    moves: list[TableMove] = field(default_factory=list)
    backup: str | None = None
    not_copied: list[str] = field(default_factory=list)
    """Views and triggers of legacy files (listed, not recreated)."""
    reject_file: str | None = None
    """Where colliding rows went, each with the row it collides with."""

    @property
    def ok(self) -> bool:
        """Every legacy row is in its consolidated table or was already there: no
        collision, nothing unaccounted, nothing found missing."""
        return all(
            m.missing in (None, 0)
            and (self.action != "migrate" or (m.collided == 0 and m.accounted))
            for m in self.moves
        )

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ok": self.ok}, indent=2)

    def render(self) -> str:
        lines = [f"{self.action}: {self.source} -> {self.target}"]
        if self.backup:
            lines.append(f"backup: {self.backup}")
        for m in self.moves:
            detail = f"{m.source_rows:,} rows"
            if self.action == "migrate":
                detail += f", {m.written:,} written, {m.skipped:,} already there"
                if m.collided:
                    detail += f", {m.collided:,} COLLIDED (key taken by different values)"
            if m.missing is not None:
                detail += ", ok" if m.missing == 0 else f", MISSING {m.missing:,}"
            lines.append(
                f"  {m.source_file}:{m.table} -> {m.target_file}:{m.target_table}  {detail}"
            )
        for item in self.not_copied:
            lines.append(f"  not copied: {item}")
        if self.reject_file:
            lines.append(f"colliding rows, each with the row holding its key: {self.reject_file}")
        if not self.moves:
            lines.append("  no legacy database files found")
        return "\n".join(lines)


def _legacy_files(source: Path) -> dict[str, str]:
    """Legacy file name -> consolidated file name, for the files present in ``source``."""
    found: dict[str, str] = {}
    for db_type in DatabaseType:
        if (source / db_type.legacy).is_file():
            found[db_type.legacy] = db_type.consolidated
    return found


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _objects(db: sqlite3.Connection, schema: str = "main") -> list[tuple[str, str, str, str]]:
    """(type, name, table, sql) of the tables, indexes, views and triggers of ``schema``,
    leaving out SQLite's own and full-text shadow tables."""
    rows = db.execute(
        f"SELECT type, name, tbl_name, sql FROM {schema}.sqlite_schema "
        "WHERE name NOT LIKE 'sqlite_%' AND sql IS NOT NULL ORDER BY rowid"
    ).fetchall()
    virtual = [r[1] for r in rows if r[3].upper().startswith("CREATE VIRTUAL TABLE")]
    return [r for r in rows if not any(r[2] != v and r[2].startswith(v + "_") for v in virtual)]


def _plan(source: Path) -> tuple[list[TableMove], list[str]]:
    moves: list[TableMove] = []
    not_copied: list[str] = []
    for legacy, consolidated in sorted(_legacy_files(source).items()):
        db = open_read_only(source / legacy)
        try:
            for kind, name, _table, _sql in _objects(db):
                if kind == "table":
                    rows = db.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0]
                    renamed = TABLE_RENAMES.get((legacy, name), name)
                    moves.append(TableMove(legacy, name, consolidated, renamed, rows))
                elif kind in ("view", "trigger"):
                    not_copied.append(f"{legacy}: {kind} {name}")
        finally:
            db.close()
    seen: dict[tuple[str, str], str] = {}
    for move in moves:
        where = (move.target_file, move.target_table)
        if where in seen and seen[where] != move.source_file:
            first = seen[where]
            if _columns(source / first, _source_table(moves, first, where)) != _columns(
                source / move.source_file, move.table
            ):
                raise MigrationError(
                    f"{first} and {move.source_file} both hold a table {move.target_table} "
                    f"with different columns; both would go to {move.target_file}"
                )
        seen.setdefault(where, move.source_file)
    return moves, not_copied


def _source_table(moves: list[TableMove], source_file: str, where: tuple[str, str]) -> str:
    return next(
        m.table
        for m in moves
        if m.source_file == source_file and (m.target_file, m.target_table) == where
    )


def _columns(path: Path, table: str) -> list[tuple[str, str]]:
    db = connect_read_only(path)
    try:
        return [(r[1], r[2].upper()) for r in db.execute(f"PRAGMA table_info({_quote(table)})")]
    finally:
        db.close()


def backup(source: Path, files: list[str]) -> Path:
    """Verified copies (SQLite's online backup) in a new folder ``source/backup/YYYYMMDD_HHMMSS``
    (see :mod:`aragora_repos.backup`)."""
    with new_backup_folder(source / "backup") as where:
        for name in files:
            opener = for_file(source / name)
            src = opener.connect(source / name, read_only=True)
            try:
                backup_sqlite(src, where, name, opener.autocommit)
            finally:
                src.close()
    return where


def _skip_name(sql: str, pos: int) -> int:
    """The offset just past the (possibly quoted) SQL name starting at or after ``pos``;
    a name may hold any character, ``(`` and `` ON `` included, when quoted."""
    while sql[pos].isspace():
        pos += 1
    closing = {'"': '"', "[": "]", "`": "`", "'": "'"}.get(sql[pos])
    if closing is None:
        while pos < len(sql) and not sql[pos].isspace() and sql[pos] not in "(.":
            pos += 1
    else:
        pos += 1
        while True:
            end = sql.index(closing, pos)
            if sql[end + 1 : end + 2] == closing and closing != "]":
                pos = end + 2  # a doubled quote inside the name
                continue
            pos = end + 1
            break
    if sql[pos : pos + 1] == ".":  # schema.name
        return _skip_name(sql, pos + 1)
    return pos


def _after_header(sql: str, words: int) -> int:
    """The offset after the first ``words`` keywords (``CREATE TABLE`` is 2)."""
    pos = 0
    for _ in range(words):
        while sql[pos].isspace():
            pos += 1
        while pos < len(sql) and sql[pos].isalpha():
            pos += 1
    return pos


def _create_table_sql(sql: str, renamed: str) -> str:
    """A legacy CREATE TABLE statement for ``renamed``, created if missing."""
    pos = _after_header(sql, 2)
    if sql[pos:].lstrip().upper().startswith("IF NOT EXISTS"):
        pos = _after_header(sql[pos:], 3) + pos
    return f"CREATE TABLE IF NOT EXISTS {_quote(renamed)} " + sql[_skip_name(sql, pos) :].lstrip()


def _create_index_sql(sql: str, name: str, table: str, renamed: str) -> str:
    """A legacy CREATE INDEX statement, on ``renamed`` (and prefixed with it when the
    table was renamed), created if missing."""
    unique = sql.lstrip().upper().startswith("CREATE UNIQUE")
    pos = _after_header(sql, 3 if unique else 2)
    if sql[pos:].lstrip().upper().startswith("IF NOT EXISTS"):
        pos = _after_header(sql[pos:], 3) + pos
    pos = _skip_name(sql, pos)  # the index name
    pos = _after_header(sql[pos:], 1) + pos  # ON
    pos = _skip_name(sql, pos)  # the table name
    index = name if table == renamed else f"{renamed}_{name}"
    return (
        f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {_quote(index)} "
        f"ON {_quote(renamed)} " + sql[pos:].lstrip()
    )


def consolidate(
    source: Path,
    target: Path | None = None,
    *,
    action: str = "dry-run",
    take_backup: bool = True,
) -> ConsolidationReport:
    """Merge the legacy files of ``source`` into the consolidated files of ``target``
    (default: ``source``). ``action`` is ``dry-run`` (report only), ``migrate`` or
    ``verify``."""
    if action not in ("dry-run", "migrate", "verify"):
        raise ConfigError(f"consolidate: unknown action {action!r}")
    if not source.is_dir():
        raise ConfigError(f"consolidate: {source} is not a directory")
    target = target or source
    report = ConsolidationReport(str(source), str(target), action)
    moves, report.not_copied = _plan(source)
    report.moves = moves
    if action == "dry-run" or not moves:
        return report
    if action == "migrate":
        private_dir(target)
        if take_backup:
            report.backup = str(backup(source, sorted({m.source_file for m in moves})))
        collisions: list[dict[str, object]] = []
        for consolidated in CONSOLIDATED_FILES:
            group = [m for m in moves if m.target_file == consolidated]
            if group:
                collisions += _migrate_file(source, target / consolidated, group)
        if collisions:
            path = target / "consolidate.rejects.jsonl"
            with replacing(path) as f:
                for item in collisions:
                    f.write(json.dumps(item, default=_jsonable) + "\n")
            report.reject_file = str(path)
    else:
        for consolidated in CONSOLIDATED_FILES:
            group = [m for m in moves if m.target_file == consolidated]
            if group:
                _verify_file(source, target / consolidated, group)
    return report


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    return str(value)


def _migrate_file(source: Path, target: Path, moves: list[TableMove]) -> list[dict[str, object]]:
    """One transaction for the consolidated file: every legacy table in, or none.

    A legacy row already in the consolidated table value for value is counted as already
    there (a rerun, or the same row in two legacy files); a row whose key is taken by
    different values is a collision: not written, and returned with the row holding the
    key. Rows are compared with ``IS`` so NULLs match; ``INSERT ... SELECT`` that reads
    its own target table is materialised first (sqlite.org/lang_insert.html), so rows of
    one legacy table are compared with the rows there before the statement.
    """
    legacies = sorted({m.source_file for m in moves})
    collisions: list[dict[str, object]] = []
    ensure_private_file(target)
    # A new consolidated file is encrypted when ARAGORA_SQLITE_ENCRYPTION says so.
    opener = for_file(target)
    db = opener.connect(target, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        # Attached first: SQLite attaches and detaches outside transactions only.
        for n, legacy in enumerate(legacies):
            opener.attach(db, (source / legacy).resolve(), f"l{n}")
        db.execute("BEGIN IMMEDIATE")
        try:
            for n, legacy in enumerate(legacies):
                objects = _objects(db, f"l{n}")
                for move in (m for m in moves if m.source_file == legacy):
                    collisions += _move_table(db, f"l{n}", objects, move, source / legacy)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for n in range(len(legacies)):
            db.execute(f"DETACH DATABASE l{n}")
    finally:
        db.close()
    return collisions


def _move_table(
    db: sqlite3.Connection,
    schema: str,
    objects: list[tuple[str, str, str, str]],
    move: TableMove,
    legacy_path: Path,
) -> list[dict[str, object]]:
    sql = next(o[3] for o in objects if o[0] == "table" and o[1] == move.table)
    db.execute(_create_table_sql(sql, move.target_table))
    columns = [c for c, _ in _columns(legacy_path, move.table)]
    names = ", ".join(_quote(c) for c in columns)
    src = f"{schema}.{_quote(move.table)}"
    dst = f"main.{_quote(move.target_table)}"
    same = " AND ".join(f"t.{_quote(c)} IS s.{_quote(c)}" for c in columns)
    values_of_s = ", ".join(f"s.{_quote(c)}" for c in columns)
    not_there = f"FROM {src} AS s WHERE NOT EXISTS (SELECT 1 FROM {dst} AS t WHERE {same})"
    # Three counts taken apart, so that `accounted` checks them against the source:
    # rows already there value for value, rows written, and rows still not there after
    # the insert (refused for their key: collisions).
    move.skipped = move.source_rows - db.execute(f"SELECT count(*) {not_there}").fetchone()[0]
    before = db.total_changes
    db.execute(f"INSERT OR IGNORE INTO {dst} ({names}) SELECT {values_of_s} {not_there}")
    move.written = db.total_changes - before
    missing = db.execute(f"SELECT {values_of_s} {not_there}").fetchall()
    move.collided = len(missing)
    for kind, name, table, index_sql in objects:
        if kind == "index" and table == move.table:
            db.execute(_create_index_sql(index_sql, name, table, move.target_table))
    if not missing:
        return []
    keys = [
        r[1]
        for r in sorted(
            db.execute(f"PRAGMA {schema}.table_info({_quote(move.table)})"), key=lambda r: r[5]
        )
        if r[5] > 0
    ]
    out: list[dict[str, object]] = []
    for row in missing:
        values = dict(zip(columns, row, strict=True))
        holder = None
        if keys:
            match = " AND ".join(f"{_quote(k)} IS ?" for k in keys)
            found = db.execute(
                f"SELECT {names} FROM {dst} WHERE {match}", [values[k] for k in keys]
            ).fetchone()
            holder = dict(zip(columns, found, strict=True)) if found else None
        out.append(
            {
                "source_file": move.source_file,
                "table": move.table,
                "target_file": move.target_file,
                "target_table": move.target_table,
                "reason": "key collision: the consolidated table holds this key with "
                "different values",
                "row": values,
                "existing": holder,
            }
        )
    return out


def _verify_file(source: Path, target: Path, moves: list[TableMove]) -> None:
    if not target.is_file():
        for move in moves:
            move.missing = move.source_rows
        return
    opener = for_file(target)
    db = opener.connect(target, read_only=True)
    try:
        for legacy in sorted({m.source_file for m in moves}):
            opener.attach(db, (source / legacy).resolve(), "legacy")
            try:
                for move in (m for m in moves if m.source_file == legacy):
                    names = ", ".join(_quote(c) for c, _ in _columns(source / legacy, move.table))
                    exists = db.execute(
                        "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?",
                        (move.target_table,),
                    ).fetchone()
                    if exists is None:
                        move.missing = move.source_rows
                        continue
                    move.missing = db.execute(
                        f"SELECT count(*) FROM (SELECT {names} FROM legacy.{_quote(move.table)} "
                        f"EXCEPT SELECT {names} FROM main.{_quote(move.target_table)})"
                    ).fetchone()[0]
            finally:
                db.execute("DETACH DATABASE legacy")
    finally:
        db.close()
