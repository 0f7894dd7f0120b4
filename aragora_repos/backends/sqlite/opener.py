"""How SQLite files are opened: which DB-API module, and with which key.

A plain database is opened with the standard :mod:`sqlite3`. An encrypted one
(``ARAGORA_SQLITE_ENCRYPTION=1``) is opened with SQLCipher 4's ``sqlcipher3.dbapi2``, a
drop-in DB-API module, keyed before its first statement. Everything above this module
(the writer thread, inline reads, streams, migrations, backups, the data tools) runs the
same code on either: it asks an :class:`Opener` for its connections and catches the
exception tuples below, which hold both modules' classes.

The key is a passphrase, as the ``sqlcipher`` shell takes it. SQLCipher derives the
page key from it and the file's random salt with PBKDF2-HMAC-SHA512 (256,000
iterations, about 150 ms); that is done here once per salt and process, and each
connection is given the derived key with the salt (``x'<key><salt>'``), so opening
costs what a plain open does and the file still opens with the passphrase anywhere
else. The passphrase never goes into SQL text.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import urllib.parse
from pathlib import Path
from types import ModuleType
from typing import Any

from aragora_repos import errors
from aragora_repos.config import Config, SqliteKey, sqlite_key_from_env, sqlite_key_setting

#: The first 16 bytes of every plain SQLite file (sqlite.org/fileformat.html §1.3).
PLAIN_HEADER = b"SQLite format 3\x00"
SALT_BYTES = 16
#: SQLCipher 4's defaults (zetetic.net/sqlcipher/sqlcipher-api/#cipher_default_settings).
KDF_ITERATIONS = 256_000
KEY_BYTES = 32


Error = errors.SQLITE_ERROR


def read_only_uri(path: str | Path) -> str:
    """The ``file:`` URI that opens ``path`` read-only: nothing is created or changed."""
    return "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"


def header(path: str | Path) -> bytes | None:
    """The first 16 bytes of ``path``; None when it is missing or shorter (a new file)."""
    try:
        with open(path, "rb") as f:
            first = f.read(SALT_BYTES)
    except (FileNotFoundError, IsADirectoryError):
        return None
    return first if len(first) == SALT_BYTES else None


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def is_encrypted_file(path: str | Path) -> bool:
    """Whether ``path`` holds something that is not a plain SQLite database: a SQLCipher
    file (its header is a random salt), or not a database at all."""
    first = header(path)
    return first is not None and first != PLAIN_HEADER


_derived: dict[tuple[bytes, bytes], bytes] = {}
_derived_lock = threading.Lock()


def _derive(key: SqliteKey, salt: bytes) -> bytes:
    cache_key = (hashlib.sha256(key.reveal()).digest(), salt)
    with _derived_lock:
        found = _derived.get(cache_key)
        if found is None:
            found = hashlib.pbkdf2_hmac("sha512", key.reveal(), salt, KDF_ITERATIONS, KEY_BYTES)
            _derived[cache_key] = found
    return found


def attach_key(key: SqliteKey | None, salt: bytes) -> str:
    """The key as SQLCipher takes it in ``PRAGMA key`` and ``ATTACH ... KEY``: the derived
    key with the salt (no passphrase in the text); ``''`` for a plain file."""
    if key is None:
        return "''"
    return f"\"x'{_derive(key, salt).hex()}{salt.hex()}'\""


def key_pragma(key: SqliteKey, salt: bytes) -> str:
    return f"PRAGMA key = {attach_key(key, salt)}"


def need_sqlcipher() -> ModuleType:
    if errors.SQLCIPHER is None:
        raise errors.ConfigError(
            "ARAGORA_SQLITE_ENCRYPTION=1 needs SQLCipher: pip install 'aragora-repos[sqlcipher]' "
            "(the sqlcipher3 wheel bundles it)"
        )
    return errors.SQLCIPHER


class Opener:
    """Opens SQLite files with the configured module and key (see the module docstring).

    ``Opener()`` opens plain files with :mod:`sqlite3`; ``Opener(key)`` opens SQLCipher
    files. A file of the other kind is a clear :class:`~aragora_repos.errors.
    EncryptionError` naming it, never "file is not a database" at the first query.
    """

    __slots__ = ("key", "module")

    def __init__(self, key: SqliteKey | None = None, *, sqlcipher: bool = False) -> None:
        """``sqlcipher``: open with SQLCipher's module even without a key (a plain file
        that ``sqlcipher_export`` will encrypt)."""
        self.key = key
        self.module: ModuleType = need_sqlcipher() if key is not None or sqlcipher else sqlite3

    @property
    def encrypted(self) -> bool:
        return self.key is not None

    def connect(
        self, path: str | Path, *, read_only: bool = False, **kwargs: Any
    ) -> sqlite3.Connection:
        """A connection to ``path`` (``read_only``: opened ``mode=ro``, nothing created),
        keyed and proven readable before it is returned.

        Raises:
            EncryptionError: a plain file while a key is set, an encrypted one without a
                key, or a key that does not open it.
            FileError: ``read_only`` and no file there.
        """
        name = str(path)
        memory = name == ":memory:" or name.startswith("file::memory:")
        if read_only and not memory and not os.path.isfile(name):
            raise errors.FileError(f"cannot open {name}: no database there")
        for _ in range(3):
            inode = None if memory else _inode(name)
            conn = self._connect(name, memory, read_only, kwargs)
            if inode is None or _inode(name) == inode:
                return conn
            # The file was replaced while this connection opened it (encrypt, decrypt and
            # rekey swap in a new file under the old one's exclusive lock): open it again,
            # so nothing is written into the replaced file.
            conn.close()
        raise errors.FileError(f"cannot open {name}: it keeps being replaced while opening")

    def _connect(
        self, name: str, memory: bool, read_only: bool, kwargs: dict[str, Any]
    ) -> sqlite3.Connection:
        first = None if memory else header(name)
        if self.key is not None and first == PLAIN_HEADER:
            raise errors.EncryptionError(
                f"cannot open sqlite database {name}: it is plain (not encrypted) and "
                "ARAGORA_SQLITE_ENCRYPTION=1; encrypt it first (`aragora-repos encrypt`)"
            )
        if read_only and not memory:
            conn = self.module.connect(read_only_uri(name), uri=True, **kwargs)
        else:
            conn = self.module.connect(name, **kwargs)
        try:
            if self.module is not sqlite3:
                conn.execute("PRAGMA cipher_log_level = NONE")  # no errors on stderr
            if self.key is not None:
                conn.execute(key_pragma(self.key, first or os.urandom(SALT_BYTES)))
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        except Error as exc:
            conn.close()
            raise self.open_error(name, exc) from None
        return conn  # type: ignore[no-any-return]

    def attach(self, conn: sqlite3.Connection, path: str | Path, schema: str) -> None:
        """``ATTACH`` the file ``path`` as ``schema`` to a connection this opener made,
        with the ``KEY`` its kind needs: none for a plain file, this opener's key (derived
        with that file's salt) for an encrypted one.

        Raises:
            EncryptionError: an encrypted file and this opener has no key.
        """
        first = header(path)
        if first is None or first == PLAIN_HEADER:
            key_clause = "''"
        elif self.key is None:
            raise errors.EncryptionError(
                f"cannot attach {path}: it is encrypted or not a SQLite database, and no "
                "ARAGORA_SQLITE_KEY is set"
            )
        else:
            key_clause = attach_key(self.key, first)
        if self.module is sqlite3:
            key_clause = "''"  # the plain module has no codec; KEY is parsed and ignored
        conn.execute(f'ATTACH DATABASE ? AS "{schema}" KEY {key_clause}', (str(path),))

    def autocommit(self, path: str | Path) -> sqlite3.Connection:
        """A read-write connection in autocommit mode (``isolation_level=None``)."""
        return self.connect(path, isolation_level=None)

    def open_error(self, name: str, exc: BaseException) -> errors.DatabaseError:
        """What failing to open ``name`` means, naming the file and what to set."""
        if "file is not a database" in str(exc):
            if self.key is not None:
                return errors.EncryptionError(
                    f"cannot open sqlite database {name}: ARAGORA_SQLITE_KEY does not open it "
                    "(a wrong key, or not a SQLCipher database)"
                )
            if is_encrypted_file(name):
                return errors.EncryptionError(
                    f"cannot open sqlite database {name}: file is not a database, or is "
                    "encrypted (then set ARAGORA_SQLITE_ENCRYPTION=1 and ARAGORA_SQLITE_KEY)"
                )
        if isinstance(exc, Error):
            mapped = errors.from_sqlite(exc)
            return type(mapped)(
                f"cannot open sqlite database {name}: {exc}", sqlstate=mapped.sqlstate
            )
        return errors.FileError(f"cannot open sqlite database {name}: {exc}")

    def __repr__(self) -> str:
        return "Opener(sqlcipher, key=***)" if self.key is not None else "Opener(sqlite3)"


PLAIN = Opener()
#: ``key=ENV``: the environment's key (``ARAGORA_SQLITE_KEY``), read when needed.
ENV: object = object()


def for_file(path: str | Path, key: SqliteKey | object | None = ENV) -> Opener:
    """The :class:`Opener` for a file as it is: a plain SQLite file opens plain, an
    encrypted one with ``key`` (default: the environment's ``ARAGORA_SQLITE_KEY``), and a
    file that does not exist yet as the configuration says (``key``, or
    ``ARAGORA_SQLITE_ENCRYPTION``). For the data tools, which read files of either kind.

    Raises:
        EncryptionError: an encrypted file and no key to open it.
    """
    first = None if str(path) == ":memory:" else header(path)
    if first == PLAIN_HEADER:
        return PLAIN
    if first is None:
        chosen = sqlite_key_setting(os.environ) if key is ENV else key
        return PLAIN if chosen is None else Opener(chosen)  # type: ignore[arg-type]
    found = sqlite_key_from_env(os.environ) if key is ENV else key
    if found is None:
        raise errors.EncryptionError(
            f"cannot open sqlite database {path}: file is not a database, or is encrypted "
            "(then set ARAGORA_SQLITE_KEY)"
        )
    return Opener(found)  # type: ignore[arg-type]


def opener_for(config: Config) -> Opener:
    """The :class:`Opener` for a :class:`~aragora_repos.config.Config`."""
    key = config.sqlite_key
    return PLAIN if key is None else Opener(key)


def get_encrypted_connection(
    path: str | Path, key: SqliteKey | str | None = None, **kwargs: Any
) -> sqlite3.Connection:
    """The seeds' helper: a SQLCipher connection to ``path``, keyed with ``key`` (default:
    ``ARAGORA_SQLITE_KEY`` or the file ``ARAGORA_SQLITE_KEY_FILE`` names), with the
    runtime's SQL functions installed.

    Raises:
        ConfigError: no key, or SQLCipher is not installed.
        EncryptionError: the key does not open the file, or it is a plain database.
    """
    from aragora_repos.backends.sqlite.functions import install

    if key is None:
        found = sqlite_key_from_env(os.environ, required=True)
        assert found is not None
        key = found
    elif isinstance(key, str):
        key = SqliteKey(key)
    conn = Opener(key).connect(path, **kwargs)
    install(conn)
    return conn
