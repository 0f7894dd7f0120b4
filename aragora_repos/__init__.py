"""aragora_repos: the thin runtime under the generated repositories (``aragora_db``).

The backends, transactions, migrations and health types are imported when first named
(``from aragora_repos import PostgresDatabase`` works as before): the generator and the
CLI's quick commands need only the configuration and the errors, and importing the
backends (asyncio, asyncpg) cost about 0.2 s of every ``make generate``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aragora_repos._lazy import attributes
from aragora_repos.errors import (
    BackupError,
    CheckViolation,
    CommitOutcomeUnknown,
    ConfigError,
    ConnectionFailure,
    ConnectionUnavailable,
    DatabaseBusy,
    DatabaseError,
    DataError,
    DeadlockDetected,
    FileError,
    ForeignKeyViolation,
    IntegrityError,
    InterfaceError,
    MigrationError,
    NotFoundError,
    NotNullViolation,
    NotSupportedError,
    OperationalError,
    PoolClosed,
    PoolTimeout,
    ProgrammingError,
    RetriesExhausted,
    SerializationFailure,
    StatementCacheStale,
    TooManyConnections,
    TransactionError,
    TransactionTimeout,
    UniqueViolation,
)
from aragora_repos.types import JSON, ExecResult

if TYPE_CHECKING:
    from aragora_repos.backends import AsyncBackend, Backend, open_async, open_sync
    from aragora_repos.backends.postgres import PostgresDatabase
    from aragora_repos.backends.sqlite import AsyncSqliteDatabase, SqliteConnection
    from aragora_repos.config import Config, Secret, redact_dsn
    from aragora_repos.migrations import Migration
    from aragora_repos.observability import (
        BackendCapabilities,
        BackendType,
        DatabaseHealth,
        HealthStatus,
        PoolStats,
        ReplicaStatus,
    )
    from aragora_repos.transaction import (
        Isolation,
        Rollback,
        Transaction,
        TransactionConfig,
        TransactionStats,
        TxState,
    )

#: Names imported when first used: name -> module.
_LAZY = {
    **dict.fromkeys(("Config", "Secret", "redact_dsn"), "aragora_repos.config"),
    **dict.fromkeys(
        ("AsyncBackend", "Backend", "open_async", "open_sync"), "aragora_repos.backends"
    ),
    "PostgresDatabase": "aragora_repos.backends.postgres",
    **dict.fromkeys(("AsyncSqliteDatabase", "SqliteConnection"), "aragora_repos.backends.sqlite"),
    "Migration": "aragora_repos.migrations",
    **dict.fromkeys(
        (
            "BackendCapabilities",
            "BackendType",
            "DatabaseHealth",
            "HealthStatus",
            "PoolStats",
            "ReplicaStatus",
        ),
        "aragora_repos.observability",
    ),
    **dict.fromkeys(
        (
            "Isolation",
            "Rollback",
            "Transaction",
            "TransactionConfig",
            "TransactionStats",
            "TxState",
        ),
        "aragora_repos.transaction",
    ),
}


__getattr__ = attributes(__name__, _LAZY)


__all__ = [
    "JSON",
    "AsyncBackend",
    "AsyncSqliteDatabase",
    "Backend",
    "BackendCapabilities",
    "BackendType",
    "BackupError",
    "CheckViolation",
    "CommitOutcomeUnknown",
    "Config",
    "ConfigError",
    "ConnectionFailure",
    "ConnectionUnavailable",
    "DataError",
    "DatabaseBusy",
    "DatabaseError",
    "DatabaseHealth",
    "DeadlockDetected",
    "ExecResult",
    "FileError",
    "ForeignKeyViolation",
    "HealthStatus",
    "IntegrityError",
    "InterfaceError",
    "Isolation",
    "Migration",
    "MigrationError",
    "NotFoundError",
    "NotNullViolation",
    "NotSupportedError",
    "OperationalError",
    "PoolClosed",
    "PoolStats",
    "PoolTimeout",
    "PostgresDatabase",
    "ProgrammingError",
    "ReplicaStatus",
    "RetriesExhausted",
    "Rollback",
    "Secret",
    "SerializationFailure",
    "SqliteConnection",
    "StatementCacheStale",
    "TooManyConnections",
    "Transaction",
    "TransactionConfig",
    "TransactionError",
    "TransactionStats",
    "TransactionTimeout",
    "TxState",
    "UniqueViolation",
    "open_async",
    "open_sync",
    "redact_dsn",
]
