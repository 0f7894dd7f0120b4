"""The backends behind one contract (:class:`Backend`), and opening the configured one.

Names are imported when first used (see :mod:`aragora_repos._lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aragora_repos._lazy import attributes

if TYPE_CHECKING:
    from aragora_repos.backends.base import Backend
    from aragora_repos.backends.opening import AsyncBackend, open_async, open_sync
    from aragora_repos.backends.postgres import PostgresDatabase
    from aragora_repos.backends.sqlite import AsyncSqliteDatabase, SqliteConnection

__getattr__ = attributes(
    __name__,
    {
        "Backend": "aragora_repos.backends.base",
        "AsyncBackend": "aragora_repos.backends.opening",
        "open_async": "aragora_repos.backends.opening",
        "open_sync": "aragora_repos.backends.opening",
        "PostgresDatabase": "aragora_repos.backends.postgres",
        "AsyncSqliteDatabase": "aragora_repos.backends.sqlite.database",
        "SqliteConnection": "aragora_repos.backends.sqlite.connection",
    },
)

__all__ = [
    "AsyncBackend",
    "AsyncSqliteDatabase",
    "Backend",
    "PostgresDatabase",
    "SqliteConnection",
    "open_async",
    "open_sync",
]
