"""``aragora-repos encrypt``, ``decrypt`` and ``rekey``: every SQLite file of the data
directory changes key (none to one, one to none, one to another) atomically.

Each file is written anew and swapped in, never changed in place, so a kill at any point
leaves either the old file or the new one, both complete:

1. a verified backup set of every file, as it is (an encrypted one stays encrypted);
2. per file, a connection in exclusive locking mode takes the file's exclusive lock
   after leaving WAL for an in-memory journal (so nothing is beside it on disk).
   Another process with the database open holds a shared lock, so this fails at once,
   saying so: the application must be stopped first; it is never swapped under a live
   connection;
3. ``sqlcipher_export`` writes every table, index, trigger and view into
   ``<file>.rekey`` under the new key, with the file's ``user_version``;
4. the new file is verified: ``PRAGMA integrity_check`` and every table's row count equal
   to the old file's;
5. it is made durable and renamed over the old file while the lock is still held. A
   process that opened the old file meanwhile notices the swap and opens the new one
   (:meth:`aragora_repos.backends.sqlite.opener.Opener.connect`).

A leftover ``<file>.rekey`` from a killed run is removed by the next run.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aragora_repos import errors
from aragora_repos.backends.sqlite.opener import (
    PLAIN,
    PLAIN_HEADER,
    SALT_BYTES,
    Opener,
    attach_key,
    header,
    need_sqlcipher,
)
from aragora_repos.backup import locked, table_counts
from aragora_repos.config import Config, SqliteKey
from aragora_repos.files import create_private, fsync_dir
from aragora_repos.tools.backup_sets import _take_sqlite, data_files

Action = Literal["encrypt", "decrypt", "rekey"]
SUFFIX = ".rekey"


@dataclass(slots=True)
class CipherReport:
    """What one encrypt, decrypt or rekey did."""

    action: Action
    backup: Path | None = None
    files: dict[str, dict[str, int]] = field(default_factory=dict)
    """File -> table -> rows, as verified in the new file."""
    seconds: float = 0.0

    def render(self) -> str:
        lines = [f"{self.action}: backup of the files as they were: {self.backup}"]
        lines += [
            f"  {name}: {len(t)} tables, {sum(t.values()):,} rows verified"
            for name, t in self.files.items()
        ]
        lines.append(f"done in {self.seconds:.1f} s")
        return "\n".join(lines)


def change_key(
    config: Config,
    action: Action,
    *,
    new_key: SqliteKey | None = None,
    take_backup: bool = True,
) -> CipherReport:
    """Encrypt (plain files, under ``config``'s key), decrypt (files under ``config``'s
    key, to plain) or rekey (files under ``config``'s key, to ``new_key``) every SQLite
    file of the data directory; see the module docstring.

    Raises:
        ConfigError: no key where the action needs one.
        EncryptionError: a file is not of the kind the action starts from.
        FileError: the database is in use by another process (nothing changed).
        BackupError: the backup or the new file does not verify (nothing changed).
    """
    started = time.perf_counter()
    need_sqlcipher()
    if config.sqlite_key is None:
        raise errors.ConfigError(
            f"{action} needs ARAGORA_SQLITE_KEY (or ARAGORA_SQLITE_KEY_FILE): "
            + {
                "encrypt": "the key to encrypt with",
                "decrypt": "the key the files are encrypted with",
                "rekey": "the key the files are encrypted with now",
            }[action]
        )
    if action == "rekey" and new_key is None:
        raise errors.ConfigError(
            "rekey needs the new key: ARAGORA_SQLITE_NEW_KEY or ARAGORA_SQLITE_NEW_KEY_FILE"
        )
    old = None if action == "encrypt" else config.sqlite_key
    new = {"encrypt": config.sqlite_key, "decrypt": None, "rekey": new_key}[action]
    # One run at a time per data directory: a second one would take the first one's
    # <file>.rekey for a killed run's leftover and remove it mid-export.
    with locked(config.data_dir, exclusive=True, wait=False) as alone:
        if not alone:
            raise errors.FileError(
                f"cannot {action} {config.data_dir}: another encrypt, decrypt or rekey (or a "
                "copy into this database) is running there"
            )
        files = _files(config, old)
        report = CipherReport(action)
        for path in files:  # a killed run's leftover goes first: it is never a database
            Path(str(path) + SUFFIX).unlink(missing_ok=True)
        if take_backup:
            report.backup = _take_sqlite(config, config.data_dir / "backup").folder
        for path in files:
            report.files[path.name] = _swap(path, old, new)
    report.seconds = time.perf_counter() - started
    return report


def _files(config: Config, old: SqliteKey | None) -> list[Path]:
    """The configured file and every other ``*.db`` of the data directory that is of the
    kind the action starts from; the configured file must be."""
    found = []
    for path in data_files(config):
        plain = header(path) in (PLAIN_HEADER, None)
        if (old is None) != plain:
            if path == config.sqlite_file:
                raise errors.EncryptionError(
                    f"cannot {'encrypt' if old is None else 'change the key of'} {path}: it is "
                    f"{'plain' if plain else 'encrypted already (or not a database)'}"
                )
            continue  # another kind of file: left as it is
        found.append(path)
    if not found:
        raise errors.FileError(
            f"no SQLite database to change in {config.data_dir} (nor at {config.sqlite_file})"
        )
    return found


def _swap(path: Path, old: SqliteKey | None, new: SqliteKey | None) -> dict[str, int]:
    temp = Path(str(path) + SUFFIX)
    # SQLCipher's module even for a plain file: sqlcipher_export is its function. A short
    # busy wait: a connection another process keeps open never lets go.
    src = Opener(old, sqlcipher=True).connect(path, isolation_level=None, timeout=0.5)
    try:
        _take_exclusive(src, path)
        expected = table_counts(src)
        version = src.execute("PRAGMA user_version").fetchone()[0]
        os.close(create_private(temp))
        salt = os.urandom(SALT_BYTES)
        src.execute(f"ATTACH DATABASE ? AS rekeyed KEY {attach_key(new, salt)}", (str(temp),))
        src.execute("SELECT sqlcipher_export('rekeyed')")
        src.execute(f"PRAGMA rekeyed.user_version = {int(version)}")
        src.execute("DETACH DATABASE rekeyed")
        copied = _verify(temp, new, expected, version)
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for suffix in ("-wal", "-shm", "-journal"):
            if os.path.exists(str(path) + suffix) and suffix == "-journal":
                raise errors.FileError(f"cannot replace {path}: a rollback journal is beside it")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(path) + suffix)
        os.replace(temp, path)
        fsync_dir(path.parent)
        return copied
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    finally:
        src.close()


def _take_exclusive(src: sqlite3.Connection, path: Path) -> None:
    """Hold ``path``'s exclusive lock until ``src`` closes, with no WAL beside it."""
    try:
        src.execute("PRAGMA locking_mode = EXCLUSIVE")
        # MEMORY: the rollback journal never touches the disk, so nothing is left beside
        # the file that a later open could take for its own.
        mode = src.execute("PRAGMA journal_mode = MEMORY").fetchone()[0]
        src.execute("BEGIN EXCLUSIVE")
        src.execute("COMMIT")
    except errors.SQLITE_OPERATIONAL_ERROR as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise errors.FileError(
                f"cannot change {path}: another process has it open; stop the application "
                "(and any other aragora-repos command) first"
            ) from None
        raise
    if str(mode).lower() != "memory":
        raise errors.FileError(f"cannot change {path}: its journal mode stays {mode}")


def _verify(
    temp: Path, key: SqliteKey | None, expected: dict[str, int], version: int
) -> dict[str, int]:
    opener = Opener(key) if key is not None else PLAIN
    db = opener.connect(temp, isolation_level=None)
    try:
        check = db.execute("PRAGMA integrity_check").fetchall()
        if check != [("ok",)]:
            raise errors.BackupError(f"cannot verify {temp}: integrity_check says {check[0][0]}")
        copied = table_counts(db)
        if copied != expected:
            differ = sorted(
                t for t in set(expected) | set(copied) if copied.get(t) != expected.get(t)
            )
            raise errors.BackupError(
                f"cannot verify {temp}: tables or row counts differ ({', '.join(differ[:5])})"
            )
        if db.execute("PRAGMA user_version").fetchone()[0] != version:
            raise errors.BackupError(f"cannot verify {temp}: user_version differs")
        # The runtime keeps its files in WAL mode; set now, so its first open changes nothing.
        db.execute("PRAGMA journal_mode = WAL")
    finally:
        db.close()
    return copied
