"""Opening SQLite files that are not ours to change: read-only, checked first."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aragora_repos import errors
from aragora_repos.backends.sqlite.opener import Opener, for_file, read_only_uri


def connect_read_only(
    path: str | Path, *, check_same_thread: bool = True, opener: Opener | None = None
) -> sqlite3.Connection:
    """A read-only connection to ``path`` (see :func:`open_read_only` for a foreign file,
    which is checked first), opened as the file is (plain, or encrypted with the
    environment's key) unless ``opener`` says otherwise."""
    opener = opener or for_file(path)
    return opener.connect(path, read_only=True, check_same_thread=check_same_thread)


def open_read_only(
    path: Path, *, check_same_thread: bool = True, opener: Opener | None = None
) -> sqlite3.Connection:
    """Open someone else's SQLite file to read it (``mode=ro``: nothing is created or
    changed), after checking that it is a database whose schema text is valid UTF-8, so
    a bad file or name is a clear error naming the file, not a traceback later. An
    encrypted file opens with the environment's key (or ``opener``'s).

    Raises:
        FileError: no file there, not a database, or a schema entry that is not UTF-8
            (named with its bytes escaped).
        EncryptionError: an encrypted file and no key, or a key that does not open it.
    """
    if not path.is_file():
        raise errors.FileError(f"cannot open {path}: no SQLite database there")
    try:
        db = connect_read_only(path, check_same_thread=check_same_thread, opener=opener)
    except errors.EncryptionError:
        raise
    except errors.DatabaseError as exc:
        raise errors.FileError(str(exc)) from None
    try:
        rows = db.execute(
            "SELECT CAST(type AS BLOB), CAST(name AS BLOB), CAST(sql AS BLOB) FROM sqlite_schema"
        ).fetchall()
    except errors.SQLITE_DATABASE_ERROR as exc:
        db.close()
        raise errors.FileError(f"cannot open sqlite database {path}: {exc}") from None
    for kind, name, sql in rows:
        for raw in (name, sql):
            try:
                (raw or b"").decode("utf-8")
            except UnicodeDecodeError:
                db.close()
                shown = bytes(name or b"").decode("utf-8", "backslashreplace")
                raise errors.FileError(
                    f"cannot read {path}: the {kind.decode(errors='replace')} '{shown}' has a "
                    "name or definition that is not valid UTF-8; rename it first"
                ) from None
    return db


__all__ = ["connect_read_only", "open_read_only", "read_only_uri"]
