"""What an operator points ``adopt`` at: a data directory in one of Aragora's layouts, or
one SQLite file; found here as the list of source files and the layout they are in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aragora_repos.backends.sqlite import open_read_only
from aragora_repos.config import SQLITE_FILE
from aragora_repos.errors import ConfigError
from aragora_repos.tools.layout import CONSOLIDATED_FILES, TABLE_RENAMES, DatabaseType
from aragora_repos.tools.migrate_data.sqlite_target import PROGRESS_TABLE, REJECTS_TABLE
from aragora_repos.tools.migrate_data.state import RUNNER_TABLES

#: Tables no store keeps as data: SQLite's own, migration runners' records, this
#: project's copy state.
BOOKKEEPING = RUNNER_TABLES | {PROGRESS_TABLE, REJECTS_TABLE}


@dataclass(frozen=True, slots=True)
class SourceFile:
    name: str
    """As the report names it: the file name within the source directory."""
    path: Path


@dataclass(frozen=True, slots=True)
class Found:
    layout: str
    """``legacy`` (one file per store), ``consolidated`` (core/memory/analytics/agents.db),
    ``own`` (this project's database), or ``file`` (any other SQLite database)."""
    files: tuple[SourceFile, ...]


def find_sources(source: Path) -> Found:
    """The layout of ``source`` (a directory or a SQLite file) and its database files.

    A directory may hold both layouts (consolidation leaves the legacy files in place):
    every file of both is read, and rows present in two files, value for value, are
    counted once.

    Raises:
        ConfigError: nothing there, or a directory with no database file of a known layout.
    """
    if source.is_file():
        if source.name == SQLITE_FILE:
            return Found("own", (SourceFile(source.name, source),))
        layout = "consolidated" if source.name in CONSOLIDATED_FILES else "file"
        if source.name in {t.legacy for t in DatabaseType}:
            layout = "legacy"
        return Found(layout, (SourceFile(source.name, source),))
    if not source.is_dir():
        raise ConfigError(f"adopt: {source}: no such file or directory")
    legacy = sorted({t.legacy for t in DatabaseType if (source / t.legacy).is_file()})
    consolidated = [f for f in CONSOLIDATED_FILES if (source / f).is_file()]
    own = [SQLITE_FILE] if (source / SQLITE_FILE).is_file() else []
    names = legacy + consolidated + own
    if not names:
        raise ConfigError(
            f"adopt: {source} holds no database of a known layout (legacy files such as "
            f"{DatabaseType.ELO.legacy}, consolidated {', '.join(CONSOLIDATED_FILES)}, or "
            f"{SQLITE_FILE}); name a SQLite file to adopt it alone"
        )
    layout = "legacy" if legacy and not consolidated else "consolidated" if consolidated else "own"
    if legacy and consolidated:
        layout = "legacy+consolidated"
    return Found(layout, tuple(SourceFile(n, source / n) for n in names))


def source_tables(path: Path) -> list[str]:
    """The data tables of a source file: not SQLite's, not full-text index tables and their
    shadows, not bookkeeping."""
    db = open_read_only(path)
    try:
        rows = db.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
    finally:
        db.close()
    virtual = [n for n, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL TABLE")]
    return [
        n
        for n, _ in rows
        if n not in BOOKKEEPING and not any(n == v or n.startswith(v + "_") for v in virtual)
    ]


def target_table(file_name: str, table: str, targets: set[str]) -> str | None:
    """The project table a source table goes to: its legacy rename, or its own name."""
    renamed = TABLE_RENAMES.get((file_name, table), table)
    return renamed if renamed in targets else None
