"""The SQLite backend: a synchronous connection, and the async contract over it."""

from aragora_repos.backends.sqlite.connection import PRAGMAS, SqliteConnection
from aragora_repos.backends.sqlite.database import AsyncSqliteDatabase, SqliteRepository
from aragora_repos.backends.sqlite.files import connect_read_only, open_read_only, read_only_uri
from aragora_repos.backends.sqlite.opener import (
    PLAIN,
    Opener,
    get_encrypted_connection,
    opener_for,
)

__all__ = [
    "PLAIN",
    "PRAGMAS",
    "AsyncSqliteDatabase",
    "Opener",
    "SqliteConnection",
    "SqliteRepository",
    "connect_read_only",
    "get_encrypted_connection",
    "open_read_only",
    "opener_for",
    "read_only_uri",
]
