"""The SQLite backend: a synchronous connection, and the async contract over it."""

from aragora_repos.backends.sqlite.connection import PRAGMAS, SqliteConnection
from aragora_repos.backends.sqlite.database import AsyncSqliteDatabase, SqliteRepository
from aragora_repos.backends.sqlite.files import connect_read_only, open_read_only, read_only_uri

__all__ = [
    "PRAGMAS",
    "AsyncSqliteDatabase",
    "SqliteConnection",
    "SqliteRepository",
    "connect_read_only",
    "open_read_only",
    "read_only_uri",
]
