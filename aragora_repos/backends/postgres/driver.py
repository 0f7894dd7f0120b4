"""The asyncpg layer: connection setup, the session reset, and what a driver error means.

Everything here speaks asyncpg; the rest of the PostgreSQL backend speaks this runtime's
errors, through :func:`map_error` and :func:`is_loss`.
"""

from __future__ import annotations

import json
import logging
import ssl
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from aragora_repos import errors
from aragora_repos.codec import json_text
from aragora_repos.config import Secret, check_connection_policy
from aragora_repos.types import JSON

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]
    Lent: TypeAlias = PoolConnectionProxy[asyncpg.Record]
    BoundConnection: TypeAlias = Connection | Lent
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]


def _jsonb_encode(value: JSON) -> bytes:
    return b"\x01" + json_text(value).encode()  # jsonb binary format: version 1, then text


def _jsonb_decode(data: bytes) -> JSON:
    return json.loads(data[1:])  # type: ignore[no-any-return]


def _json_encode(value: JSON) -> bytes:
    return json_text(value).encode()


def _json_decode(data: bytes) -> JSON:
    return json.loads(data)  # type: ignore[no-any-return]


async def init_connection(conn: Connection) -> None:
    # Binary codecs so COPY (copy_records_to_table) encodes JSON columns too.
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "json", encoder=_json_encode, decoder=_json_decode, schema="pg_catalog", format="binary"
    )


#: SQLSTATEs that mean the session is gone: class 08, and admin_shutdown, crash_shutdown,
#: cannot_connect_now (errcodes-appendix.html).
_LOST = frozenset({"57P01", "57P02", "57P03"})


def is_loss(exc: BaseException, conn: Lent | None = None) -> bool:
    """Whether ``exc`` means the connection is gone (not a statement error)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state.startswith("08") or state in _LOST
    if isinstance(exc, asyncpg.InterfaceError):
        return conn is not None and gone(conn)
    return isinstance(exc, OSError | asyncpg.exceptions.InternalClientError)


def map_error(exc: BaseException) -> errors.DatabaseError:
    if isinstance(exc, asyncpg.InvalidCachedStatementError):
        return errors.StatementCacheStale(
            f"cannot run the statement: {exc}; re-run the transaction", sqlstate=exc.sqlstate
        )
    if isinstance(exc, asyncpg.PostgresError):
        return errors.from_sqlstate(exc.sqlstate, str(exc))
    if isinstance(exc, asyncpg.DataError):  # a parameter the client cannot encode
        return errors.DataError(f"cannot encode a parameter: {exc}", sqlstate="22000")
    if isinstance(exc, asyncpg.InterfaceError):
        return errors.InterfaceError(f"cannot use the connection: {exc}")
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        return errors.ConnectionFailure(f"cannot use the connection: {exc}")
    return errors.ConnectionFailure(f"cannot reach postgresql: {type(exc).__name__}: {exc}")


#: Set while a connection is used for work that may change session state (transactions,
#: migrations): its release then runs asyncpg's full reset query.
FULL_RESET: ContextVar[bool] = ContextVar("aragora_pg_full_reset", default=False)


#: Everything a session can carry to the next user, in one round trip. asyncpg's default
#: (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) leaves SET ROLE, SET SESSION
#: AUTHORIZATION, temporary tables and SQL-level PREPAREd statements behind; DISCARD ALL
#: would also drop asyncpg's own prepared statements, so only those PREPAREd from SQL
#: are deallocated.
RESET_QUERY = (
    "SET SESSION AUTHORIZATION DEFAULT; RESET ALL; SELECT pg_advisory_unlock_all(); "
    "CLOSE ALL; UNLISTEN *; DISCARD TEMP; DISCARD SEQUENCES; "
    "DO $$DECLARE r record; BEGIN FOR r IN SELECT name FROM pg_prepared_statements "
    "WHERE from_sql LOOP EXECUTE format('DEALLOCATE %I', r.name); END LOOP; END$$"
)


async def reset_session(conn: Connection) -> None:
    """Pool reset hook. asyncpg has already rolled back any open transaction and removed
    listeners (``Connection._reset``) before calling it. A single generated statement run
    outside a transaction cannot leave session state behind, so its release skips the
    reset query, which would otherwise cost a second round trip per call; releases from
    transactions, checkouts and migrations run :data:`RESET_QUERY`. If the reset fails or
    is cancelled, asyncpg terminates the connection instead of reusing it."""
    if FULL_RESET.get():
        await conn.execute(RESET_QUERY)


#: UTC sessions: date_trunc and timestamptz text casts then agree with SQLite's storage form.
SESSION_SETTINGS = {"timezone": "UTC"}


class _HideDriverFrames(logging.Filter):
    """asyncpg's pool logs failed reconnects with ``exc_info`` (pool.py, "Failed to restore
    the pool connection floor"); a handler that records frame locals (error reporters do)
    would store the connection parameters, password included, from the driver's frames.
    The record keeps the exception's type and SQLSTATE, not its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            sqlstate = getattr(exc, "sqlstate", None)
            record.msg = f"{record.getMessage()} ({type(exc).__name__}" + (
                f", {sqlstate})" if sqlstate else ")"
            )
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("asyncpg.pool").addFilter(_HideDriverFrames())

