"""aragora_repos: the thin runtime under the generated repositories (``aragora_db``)."""

from __future__ import annotations

from aragora_repos.config import Config, Secret, redact_dsn
from aragora_repos.database import AsyncBackend, open_async, open_sync
from aragora_repos.errors import (
    CheckViolation,
    ConfigError,
    ConnectionFailure,
    DatabaseBusy,
    DatabaseError,
    DataError,
    DeadlockDetected,
    ForeignKeyViolation,
    IntegrityError,
    InterfaceError,
    MigrationError,
    NotFoundError,
    NotNullViolation,
    OperationalError,
    PoolClosed,
    PoolTimeout,
    ProgrammingError,
    SerializationFailure,
    TransactionError,
    UniqueViolation,
)
from aragora_repos.migrations import Migration
from aragora_repos.postgres import PostgresDatabase
from aragora_repos.sqlite import AsyncSqliteDatabase, SqliteConnection
from aragora_repos.transaction import Isolation
from aragora_repos.types import JSON, ExecResult

__all__ = [
    "JSON",
    "AsyncBackend",
    "AsyncSqliteDatabase",
    "CheckViolation",
    "Config",
    "ConfigError",
    "ConnectionFailure",
    "DataError",
    "DatabaseBusy",
    "DatabaseError",
    "DeadlockDetected",
    "ExecResult",
    "ForeignKeyViolation",
    "IntegrityError",
    "InterfaceError",
    "Isolation",
    "Migration",
    "MigrationError",
    "NotFoundError",
    "NotNullViolation",
    "OperationalError",
    "PoolClosed",
    "PoolTimeout",
    "PostgresDatabase",
    "ProgrammingError",
    "Secret",
    "SerializationFailure",
    "SqliteConnection",
    "TransactionError",
    "UniqueViolation",
    "open_async",
    "open_sync",
    "redact_dsn",
]
