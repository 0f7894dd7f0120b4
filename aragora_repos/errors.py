"""The error tree. Driver errors are mapped by SQLSTATE (PostgreSQL) and extended result
code (SQLite), never by message text (one exception: the generated ``int2_range`` /
``int4_range`` CHECK constraints, recognised by their name), and chained with
``raise ... from``.

SQLite errors carry the SQLSTATE of the matching PostgreSQL error, so callers can
handle both backends with one ``except`` clause and one ``sqlstate`` check.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, cast


def _sqlcipher() -> ModuleType | None:
    try:
        from sqlcipher3 import dbapi2  # type: ignore[import-untyped]
    except ImportError:
        return None
    return cast(ModuleType, dbapi2)


#: SQLCipher's DB-API module (``sqlcipher3.dbapi2``) when it is installed: encrypted
#: SQLite files are opened with it (:mod:`aragora_repos.backends.sqlite.opener`).
SQLCIPHER = _sqlcipher()
_SQLITE_MODULES = (sqlite3,) if SQLCIPHER is None else (sqlite3, SQLCIPHER)


def _classes(name: str) -> tuple[type[sqlite3.Error], ...]:
    return tuple(getattr(m, name) for m in _SQLITE_MODULES)


# The two modules' exceptions share no base class; ``except SQLITE_ERROR`` catches both.
SQLITE_ERROR = _classes("Error")
SQLITE_DATABASE_ERROR = _classes("DatabaseError")
SQLITE_OPERATIONAL_ERROR = _classes("OperationalError")
SQLITE_INTEGRITY_ERROR = _classes("IntegrityError")
SQLITE_PROGRAMMING_ERROR = _classes("ProgrammingError")


class DatabaseError(Exception):
    """Root of every error raised by aragora_repos."""

    sqlstate: str | None = None
    retryable: bool = False
    """Whether ``run_in_transaction`` may re-run the whole transaction after it."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        if sqlstate is not None:
            self.sqlstate = sqlstate


class ConfigError(DatabaseError):
    """The configuration (environment) is invalid; the message names the variable."""


class InterfaceError(DatabaseError):
    """Client-side misuse, e.g. a transaction used after it ended."""


class ConnectionFailure(DatabaseError):
    """The server could not be reached or the connection was lost."""


class ConnectionUnavailable(ConnectionFailure):
    """No connection could be had, so nothing was sent: any statement may be retried."""


class NotSupportedError(DatabaseError):
    """The backend does not have the feature asked for (e.g. advisory locks on SQLite)."""


class PoolTimeout(DatabaseError):
    """No connection became free within the configured wait."""


class PoolClosed(DatabaseError):
    """The database object was closed."""


class DataError(DatabaseError):
    """A value cannot be stored: wrong type, out of range, invalid text (class 22)."""


class ProgrammingError(DatabaseError):
    """The statement is invalid for this database: syntax, unknown table (class 42)."""


class OperationalError(DatabaseError):
    """The database could not run the statement now (busy, canceled, out of resources)."""


class TooManyConnections(OperationalError):
    """The server refused a new connection: it is at ``max_connections`` (53300). Nothing
    ran, so the pool waits and tries again, and ``run_in_transaction`` re-runs."""

    sqlstate = "53300"
    retryable = True


class DatabaseBusy(OperationalError):
    """SQLite stayed locked by another writer for longer than the busy timeout."""


class InlineBudgetExceeded(OperationalError):
    """An inline SQLite read (on the event loop's thread) ran past its time budget and was
    interrupted; the runtime runs it again on the writer's thread."""


class IntegrityError(DatabaseError):
    """A constraint was violated (class 23)."""


class UniqueViolation(IntegrityError):
    sqlstate = "23505"


class ForeignKeyViolation(IntegrityError):
    sqlstate = "23503"


class NotNullViolation(IntegrityError):
    sqlstate = "23502"


class CheckViolation(IntegrityError):
    sqlstate = "23514"


