"""Backups that are never overwritten and never look finished when they are not.

Each backup goes into a new folder ``<root>/YYYYMMDD_HHMMSS`` (``_2``, ``_3``... when
that name is taken), made with an exclusive ``mkdir``, so two processes never share one.
The copy is written under a ``.partial`` name, verified, flushed and only then renamed
to its final name: a killed or failed backup leaves a ``.partial`` file, never a file
that opens as a valid, empty database. SQLite: the online backup API (backup.html), then
``PRAGMA integrity_check`` and the source's tables with their row counts.
PostgreSQL: ``pg_dump --format=custom``, then ``pg_restore --list`` on the dump, which
must list a data entry for every table; credentials reach pg_dump through its
environment, never its command line.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from aragora_repos import errors
from aragora_repos.config import Secret, check_connection_policy
from aragora_repos.dsn import Dsn, scrub
from aragora_repos.files import create_private, exclusive_dir, fsync_dir, private_dir

PARTIAL = ".partial"


@contextlib.contextmanager
def locked(folder: Path, *, exclusive: bool, wait: bool = True) -> Iterator[bool]:
    """An advisory ``flock`` on a folder (released when the process dies, so a killed
    writer never keeps a set locked); yields False when ``wait`` is False and someone else
    holds it. A backup root is locked shared while a set is made in it and exclusive while
    sets are pruned; a set is locked exclusive by its writer, shared by a restore."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextlib.contextmanager
def new_backup_folder(root: Path) -> Iterator[Path]:
    """A new private folder under ``root`` named by the UTC time, never one that exists,
    locked against pruning (:func:`aragora_repos.tools.backup_sets.prune`) while the block
    writes into it."""
    private_dir(root)
    with contextlib.ExitStack() as stack:
        with locked(root, exclusive=False):
            folder = exclusive_dir(root, datetime.now(UTC).strftime("%Y%m%d_%H%M%S"))
            stack.enter_context(locked(folder, exclusive=True))
        yield folder


def table_counts(conn: sqlite3.Connection, schema: str = "main") -> dict[str, int]:
    """Every table of a SQLite database with its row count."""
    names = [
        r[0]
        for r in conn.execute(
            f"SELECT name FROM {schema}.sqlite_schema WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {
        n: conn.execute(
            f'SELECT count(*) FROM {schema}."{n.replace(chr(34), chr(34) * 2)}"'
        ).fetchone()[0]
        for n in names
    }


def _finish(partial: Path, final: Path) -> Path:
    fd = os.open(partial, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(partial, final)
    fsync_dir(final.parent)
    return final


class Copy(NamedTuple):
    """A finished, verified copy of a SQLite database."""

    path: Path
    tables: dict[str, int]
    """Row count of each table, as the verification found them (equal to the source's)."""


def _plain(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def backup_sqlite(
    source: sqlite3.Connection,
    folder: Path,
    name: str,
    connect: Callable[[str], sqlite3.Connection] = _plain,
) -> Copy:
    """Copy ``source``'s main database into ``folder/name``, verified before it gets that
    name. ``source`` may be inside a transaction: the copy is of what it sees.
    ``connect`` opens the copy: an encrypted database (SQLCipher) is copied into a file
    encrypted with the same key, never into a plain one.

    Raises:
        BackupError: the copy failed or does not verify (the ``.partial`` file stays).
    """
    partial = folder / (name + PARTIAL)
    os.close(create_private(partial))
    try:
        expected = table_counts(source)
        target = connect(str(partial))
        try:
            source.backup(target)
            # A copy of a WAL database is itself WAL; as a rollback-journal file it is one
            # self-contained file, and reading it (mode=ro) creates no -shm beside it.
            target.execute("PRAGMA journal_mode = DELETE")
            check = target.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise errors.BackupError(
                    f"cannot verify the backup {partial}: integrity_check says {check[0][0]}"
                )
            copied = table_counts(target)
        finally:
            target.close()
    except errors.SQLITE_ERROR as exc:
        raise errors.BackupError(f"cannot back up into {partial}: {exc}") from exc
    if copied != expected:
        missing = sorted(t for t in expected if copied.get(t) != expected[t]) or sorted(
            set(copied) - set(expected)
        )
        raise errors.BackupError(
            f"cannot verify the backup {partial}: tables or row counts differ from the "
            f"source ({', '.join(missing[:5])})"
        )
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(partial) + suffix)
    return Copy(_finish(partial, folder / name), copied)


def client_binary(name: str) -> str | None:
    """A PostgreSQL client program: on PATH, else the newest under /usr/lib/postgresql."""
    return shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )


#: libpq environment variables for the DSN parameters a child process needs
#: (libpq-envars.html); the password goes by PGPASSWORD, so no argv ever holds it.
_PARAM_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslpassword": "PGSSLPASSWORD",
    "sslcrl": "PGSSLCRL",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "options": "PGOPTIONS",
    "channel_binding": "PGCHANNELBINDING",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "gssencmode": "PGGSSENCMODE",
}


