"""The SQLite backend: a synchronous connection, and the async contract over it.

Names are imported when first used (see :mod:`aragora_repos._lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aragora_repos._lazy import attributes

if TYPE_CHECKING:
    from aragora_repos.backends.sqlite.connection import PRAGMAS, SqliteConnection
    from aragora_repos.backends.sqlite.database import AsyncSqliteDatabase, SqliteRepository
    from aragora_repos.backends.sqlite.files import (
        connect_read_only,
        open_read_only,
        read_only_uri,
    )
    from aragora_repos.backends.sqlite.opener import (
        PLAIN,
        Opener,
        get_encrypted_connection,
        opener_for,
    )

_MODULES = {
    "aragora_repos.backends.sqlite.connection": ("PRAGMAS", "SqliteConnection"),
    "aragora_repos.backends.sqlite.database": ("AsyncSqliteDatabase", "SqliteRepository"),
    "aragora_repos.backends.sqlite.files": ("connect_read_only", "open_read_only", "read_only_uri"),
    "aragora_repos.backends.sqlite.opener": (
        "PLAIN",
        "Opener",
        "get_encrypted_connection",
        "opener_for",
    ),
}
__getattr__ = attributes(__name__, {n: m for m, names in _MODULES.items() for n in names})

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
