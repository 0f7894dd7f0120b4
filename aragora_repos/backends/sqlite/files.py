"""Opening SQLite files that are not ours to change: read-only, checked first."""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from pathlib import Path

from aragora_repos import errors


def read_only_uri(path: str | Path) -> str:
    """The ``file:`` URI that opens ``path`` read-only: nothing is created or changed."""
    return "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"


def connect_read_only(path: str | Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A plain read-only :mod:`sqlite3` connection to ``path`` (see :func:`open_read_only`
    for a foreign file, which is checked first)."""
    return sqlite3.connect(read_only_uri(path), uri=True, check_same_thread=check_same_thread)


def open_read_only(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open someone else's SQLite file to read it (``mode=ro``: nothing is created or
    changed), after checking that it is a database whose schema text is valid UTF-8, so
    a bad file or name is a clear error naming the file, not a traceback later.

    Raises:
        FileError: no file there, not a database, or a schema entry that is not UTF-8
            (named with its bytes escaped).
    """
    if not path.is_file():
        raise errors.FileError(f"cannot open {path}: no SQLite database there")
    db = connect_read_only(path, check_same_thread=check_same_thread)
    try:
        rows = db.execute(
            "SELECT CAST(type AS BLOB), CAST(name AS BLOB), CAST(sql AS BLOB) FROM sqlite_schema"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
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