#: InternalClientError: the protocol refuses a new operation on a session the server has
#: ended while it sat idle (the FATAL arrived, the EOF not yet); it is raised before
#: anything is sent.
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)


def rows_of(status: str) -> int:
    """Rows affected from a command tag such as ``UPDATE 3`` or ``INSERT 0 1``."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def terminate(conn: Lent) -> None:
    if not gone(conn):
        conn.terminate()


def gone(conn: BoundConnection) -> bool:
    """Whether a connection can no longer be used. When the server ends a session,
    asyncpg returns its holder to the pool by itself and detaches a lent proxy
    (``Connection._cleanup``), after which every proxy method raises; so the proxy's
    own attribute is read instead of calling into it."""
    if not isinstance(conn, PoolConnectionProxy):  # a connection of its own
        return conn.is_closed()
    inner: Connection | None = cast(Any, conn)._con
    return inner is None or inner.is_closed()


async def _no_reset(conn: Connection) -> None:
    """Behind a transaction pooler the server session is not this connection's to reset:
    the runtime sets session state only with SET LOCAL there."""


#: Pooler modes (``Config.pooler``) whose server sessions outlive a transaction.
SESSION_POOLERS = ("none", "session")


def _driver_options(pooler: str) -> dict[str, Any]:
    """asyncpg settings for a pooler mode: behind a transaction pooler no statement is
    prepared under a name (the next transaction may run on another server session, or
    another client's statement of that name may be there; asyncpg's FAQ, PgBouncer's
    prepared-statement notes), so its statement cache is off."""
    return {} if pooler in SESSION_POOLERS else {"statement_cache_size": 0}


async def create_pool(
    dsn: Secret, min_size: int, max_size: int, timeout: float, *, pooler: str = "none"
) -> Pool:
    check_connection_policy(dsn)
    failure: errors.DatabaseError | None = None
    try:
        return await asyncpg.create_pool(
            dsn.reveal(),
            min_size=min_size,
            max_size=max_size,
            init=init_connection,
            reset=reset_session if pooler in SESSION_POOLERS else _no_reset,
            timeout=timeout,
            server_settings=SESSION_SETTINGS,
            **_driver_options(pooler),
        )
    except (TimeoutError, *DRIVER_ERRORS) as exc:
        failure = _connect_failure(exc, dsn)
    raise failure


async def connect_one(dsn: Secret, *, timeout: float = 10.0, pooler: str = "none") -> Connection:
    """One asyncpg connection with this runtime's session settings and asyncpg's own
    codecs, for bulk work (COPY) that needs a connection of its own; connection errors
    are those of :meth:`PostgresDatabase.open`."""
    check_connection_policy(dsn)
    failure: errors.DatabaseError | None = None
    try:
        conn: Connection = await asyncpg.connect(
            dsn.reveal(),
            timeout=timeout,
            server_settings=SESSION_SETTINGS,
            **_driver_options(pooler),
        )
    except (TimeoutError, *DRIVER_ERRORS) as exc:
        failure = _connect_failure(exc, dsn)
    else:
        return conn
    raise failure


def _connect_failure(exc: BaseException, dsn: Secret) -> errors.DatabaseError:
    """Built from the exception type and the redacted DSN only, and raised by the caller
    outside its ``except`` block: the driver's frames (kept as __context__) hold the raw DSN."""
    kind = (
        type(errors.from_sqlstate(exc.sqlstate, ""))
        if isinstance(exc, asyncpg.PostgresError)
        else errors.ConnectionFailure
    )
    sqlstate = exc.sqlstate if isinstance(exc, asyncpg.PostgresError) else None
    reason = type(exc).__name__ + (f" ({sqlstate})" if sqlstate else "")
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        # OpenSSL's own words (expired, wrong issuer, host name mismatch); no credentials.
        reason += f": the server's certificate does not verify: {exc.verify_message}"
    return kind(f"cannot connect to {dsn}: {reason}", sqlstate=sqlstate)
