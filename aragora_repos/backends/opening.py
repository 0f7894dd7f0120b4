"""Opening the configured backend."""

from __future__ import annotations

from typing import TypeAlias

from aragora_repos.backends.base import Backend
from aragora_repos.backends.postgres import PostgresDatabase
from aragora_repos.backends.sqlite import AsyncSqliteDatabase, SqliteConnection, opener_for
from aragora_repos.config import Config
from aragora_repos.errors import ConfigError

#: Every async backend; code written against it runs on either.
AsyncBackend: TypeAlias = Backend


async def open_async(config: Config | None = None, *, inspect: bool = False) -> Backend:
    """Open PostgreSQL or SQLite as ``config`` (default: the environment) says.

    ``inspect``: only look. A SQLite file is opened read-only and must exist; nothing is
    created or switched to WAL (for ``status``, ``health``, ``check``).
    """
    config = config or Config.from_env()
    if config.backend == "postgres":
        return await PostgresDatabase.from_config(config)
    return await AsyncSqliteDatabase.open(
        config.sqlite_file,
        timeout=config.timeout,
        slow_query_ms=config.slow_query_ms,
        inspect=inspect,
        opener=opener_for(config),
        inline_budget_ms=config.sqlite_inline_budget_ms,
        keys=config.encryption,
    )


def open_sync(config: Config | None = None) -> SqliteConnection:
    """Open the configured SQLite database synchronously."""
    config = config or Config.from_env()
    if config.backend != "sqlite":
        raise ConfigError(
            "cannot open a synchronous connection: the sync API is for sqlite; "
            "use `await connect()` for postgresql"
        )
    return SqliteConnection(
        config.sqlite_file,
        timeout=config.timeout,
        slow_query_ms=config.slow_query_ms,
        opener=opener_for(config),
        keys=config.encryption,
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
