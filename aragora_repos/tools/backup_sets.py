"""Backup sets: what ``aragora-repos backup`` takes, verifies, prunes and restores.

A backup set is one folder ``<data dir>/backup/YYYYMMDD_HHMMSS[_n]`` (see
:mod:`aragora_repos.backup` for how each copy is made and verified) holding every
database file of the data directory (SQLite) or one ``pg_dump`` (PostgreSQL), and a
``manifest.json`` with each file's SHA-256 and table row counts. A set is verified
again before it is restored: the checksums must match the manifest, and each copy
must pass ``PRAGMA integrity_check`` (SQLite) or ``pg_restore --list`` (PostgreSQL).
Pre-migration backups are sets without a manifest; they are verified by content alone.

Old sets are pruned by the time in their folder name (``ARAGORA_BACKUP_RETENTION_DAYS``,
default 7), never the newest one, and never anything that is not such a folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aragora_repos import errors
from aragora_repos.backends.postgres import COUNT_TABLES, connect_one
from aragora_repos.backends.sqlite import Opener, connect_read_only, opener_for
from aragora_repos.backends.sqlite.opener import PLAIN_HEADER, for_file, header
from aragora_repos.backup import (
    PARTIAL,
    backup_sqlite,
    client_binary,
    dump_name,
    dump_tables,
    libpq_environment,
    locked,
    new_backup_folder,
    pg_dump_into,
    table_counts,
)
from aragora_repos.config import Config, Secret, SqliteKey, check_connection_policy
from aragora_repos.dsn import scrub
from aragora_repos.files import ensure_private_file, private_dir, replacing

MANIFEST = "manifest.json"
_SET_NAME = re.compile(r"^(\d{8}_\d{6})(?:_\d+)?$")


@dataclass(slots=True)
class BackupReport:
    """What a backup command did."""

    folder: Path
    files: dict[str, dict[str, int]] = field(default_factory=dict)
    """File name -> table -> rows (for a dump: ``{"tables": n}``)."""
    pruned: list[Path] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"backup: {self.folder}"]
        for name, tables in self.files.items():
            lines.append(f"  {name}: {len(tables)} tables, {sum(tables.values()):,} rows")
        lines += [f"pruned: {p}" for p in self.pruned]
        return "\n".join(lines)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_files(config: Config) -> list[Path]:
    """The configured file (first, when it exists) and every other regular ``*.db`` file
    of the data directory, whatever they hold."""
    found = [config.sqlite_file] if config.sqlite_file.is_file() else []
    if config.data_dir.is_dir():
        found += sorted(
            p
            for p in config.data_dir.glob("*.db")
            if p.is_file() and not p.is_symlink() and p != config.sqlite_file
        )
    return found


def _opens(path: Path, config: Config) -> bool:
    """Whether ``path`` is a database this configuration reads: a plain SQLite file, or
    (with a key set) one the key opens."""
    if header(path) == PLAIN_HEADER:
        return True
    if config.sqlite_key is None:
        return False
    try:
        Opener(config.sqlite_key).connect(path, read_only=True).close()
    except errors.DatabaseError:
        return False
    return True


def sqlite_files(config: Config) -> list[Path]:
    """Every database file of the data directory (the configured file first), as they
    are in either Aragora layout; files that are not SQLite databases (or, encrypted,
    that the configured key does not open) are left out."""
    return [p for p in data_files(config) if p == config.sqlite_file or _opens(p, config)]


def _write_manifest(folder: Path, backend: str, files: dict[str, dict[str, int]]) -> None:
    manifest = {
        "backend": backend,
        "created_at": datetime.now(UTC).isoformat(),
        "files": {
            name: {"sha256": _sha256(folder / name), "tables": tables}
            for name, tables in files.items()
        },
    }
    with replacing(folder / MANIFEST) as f:
        json.dump(manifest, f, indent=2, sort_keys=True)


async def take_backup(
    config: Config,
    *,
    keep_days: float | None = None,
    prune_old: bool = True,
    verify: bool = False,
) -> BackupReport:
    """Back up every database of ``config`` into a new set under ``<data dir>/backup``,
    verified, then prune sets older than ``keep_days`` (default: the configuration's
    ``ARAGORA_BACKUP_RETENTION_DAYS``). With ``verify``, the finished set is read back as
    :func:`restore` would (:func:`verify_set`) before anything is pruned.

    Raises:
        BackupError: nothing to back up, a copy that does not verify, or no pg_dump.
    """
    root = config.data_dir / "backup"
    if config.backend == "postgres":
        assert config.dsn is not None
        conn = await connect_one(config.dsn)
        try:
            tables = int(await conn.fetchval(COUNT_TABLES))
        finally:
            await conn.close()
        report = await asyncio.to_thread(_take_postgres, config.dsn, root, tables)
    else:
        report = await asyncio.to_thread(_take_sqlite, config, root)
    if verify:
        await asyncio.to_thread(verify_set, report.folder, config.sqlite_key)
    if prune_old:
        days = config.backup_retention_days if keep_days is None else keep_days
        report.pruned = prune(root, keep_days=days)
    return report


def _take_sqlite(config: Config, root: Path) -> BackupReport:
    files = sqlite_files(config)
    if not files:
        raise errors.BackupError(
            f"cannot back up: no SQLite database in {config.data_dir} (nor at {config.sqlite_file})"
        )
    names = [p.name for p in files]
    if len(set(names)) != len(names):
        raise errors.BackupError("cannot back up: two database files share a name")
    with new_backup_folder(root) as folder:
        report = BackupReport(folder)
        for path in files:
            # An encrypted file is copied into one encrypted with the same key.
            opener = for_file(path, config.sqlite_key)
            source = opener.connect(path, read_only=True)
            try:
                report.files[path.name] = backup_sqlite(
                    source, folder, path.name, opener.autocommit
                ).tables
            finally:
                source.close()
        _write_manifest(folder, "sqlite", report.files)
    return report


def _take_postgres(dsn: Secret, root: Path, tables: int) -> BackupReport:
    with new_backup_folder(root) as folder:
        made = pg_dump_into(dsn, folder, tables=tables)
        report = BackupReport(folder, {made.name: {"tables": tables}})
        _write_manifest(folder, "postgres", report.files)
    return report


def prune(root: Path, *, keep_days: float, now: datetime | None = None) -> list[Path]:
    """Remove backup sets under ``root`` whose folder-name time is more than ``keep_days``
    old; the newest set always stays. Only folders named like a set are touched, a link
    is never followed, and a set that a backup is still writing or a restore is reading
    (it holds the set's lock) is left for a later run.

    Raises:
        ConfigError: ``keep_days`` is negative or not a number.
    """
    if not keep_days >= 0:  # NaN too
        raise errors.ConfigError(f"cannot prune backups: keep_days must be >= 0, got {keep_days}")
    if not root.is_dir() or root.is_symlink():
        return []
    now = now or datetime.now(UTC)
    try:
        cutoff = now - timedelta(days=keep_days)
    except OverflowError:
        return []  # longer than datetime can count back: nothing is that old
    removed = []
    # Exclusive against new sets being made: each is locked by its writer before this
    # lock is released, so an unlocked set here is a finished (or abandoned) one.
    with locked(root, exclusive=True):
        sets: list[tuple[datetime, Path]] = []
        for entry in root.iterdir():
            match = _SET_NAME.match(entry.name)
            if match is None or entry.is_symlink() or not entry.is_dir():
                continue
            stamp = datetime.strptime(match.group(1), "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
            sets.append((stamp, entry))
        sets.sort()
        for stamp, entry in sets[:-1]:
            if stamp >= cutoff:
                continue
            try:
                with locked(entry, exclusive=True, wait=False) as free:
                    if not free:
                        continue
                    # rmtree removes links inside without following them (its fd-based
                    # walk resists symlink races, shutil docs).
                    shutil.rmtree(entry)
            except FileNotFoundError:
                continue
            removed.append(entry)
    return removed


def verify_set(folder: Path, key: SqliteKey | None = None) -> dict[str, dict[str, int]]:
    """Check every copy of a set (an encrypted copy is read with ``key``, default the
    environment's ``ARAGORA_SQLITE_KEY``); return its table counts by file.

    Raises:
        BackupError: a missing or altered file, a copy that fails its integrity check, or
            counts that differ from the manifest.
    """
    if not folder.is_dir():
        raise errors.BackupError(f"cannot restore {folder}: not a backup folder")
    manifest_path = folder / MANIFEST
    recorded: dict[str, dict[str, object]] = {}
    if manifest_path.is_file():
        try:
            recorded = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
        except (ValueError, KeyError, TypeError):
            raise errors.BackupError(
                f"cannot restore {folder}: its manifest is unreadable"
            ) from None
        names = sorted(recorded)
    else:  # a pre-migration backup
        names = sorted(
            p.name
            for p in folder.iterdir()
            if p.is_file() and not p.name.endswith(PARTIAL) and p.name != MANIFEST
        )
    if not names:
        raise errors.BackupError(f"cannot restore {folder}: it holds no finished copy")
    counts: dict[str, dict[str, int]] = {}
    for name in names:
        path = folder / name
        if not path.is_file() or path.is_symlink():
            raise errors.BackupError(f"cannot restore {folder}: {name} is missing")
        entry = recorded.get(name)
        if entry is not None and entry.get("sha256") != _sha256(path):
            raise errors.BackupError(
                f"cannot restore {folder}: {name} changed since the backup (checksum differs)"
            )
        if name.endswith(".dump"):
            tables = dump_tables(path)
            if tables is None:
                raise errors.BackupError(f"cannot restore {folder}: pg_restore cannot read {name}")
            counts[name] = {"tables": tables}
            continue
        try:
            copy = connect_read_only(
                path, opener=for_file(path) if key is None else for_file(path, key)
            )
        except errors.DatabaseError as exc:
            raise errors.BackupError(f"cannot restore {folder}: {name}: {exc}") from None
        try:
            check = copy.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise errors.BackupError(
                    f"cannot restore {folder}: {name} fails integrity_check ({check[0][0]})"
                )
            counts[name] = table_counts(copy)
        except errors.SQLITE_DATABASE_ERROR as exc:
            raise errors.BackupError(f"cannot restore {folder}: {name}: {exc}") from None
        finally:
            copy.close()
        if entry is not None and entry.get("tables") != counts[name]:
            raise errors.BackupError(
                f"cannot restore {folder}: {name}'s tables differ from its manifest"
            )
    return counts


@dataclass(slots=True)
class RestoreReport:
    restored: dict[str, dict[str, int]]
    safety_backup: Path | None
    """The set taken of what was replaced."""

    def render(self) -> str:
        lines = [f"backup of what was replaced: {self.safety_backup}"]
        lines += [
            f"restored {name}: {len(t)} tables, {sum(t.values()):,} rows"
            for name, t in self.restored.items()
        ]
        return "\n".join(lines)


async def restore(
    config: Config, folder: Path, *, take_safety_backup: bool = True
) -> RestoreReport:
    """Put a verified backup set back: SQLite files are written back with the online
    backup API (in one step each, under the write lock, so connections see the old or the
    new database, never a mix); a dump goes back with ``pg_restore --clean --if-exists
    --single-transaction``. What is replaced is backed up first.

    Raises:
        BackupError: the set does not verify (nothing is changed), or the restore failed.
    """
    if not folder.is_dir() or folder.is_symlink():
        raise errors.BackupError(f"cannot restore {folder}: not a backup folder")
    # Shared: other restores may read the set too, but no pruning removes it meanwhile.
    with locked(folder, exclusive=False, wait=False) as free:
        if not free:
            raise errors.BackupError(f"cannot restore {folder}: a backup is still writing it")
        counts = await asyncio.to_thread(verify_set, folder, config.sqlite_key)
        safety = None
        if take_safety_backup:
            safety = (await take_backup(config, prune_old=False)).folder
        if config.backend == "postgres":
            assert config.dsn is not None
            await asyncio.to_thread(_restore_postgres, config.dsn, folder, counts)
        else:
            await asyncio.to_thread(_restore_sqlite, config, folder, counts)
    return RestoreReport(counts, safety)


def _restore_sqlite(config: Config, folder: Path, counts: dict[str, dict[str, int]]) -> None:
    for name, tables in counts.items():
        if name.endswith(".dump"):
            raise errors.BackupError(f"cannot restore {name} into sqlite: it is a pg_dump")
        target = config.sqlite_file if name == config.sqlite_file.name else config.data_dir / name
        private_dir(target.parent)
        ensure_private_file(target)
        source_opener = for_file(folder / name, config.sqlite_key)
        live_opener = opener_for(config)
        if source_opener.encrypted != live_opener.encrypted:
            raise errors.BackupError(
                f"cannot restore {name} into {target}: the copy is "
                f"{'encrypted' if source_opener.encrypted else 'plain'} and the database is "
                f"configured {'encrypted' if live_opener.encrypted else 'plain'} "
                "(ARAGORA_SQLITE_ENCRYPTION); restore with the setting the copy was taken under"
            )
        source = source_opener.connect(folder / name, read_only=True)
        live = live_opener.connect(target, timeout=config.timeout, isolation_level=None)
        try:
            source.backup(live)
            if table_counts(live) != tables:
                raise errors.BackupError(f"cannot restore {name}: the tables differ afterwards")
        except errors.SQLITE_ERROR as exc:
            raise errors.BackupError(f"cannot restore {name} into {target}: {exc}") from exc
        finally:
            live.close()
            source.close()


def _restore_postgres(dsn: Secret, folder: Path, counts: dict[str, dict[str, int]]) -> None:
    check_connection_policy(dsn)
    restore_bin = client_binary("pg_restore")
    if restore_bin is None:
        raise errors.BackupError("cannot restore: pg_restore is not installed")
    dumps = [name for name in counts if name.endswith(".dump")]
    if len(dumps) != 1:
        raise errors.BackupError(f"cannot restore {folder} into postgresql: it holds no dump")
    env = libpq_environment(dsn.parsed)
    database = env.get("PGDATABASE") or dsn.parsed.user or "postgres"
    # A conninfo naming only the database (libpq-connect.html §34.1.1 quoting); every other
    # parameter, the password included, comes from the environment.
    conninfo = "dbname='" + database.replace("\\", "\\\\").replace("'", "\\'") + "'"
    proc = subprocess.run(
        [
            restore_bin,
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-password",
            f"--dbname={conninfo}",
            str(folder / dumps[0]),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise errors.BackupError(
            f"cannot restore {folder} into {dsn.parsed.redacted()}: pg_restore exited "
            f"{proc.returncode} (nothing was changed: one transaction): "
            + scrub(proc.stderr.strip()[:300], dsn.parsed.secrets())
        )


__all__ = [
    "MANIFEST",
    "BackupReport",
    "RestoreReport",
    "dump_name",
    "prune",
    "restore",
    "sqlite_files",
    "take_backup",
    "verify_set",
]
