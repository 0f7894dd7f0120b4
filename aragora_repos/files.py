"""Files this project creates: private (0600 files, 0700 folders, whatever the umask),
created exclusively, and never through a link planted at their path.

The database, its WAL and SHM, backups, dumps, reject files and consolidated files hold
password hashes, webhook secrets and share-link tokens. SQLite creates the WAL and SHM
with the database file's own permissions (sqlite.org/tempfiles.html), so a database file
created here as 0600 keeps its companions private too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from aragora_repos import errors

FILE_MODE = 0o600
DIR_MODE = 0o700
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 folders (an existing folder, or a
    link to one the user made, is used as it is)."""
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        if os.path.lexists(probe):
            raise errors.FileError(f"cannot use folder {probe}: it is not a folder")
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise errors.FileError(f"cannot create folder {folder}: a file is there") from None
            continue
        except OSError as exc:
            raise errors.FileError(f"cannot create folder {folder}: {exc.strerror}") from None
        os.chmod(folder, DIR_MODE)  # the umask may have taken bits away
    return path


def exclusive_dir(parent: Path, name: str) -> Path:
    """A new 0700 folder ``parent/name``, or ``name_2``, ``name_3``... when taken: created
    with mkdir, which fails on any existing entry (a planted symlink included), so no two
    processes ever get the same folder."""
    private_dir(parent)
    for n in range(1, 10_000):
        candidate = parent / (name if n == 1 else f"{name}_{n}")
        try:
            os.mkdir(candidate, DIR_MODE)
        except FileExistsError:
            continue
        except OSError as exc:
            raise errors.FileError(f"cannot create folder {candidate}: {exc.strerror}") from None
        os.chmod(candidate, DIR_MODE)
        return candidate
    raise errors.FileError(f"cannot create a new folder {name} in {parent}: all names taken")


def create_private(path: Path) -> int:
    """Create ``path`` as a new 0600 file and return its descriptor; refuses an existing
    file or a symlink at the path (``O_EXCL | O_NOFOLLOW``)."""
    try:
        fd = os.open(path, _CREATE, FILE_MODE)
    except FileExistsError:
        kind = "a symlink is" if path.is_symlink() else "a file is"
        raise errors.FileError(f"cannot create {path}: {kind} already there") from None
    except OSError as exc:
        raise errors.FileError(f"cannot create {path}: {exc.strerror}") from None
    os.fchmod(fd, FILE_MODE)
    return fd


def ensure_private_file(path: Path) -> None:
    """Create an empty 0600 file at ``path`` unless something is already there (for
    SQLite, which would otherwise create the file as 0644 under umask 022)."""
    try:
        fd = os.open(path, _CREATE, FILE_MODE)
    except FileExistsError:
        return
    except OSError as exc:
        raise errors.FileError(f"cannot create {path}: {exc.strerror}") from None
    os.fchmod(fd, FILE_MODE)
    os.close(fd)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[IO[str]]:
    """Write a new version of ``path``: into a fresh 0600 temporary file beside it
    (created exclusively; a link planted at the name is refused), flushed to disk, then
    renamed over ``path``. Nothing replaces ``path`` if the block raises."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # a leftover of this pid's own killed run, or a planted link
    fd = create_private(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def open_append_private(path: Path) -> IO[str]:
    """Open ``path`` for appending, created 0600 if missing; a symlink there is refused."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        raise errors.FileError(f"cannot write {path}: {exc.strerror}") from None
    return os.fdopen(fd, "a", encoding="utf-8")


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