class NotFoundError(DatabaseError):
    """A row that had to exist does not."""


class TransactionError(DatabaseError):
    """A transaction could not be started, finished or used as asked."""


class SerializationFailure(TransactionError):
    """The transaction conflicted with a concurrent one; re-run it whole (40001)."""

    sqlstate = "40001"


class DeadlockDetected(TransactionError):
    """The transaction was chosen as a deadlock victim; re-run it whole (40P01)."""

    sqlstate = "40P01"


class StatementCacheStale(TransactionError):
    """A cached prepared statement no longer matches the schema (DDL ran meanwhile);
    asyncpg re-prepares by itself outside transactions, inside one the whole transaction
    must run again (asyncpg issues #72, #76)."""

    retryable = True


class CommitOutcomeUnknown(TransactionError):
    """The connection was lost while COMMIT was in flight: the transaction may or may not
    have committed. Never retried automatically; settle it by reading back an idempotency
    key (FoundationDB's ``commit_unknown_result``, CockroachDB's 40003)."""

    sqlstate = "40003"


class RetriesExhausted(TransactionError):
    """``run_in_transaction`` gave up; ``attempts`` runs failed, the last one is chained."""

    def __init__(self, message: str, *, attempts: int, sqlstate: str | None = None) -> None:
        super().__init__(message, sqlstate=sqlstate)
        self.attempts = attempts


class TransactionTimeout(TransactionError):
    """The transaction ran past its ``timeout`` and was rolled back."""

    sqlstate = "57014"


class MigrationError(DatabaseError):
    """Migrations cannot be applied as they stand."""


class FileError(DatabaseError):
    """A file or folder this project reads or creates cannot be used; the message names it."""


class EncryptionError(FileError):
    """Encrypted data cannot be read as it stands: a missing or wrong key, a file of the
    other kind (plain where a key is set, encrypted where none is); the message names the
    file or value and what to set, never the key."""


class ColumnEncryptionError(DatabaseError):
    """An encrypted column's value cannot be sealed or opened; the message names the
    table, column and row, never the key or the plaintext."""


class UnknownKey(ColumnEncryptionError):
    """No key is configured, or the value was sealed under a key the ring does not hold
    (``ARAGORA_ENCRYPTION_KEY``, ``ARAGORA_ENCRYPTION_PREVIOUS_KEYS``)."""


class TamperedValue(ColumnEncryptionError):
    """A sealed value does not authenticate: it was altered, or copied from another row,
    column or table."""


class BackupError(DatabaseError):
    """A backup could not be taken or did not verify; nothing that needed it has run."""


_BY_SQLSTATE: dict[str, type[DatabaseError]] = {
    "23505": UniqueViolation,
    "23503": ForeignKeyViolation,
    "23502": NotNullViolation,
    "23514": CheckViolation,
    "40001": SerializationFailure,
    "40P01": DeadlockDetected,
    "57014": OperationalError,
    "55P03": OperationalError,
    "53300": TooManyConnections,
}
_BY_CLASS: dict[str, type[DatabaseError]] = {
    "22": DataError,
    "23": IntegrityError,
    "40": TransactionError,
    "25": TransactionError,
    "42": ProgrammingError,
    "08": ConnectionFailure,
    "53": OperationalError,
    "54": OperationalError,
    "55": OperationalError,
    "57": ConnectionFailure,
}


def from_sqlstate(sqlstate: str | None, message: str) -> DatabaseError:
    """The error for a PostgreSQL SQLSTATE (Appendix A of the PostgreSQL docs)."""
    code = sqlstate or ""
    cls = _BY_SQLSTATE.get(code) or _BY_CLASS.get(code[:2], DatabaseError)
    return cls(message, sqlstate=sqlstate)