def libpq_environment(dsn: Dsn | None) -> dict[str, str]:
    """The environment for a libpq client program (pg_dump, pg_restore, psql): every
    connection parameter as a ``PG*`` variable, none on the command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if dsn is None:
        return env
    if dsn.hosts:
        env["PGHOST"] = ",".join(h or "localhost" for h, _ in dsn.hosts)
        ports = [str(p) for _, p in dsn.hosts if p is not None]
        if ports:
            env["PGPORT"] = ",".join(ports)
    if dsn.user:
        env["PGUSER"] = dsn.user
    if dsn.password is not None:
        env["PGPASSWORD"] = dsn.password
    if dsn.database:
        env["PGDATABASE"] = dsn.database
    for key, value in dsn.params:
        variable = _PARAM_ENV.get(key.lower())
        if variable is not None:
            env[variable] = value
    return env


def pg_dump_backup(dsn: Secret, root: Path, *, tables: int) -> Path | None:
    """``pg_dump --format=custom`` into a new folder under ``root``, verified with
    ``pg_restore --list`` (a data entry for each of ``tables`` tables); None when pg_dump
    is not installed.

    Raises:
        BackupError: pg_dump failed or the dump does not verify (nothing gets a final name).
    """
    check_connection_policy(dsn)  # before the folder is made
    if client_binary("pg_dump") is None or client_binary("pg_restore") is None:
        return None
    with new_backup_folder(root) as folder:
        return pg_dump_into(dsn, folder, tables=tables)


def dump_name(dsn: Secret) -> str:
    """The dump's file name: the database name with anything unusual replaced."""
    base = dsn.parsed.database or "postgres"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in base) + ".dump"


def pg_dump_into(dsn: Secret, folder: Path, *, tables: int) -> Path:
    """``pg_dump --format=custom`` into ``folder``, verified; see :func:`pg_dump_backup`."""
    check_connection_policy(dsn)
    dump = client_binary("pg_dump")
    if dump is None:
        raise errors.BackupError("cannot back up postgresql: pg_dump is not installed")
    parsed = dsn.parsed
    env = libpq_environment(parsed)
    final = folder / dump_name(dsn)
    partial = final.with_name(final.name + PARTIAL)
    fd = create_private(partial)
    try:
        proc = subprocess.run(
            [dump, "--format=custom", "--no-password"],
            env=env,
            stdout=fd,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(fd)
    if proc.returncode != 0:
        raise errors.BackupError(
            f"cannot back up {parsed.redacted()}: pg_dump exited {proc.returncode}: "
            + scrub(proc.stderr.strip()[:300], parsed.secrets())
        )
    entries = dump_tables(partial, env)
    if entries is None or entries < tables:
        raise errors.BackupError(
            f"cannot verify the backup {partial}: pg_restore --list "
            + (
                "failed"
                if entries is None
                else f"lists {entries} tables' data, the database has {tables}"
            )
        )
    return _finish(partial, final)


def dump_tables(dump: Path, env: dict[str, str] | None = None) -> int | None:
    """How many tables' data ``pg_restore --list`` finds in a dump; None when it cannot
    read it."""
    restore = client_binary("pg_restore")
    if restore is None:
        raise errors.BackupError("cannot read a dump: pg_restore is not installed")
    listing = subprocess.run(
        [restore, "--list", str(dump)],
        env=env if env is not None else libpq_environment(None),
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        return None
    return sum(" TABLE DATA " in line for line in listing.stdout.splitlines())