# SQLite extended result codes (sqlite.org/rescode.html) -> (class, PostgreSQL SQLSTATE).
_SQLITE: dict[int, tuple[type[DatabaseError], str | None]] = {
    2067: (UniqueViolation, "23505"),  # SQLITE_CONSTRAINT_UNIQUE
    1555: (UniqueViolation, "23505"),  # SQLITE_CONSTRAINT_PRIMARYKEY
    787: (ForeignKeyViolation, "23503"),  # SQLITE_CONSTRAINT_FOREIGNKEY
    1299: (NotNullViolation, "23502"),  # SQLITE_CONSTRAINT_NOTNULL
    275: (CheckViolation, "23514"),  # SQLITE_CONSTRAINT_CHECK
    3091: (DataError, "22P02"),  # SQLITE_CONSTRAINT_DATATYPE (STRICT tables)
    19: (IntegrityError, "23000"),  # SQLITE_CONSTRAINT
    20: (DataError, "22000"),  # SQLITE_MISMATCH
    18: (DataError, "22001"),  # SQLITE_TOOBIG
    25: (ProgrammingError, "42P02"),  # SQLITE_RANGE: parameter index out of range
    1: (ProgrammingError, "42000"),  # SQLITE_ERROR: syntax, no such table, ...
    5: (DatabaseBusy, "55P03"),  # SQLITE_BUSY
    6: (DatabaseBusy, "55P03"),  # SQLITE_LOCKED
}


_pending = threading.local()


def take_error() -> DatabaseError | None:
    """The error a runtime SQL function raised on this thread, once (SQLite itself only
    reports "user-defined function raised exception")."""
    error: DatabaseError | None = getattr(_pending, "error", None)
    _pending.error = None
    return error


def keeping_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as a SQLite function whose own error reaches :func:`from_sqlite`."""

    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except DatabaseError as exc:
            _pending.error = exc
            raise

    return call


def from_sqlite(exc: sqlite3.Error) -> DatabaseError:
    """The error for a :mod:`sqlite3` exception, by extended then primary result code."""
    raised = take_error()  # a runtime SQL function's own error (an invalid LIKE pattern)
    if raised is not None:
        return raised
    code = getattr(exc, "sqlite_errorcode", None)
    message = str(exc)
    if code is None:
        if isinstance(exc, SQLITE_PROGRAMMING_ERROR):
            return InterfaceError(message)
        return OperationalError(message)
    if code == 19:  # a module without extended result codes (sqlcipher3): by the message
        code = next((c for prefix, c in _CONSTRAINTS if message.startswith(prefix)), code)
    if code == _CHECK and message.endswith(_RANGE_CHECKS):
        # The generated int2/int4 range constraints: numeric_value_out_of_range, as the
        # same arithmetic raises on PostgreSQL.
        return DataError(message, sqlstate="22003")
    cls, sqlstate = _SQLITE.get(code) or _SQLITE.get(code & 0xFF) or (OperationalError, None)
    return cls(message, sqlstate=sqlstate)


_CHECK = 275  # SQLITE_CONSTRAINT_CHECK
#: SQLite's own constraint messages (sqlite3.c), for the extended code they stand for.
_CONSTRAINTS = (
    ("UNIQUE constraint failed", 2067),
    ("NOT NULL constraint failed", 1299),
    ("FOREIGN KEY constraint failed", 787),
    ("CHECK constraint failed", 275),
    ("cannot store ", 3091),
)
_RANGE_CHECKS = (": int2_range", ": int4_range")


#: Errors after which re-running the whole transaction is safe and may succeed. A lost
#: connection is here because the server rolls back a transaction whose COMMIT it never
#: received; a loss during COMMIT is CommitOutcomeUnknown, which is never retried.
RETRYABLE: tuple[type[DatabaseError], ...] = (
    SerializationFailure,
    DeadlockDetected,
    ConnectionFailure,
    DatabaseBusy,
)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, CommitOutcomeUnknown):
        return False
    if isinstance(exc, ConnectionFailure) and exc.sqlstate == "57014":
        return False
    return isinstance(exc, RETRYABLE) or getattr(exc, "retryable", False) is True
