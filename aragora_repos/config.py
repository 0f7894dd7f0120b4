"""Configuration from the environment, validated once; errors name the variable.

Backend (``ARAGORA_DB_BACKEND``: sqlite | postgres (or postgresql) | auto, default auto): auto picks
PostgreSQL when a primary is configured, else SQLite at ``$ARAGORA_DATA_DIR/aragora.db``
(default ``.nomic/``).

The PostgreSQL primary is the first of ``DATABASE_URL``, ``ARAGORA_DATABASE_URL``,
``ARAGORA_POSTGRES_DSN``, ``SUPABASE_POSTGRES_DSN``, ``ARAGORA_POSTGRES_PRIMARY`` that is
set, else a DSN built from ``ARAGORA_PG_HOST`` / ``_PORT`` / ``_DATABASE`` / ``_USER`` /
``_PASSWORD``. ``ARAGORA_PG_SSL_MODE`` applies to a DSN that names no ``sslmode``.
``ARAGORA_POSTGRES_REPLICAS`` lists read replicas, comma-separated, each a DSN or a
``host[:port]`` that takes user, password, database and TLS from the primary.

Pool: the most connections is the first of ``ARAGORA_POSTGRES_POOL_MAX``,
``ARAGORA_POOL_MAX_SIZE`` and ``ARAGORA_DB_POOL_SIZE`` (plus ``ARAGORA_DB_POOL_MAX_OVERFLOW``,
extra connections during bursts) that is set, default 10; ``ARAGORA_POSTGRES_POOL_MIN`` are
kept open (default 1).
``ARAGORA_DB_POOL_TIMEOUT``: seconds to wait for a free connection. ``DB_TIMEOUT``: seconds
a SQLite writer waits for the lock. ``ARAGORA_SLOW_QUERY_MS``: log queries slower than
this (``off`` disables). ``ARAGORA_ENV=production`` refuses TLS modes that do not verify
the server (everything but verify-ca and verify-full; asyncpg's default is prefer).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar, cast
from urllib.parse import quote, urlencode, urlunsplit

from aragora_repos.dsn import Dsn, DsnError, parse_dsn, redact_dsn
from aragora_repos.errors import ConfigError
from aragora_repos.keyring import NO_KEYS, KeyRing

DSN_VARIABLES = (
    "DATABASE_URL",
    "ARAGORA_DATABASE_URL",
    "ARAGORA_POSTGRES_DSN",
    "SUPABASE_POSTGRES_DSN",
    "ARAGORA_POSTGRES_PRIMARY",
)
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
VERIFIED_SSL_MODES = ("verify-ca", "verify-full")
_log = logging.getLogger("aragora_repos.config")
DATA_DIR_VARIABLES = ("ARAGORA_DATA_DIR", "ARAGORA_NOMIC_DIR", "NOMIC_DIR")
SQLITE_FILE = "aragora.db"
__all__ = [
    "Config",
    "DsnError",
    "Secret",
    "SqliteKey",
    "check_connection_policy",
    "is_production",
    "redact_dsn",
    "sslmode",
]


class Secret:
    """A DSN whose ``str`` and ``repr`` never show the password.

    The text is parsed on the way in (:func:`aragora_repos.dsn.parse_dsn`, raising
    :class:`DsnError` without echoing it) and kept as a percent-encoded URI, the one form
    drivers and child processes are given.
    """

    __slots__ = ("_parsed", "_value")

    def __init__(self, value: str) -> None:
        try:
            parsed = parse_dsn(value)
        except DsnError as exc:
            message = str(exc)
        else:
            self._parsed = parsed
            self._value = parsed.uri()
            return
        del value  # raised afresh below: no frame of the traceback holds the DSN
        raise DsnError(message)

    @property
    def parsed(self) -> Dsn:
        return self._parsed

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self})"

    def __str__(self) -> str:
        parsed = getattr(self, "_parsed", None)  # None while __init__ is refusing a DSN
        return parsed.redacted() if parsed is not None else "<dsn hidden>"

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return (Secret, (self._value,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class SqliteKey:
    """The SQLCipher passphrase (``ARAGORA_SQLITE_KEY``, or the file
    ``ARAGORA_SQLITE_KEY_FILE`` names): its ``str`` and ``repr`` never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
        if not raw:
            raise ConfigError("invalid ARAGORA_SQLITE_KEY: it is empty")
        self._value = bytes(raw)

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "SqliteKey(***)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[SqliteKey], tuple[bytes]]:
        return (SqliteKey, (self._value,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SqliteKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


_ON = ("1", "true", "yes", "on")


def sqlite_key_from_env(
    env: Mapping[str, str], *, required: bool = False, variable: str = "ARAGORA_SQLITE_KEY"
) -> SqliteKey | None:
    """The key ``variable`` holds (as written: not stripped), else the contents of the
    file ``<variable>_FILE`` names (one trailing newline removed).

    Raises:
        ConfigError: both are set, the file cannot be read or is empty, or ``required``
            and neither is set.
    """
    text = env.get(variable, "")
    path = _get(env, variable + "_FILE")
    if text and path:
        raise ConfigError(f"set one of {variable} and {variable}_FILE, not both")
    if path:
        return key_from_file(path, f"{variable}_FILE")
    if text:
        return SqliteKey(text)
    if required:
        raise ConfigError(f"a key is needed: set {variable} or {variable}_FILE")
    return None


def key_from_file(path: str, what: str) -> SqliteKey:
    """The key a file holds (one trailing newline removed); errors name ``what``."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    raw = raw[:-1] if raw.endswith(b"\n") else raw
    raw = raw[:-1] if raw.endswith(b"\r") else raw
    if not raw:
        raise ConfigError(f"invalid {what}: {path} is empty")
    return SqliteKey(raw)


def sqlite_key_setting(env: Mapping[str, str]) -> SqliteKey | None:
    """The key when ``ARAGORA_SQLITE_ENCRYPTION`` turns encryption on, else None."""
    setting = _get(env, "ARAGORA_SQLITE_ENCRYPTION").lower()
    if setting and setting not in (*_ON, "0", "false", "no", "off"):
        raise ConfigError(f"invalid ARAGORA_SQLITE_ENCRYPTION: expected 1 or 0, got {setting!r}")
    if setting in _ON:
        return sqlite_key_from_env(env, required=True)
    if not setting and (env.get("ARAGORA_SQLITE_KEY") or _get(env, "ARAGORA_SQLITE_KEY_FILE")):
        # A key with encryption unset would leave the database plain, silently.
        raise ConfigError(
            "ARAGORA_SQLITE_KEY (or ARAGORA_SQLITE_KEY_FILE) is set but "
            "ARAGORA_SQLITE_ENCRYPTION is not: set ARAGORA_SQLITE_ENCRYPTION=1 to encrypt, "
            "or =0 to say the database is plain"
        )
    return None


#: What ``ARAGORA_POSTGRES_POOLER`` may name.
POOLERS = ("none", "session", "transaction")


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """The background sync to a cloud PostgreSQL (``SUPABASE_SYNC_ENABLED=true``).

    Attributes:
        dsn: the target (``SUPABASE_POSTGRES_DSN``), reached directly or through a
            transaction pooler (nothing is prepared under a name).
        batch_size: changes per target transaction (``SUPABASE_SYNC_BATCH_SIZE``, 10).
        interval: seconds between polls of an empty outbox, and the longest wait before
            retrying an unreachable target (``SUPABASE_SYNC_INTERVAL_SECONDS``, 30).
        max_retries: tries of a change the target refuses for its content before it is
            parked in the dead letters (``SUPABASE_SYNC_MAX_RETRIES``, 3).
    """

    dsn: Secret
    batch_size: int = 10
    interval: float = 30.0
    max_retries: int = 3


def sync_settings(env: Mapping[str, str]) -> SyncSettings | None:
    """The sync's settings when ``SUPABASE_SYNC_ENABLED`` is on, else None."""
    setting = _get(env, "SUPABASE_SYNC_ENABLED").lower()
    if setting not in ("", *_ON, "0", "false", "no", "off"):
        raise ConfigError(f"invalid SUPABASE_SYNC_ENABLED: expected true or false, got {setting!r}")
    if setting not in _ON:
        return None
    dsn = _get(env, "SUPABASE_POSTGRES_DSN")
    if not dsn:
        raise ConfigError(
            "SUPABASE_SYNC_ENABLED is on but SUPABASE_POSTGRES_DSN is not set: expected the "
            "target PostgreSQL's DSN"
        )
    _check_dsn("SUPABASE_POSTGRES_DSN", dsn)
    if is_production(env):
        _require_verified_tls("SUPABASE_POSTGRES_DSN", dsn)
    settings = SyncSettings(
        Secret(dsn),
        batch_size=_number(env, "SUPABASE_SYNC_BATCH_SIZE", 10, int),
        interval=_number(env, "SUPABASE_SYNC_INTERVAL_SECONDS", 30.0, float),
        max_retries=_number(env, "SUPABASE_SYNC_MAX_RETRIES", 3, int),
    )
    if settings.batch_size < 1 or settings.interval <= 0 or settings.max_retries < 1:
        raise ConfigError(
            "invalid SUPABASE_SYNC_BATCH_SIZE/SUPABASE_SYNC_INTERVAL_SECONDS/"
            "SUPABASE_SYNC_MAX_RETRIES: expected a batch of at least 1, an interval above 0 "
            f"and at least 1 try, got {settings.batch_size}, {settings.interval}, "
            f"{settings.max_retries}"
        )
    return settings


@dataclass(frozen=True, slots=True)
class Config:
    """Resolved settings. Build with :meth:`from_env` or directly in tests.

    Attributes:
        backend: which database to open.
        dsn: the PostgreSQL primary.
        replicas: read replicas; read-only queries outside transactions go there.
        data_dir: the SQLite directory (``ARAGORA_DATA_DIR``).
        sqlite_path: an explicit SQLite file, overriding ``data_dir``.
        timeout: seconds a SQLite writer waits for the lock (``DB_TIMEOUT``), and the
            PostgreSQL connect timeout.
        pool_min: connections the PostgreSQL pool keeps open.
        pool_max: the most connections it opens.
        pool_timeout: seconds to wait for a free connection before PoolTimeout.
        slow_query_ms: log queries slower than this; None disables the log.
        production: the production profile (``ARAGORA_ENV=production``).
        migration_lock_timeout: seconds a migrator waits for another one holding the
            migration lock (``ARAGORA_MIGRATION_LOCK_TIMEOUT``) before giving up.
        backup_retention_days: backup sets older than this are pruned after a backup
            (``ARAGORA_BACKUP_RETENTION_DAYS``, default 7).
        pooler: what sits between this process and PostgreSQL (``ARAGORA_POSTGRES_POOLER``):
            ``none``, ``session`` or ``transaction`` (PgBouncer's transaction mode,
            Supabase's port 6543). In transaction mode no statement is prepared under a
            name, and what needs a session of its own (migrations, advisory locks outside
            a transaction, LISTEN, checkouts) goes to ``direct_dsn`` or is refused.
        direct_dsn: the server itself, past the pooler (``ARAGORA_POSTGRES_DIRECT_DSN``).
        sqlite_key: the SQLCipher passphrase; set, SQLite files are encrypted
            (``ARAGORA_SQLITE_ENCRYPTION=1`` with ``ARAGORA_SQLITE_KEY`` or
            ``ARAGORA_SQLITE_KEY_FILE``).
        audit_retention_days: ``aragora-repos maintenance`` removes audit entries older
            than this (``ARAGORA_AUDIT_RETENTION_DAYS``, default 90).
        usage_retention_days: and rolls up, then removes, usage events older than this
            (``ARAGORA_USAGE_RETENTION_DAYS``, default 90).
        encryption: the column keys (``ARAGORA_ENCRYPTION_KEY`` or
            ``ARAGORA_ENCRYPTION_KEY_FILE``, and ``ARAGORA_ENCRYPTION_PREVIOUS_KEYS``) that
            seal and open the columns marked ``-- aragora:encrypted``.
        sqlite_inline_budget_ms: how long a single-row SQLite read may run on the event
            loop's thread before it is interrupted and run on the writer's thread instead
            (``ARAGORA_SQLITE_INLINE_BUDGET_MS``, default 1; ``off``: no bound).
        sync: the background sync of the local SQLite database to a cloud PostgreSQL
            (``SUPABASE_SYNC_ENABLED``; see :class:`SyncSettings`), started by
            ``connect()``; None when off.
        collation: ``check`` (default): refuse a PostgreSQL database whose default
            collation does not order text by code point as SQLite does (``C``, ``POSIX``,
            ``C.UTF-8``); ``any`` accepts it, and text order then differs between the
            backends (``ARAGORA_POSTGRES_COLLATION``).
    """

    backend: Literal["sqlite", "postgres"] = "sqlite"
    dsn: Secret | None = None
    replicas: tuple[Secret, ...] = ()
    data_dir: Path = field(default_factory=lambda: Path(".nomic"))
    sqlite_path: Path | None = None
    timeout: float = 5.0
    pool_min: int = 1
    pool_max: int = 10
    pool_timeout: float = 30.0
    slow_query_ms: float | None = 1000.0
    production: bool = False
    migration_lock_timeout: float = 300.0
    backup_retention_days: float = 7.0
    pooler: Literal["none", "session", "transaction"] = "none"
    direct_dsn: Secret | None = None
    collation: Literal["check", "any"] = "check"
    sqlite_key: SqliteKey | None = None
    audit_retention_days: float = 90.0
    usage_retention_days: float = 90.0
    sqlite_inline_budget_ms: float | None = 1.0
    encryption: KeyRing = NO_KEYS
    sync: SyncSettings | None = None

    @property
    def sqlite_file(self) -> Path:
        return self.sqlite_path or self.data_dir / SQLITE_FILE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read and validate the environment (``os.environ`` when ``env`` is None).

        Raises:
            ConfigError: naming the first invalid variable and the form it expects. It is
                raised afresh from here, so its traceback holds no frame whose locals
                hold the environment's DSNs (error reporters capture frame locals).
        """
        try:
            return cls._parse(os.environ if env is None else env)
        except ConfigError as exc:
            message, sqlstate = str(exc), exc.sqlstate
        del env
        raise ConfigError(message, sqlstate=sqlstate)

    @classmethod
    def _parse(cls, env: Mapping[str, str]) -> Config:
        mode = _get(env, "ARAGORA_DB_BACKEND").lower() or "auto"
        if mode == "postgresql":  # the seeds' spelling
            mode = "postgres"
        if mode not in ("sqlite", "postgres", "auto"):
            raise ConfigError(
                f"invalid ARAGORA_DB_BACKEND: expected sqlite, postgres (postgresql) or auto, "
                f"got {mode!r}"
            )
        production = is_production(env)
        ssl_mode = _get(env, "ARAGORA_PG_SSL_MODE").lower() or None
        if ssl_mode is not None and ssl_mode not in SSL_MODES:
            raise ConfigError(
                f"invalid ARAGORA_PG_SSL_MODE: expected one of {', '.join(SSL_MODES)}, "
                f"got {ssl_mode!r}"
            )
        sync = sync_settings(env)
        if sync is not None:
            # SUPABASE_POSTGRES_DSN is the sync's target then, not the database to run on.
            env = {k: v for k, v in env.items() if k != "SUPABASE_POSTGRES_DSN"}
        primary = _primary(env, ssl_mode)
        backend: Literal["sqlite", "postgres"]
        if mode == "postgres" or (mode == "auto" and primary is not None):
            if primary is None:
                raise ConfigError(
                    "ARAGORA_DB_BACKEND=postgres needs a DSN in one of "
                    + ", ".join(DSN_VARIABLES)
                    + ", or ARAGORA_PG_HOST"
                )
            backend = "postgres"
        else:
            backend = "sqlite"
        if sync is not None and backend != "sqlite":
            raise ConfigError(
                "SUPABASE_SYNC_ENABLED copies the local SQLite database to "
                "SUPABASE_POSTGRES_DSN, but the backend is PostgreSQL (set "
                "ARAGORA_DB_BACKEND=sqlite, or turn the sync off)"
            )
        replicas: tuple[tuple[str, str], ...] = ()
        if backend == "postgres":
            assert primary is not None
            replicas = _replicas(env, primary[1])
            if production:
                for variable, dsn in (primary, *replicas):
                    _require_verified_tls(variable, dsn)
        data_var = next((v for v in DATA_DIR_VARIABLES if _get(env, v)), None)
        data_dir = Path(_get(env, data_var)) if data_var else Path(".nomic")
        sqlite_path = (
            Path(_get(env, "ARAGORA_SQLITE_PATH")) if _get(env, "ARAGORA_SQLITE_PATH") else None
        )
        sized = _number(env, "ARAGORA_DB_POOL_SIZE", 10, int) + _number(
            env, "ARAGORA_DB_POOL_MAX_OVERFLOW", 0, int
        )
        pool_max = _number(
            env, "ARAGORA_POSTGRES_POOL_MAX", _number(env, "ARAGORA_POOL_MAX_SIZE", sized, int), int
        )
        pool_min = _number(env, "ARAGORA_POSTGRES_POOL_MIN", min(1, pool_max), int)
        if pool_max < 1 or pool_min > pool_max:
            raise ConfigError(
                "invalid ARAGORA_POSTGRES_POOL_MIN/ARAGORA_POSTGRES_POOL_MAX: expected "
                f"0 <= min <= max and max >= 1, got min={pool_min}, max={pool_max}"
            )
        pooler = _get(env, "ARAGORA_POSTGRES_POOLER").lower() or "none"
        if pooler not in POOLERS:
            raise ConfigError(
                "invalid ARAGORA_POSTGRES_POOLER: expected none, session or transaction, "
                f"got {pooler!r}"
            )
        direct = _get(env, "ARAGORA_POSTGRES_DIRECT_DSN") or None
        if direct is not None:
            try:
                parse_dsn(direct)
            except DsnError as exc:
                raise ConfigError(f"invalid ARAGORA_POSTGRES_DIRECT_DSN: {exc}") from None
            if production:
                _require_verified_tls("ARAGORA_POSTGRES_DIRECT_DSN", direct)
        collation = _get(env, "ARAGORA_POSTGRES_COLLATION").lower() or "check"
        if collation not in ("check", "any"):
            raise ConfigError(
                f"invalid ARAGORA_POSTGRES_COLLATION: expected check or any, got {collation!r}"
            )
        slow_raw = _get(env, "ARAGORA_SLOW_QUERY_MS").lower()
        slow_query_ms = (
            None if slow_raw == "off" else _number(env, "ARAGORA_SLOW_QUERY_MS", 1000.0, float)
        )
        return cls(
            backend=backend,
            dsn=Secret(primary[1]) if backend == "postgres" and primary else None,
            replicas=tuple(Secret(dsn) for _, dsn in replicas),
            data_dir=data_dir,
            sqlite_path=sqlite_path,
            timeout=_number(env, "DB_TIMEOUT", 5.0, float),
            pool_min=pool_min,
            pool_max=pool_max,
            pool_timeout=_number(env, "ARAGORA_DB_POOL_TIMEOUT", 30.0, float),
            slow_query_ms=slow_query_ms,
            production=production,
            migration_lock_timeout=_number(env, "ARAGORA_MIGRATION_LOCK_TIMEOUT", 300.0, float),
            backup_retention_days=_number(env, "ARAGORA_BACKUP_RETENTION_DAYS", 7.0, float),
            pooler=cast(Literal["none", "session", "transaction"], pooler),
            direct_dsn=Secret(direct) if direct is not None else None,
            collation=cast(Literal["check", "any"], collation),
            sqlite_key=sqlite_key_setting(env),
            audit_retention_days=_number(env, "ARAGORA_AUDIT_RETENTION_DAYS", 90.0, float),
            usage_retention_days=_number(env, "ARAGORA_USAGE_RETENTION_DAYS", 90.0, float),
            sqlite_inline_budget_ms=(
                None
                if _get(env, "ARAGORA_SQLITE_INLINE_BUDGET_MS").lower() == "off"
                else _number(env, "ARAGORA_SQLITE_INLINE_BUDGET_MS", 1.0, float)
            ),
            encryption=KeyRing.from_env(env),
            sync=sync,
        )

    def __repr__(self) -> str:
        replicas = ", ".join(repr(r) for r in self.replicas)
        return (
            f"Config(backend={self.backend!r}, dsn={self.dsn!r}, replicas=({replicas}), "
            f"data_dir={str(self.data_dir)!r}, pool={self.pool_min}..{self.pool_max}"
            + (", sqlite encrypted" if self.sqlite_key is not None else "")
            + (f", columns {self.encryption!r}" if self.encryption else "")
            + (f", sync to {self.sync.dsn!r}" if self.sync is not None else "")
            + ")"
        )


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _check_dsn(variable: str, dsn: str) -> str:
    """The DSN as a percent-encoded URI; a DsnError names the variable, never the value."""
    try:
        parsed = parse_dsn(dsn)
    except DsnError as exc:
        raise DsnError(f"invalid {variable}: {exc}") from None
    mode = parsed.param("sslmode")
    if mode is not None and mode.lower() not in SSL_MODES:
        raise ConfigError(
            f"invalid {variable}: expected sslmode one of {', '.join(SSL_MODES)}, got {mode!r}"
        )
    return parsed.uri()


def sslmode(dsn: str) -> str | None:
    """The ``sslmode`` parameter of a DSN, if any."""
    mode = parse_dsn(dsn).param("sslmode")
    return mode.lower() if mode is not None else None


def _with_sslmode(dsn: str, mode: str | None) -> str:
    if mode is None or sslmode(dsn) is not None:
        return dsn
    return dsn + ("&" if "?" in dsn else "?") + f"sslmode={mode}"


def _primary(env: Mapping[str, str], ssl_mode: str | None) -> tuple[str, str] | None:
    """(variable, dsn) of the primary, or None."""
    variable = next((v for v in DSN_VARIABLES if _get(env, v)), None)
    if variable is not None:
        return variable, _with_sslmode(_check_dsn(variable, _get(env, variable)), ssl_mode)
    host = _get(env, "ARAGORA_PG_HOST")
    if not host:
        for part in ("PORT", "DATABASE", "USER", "PASSWORD"):
            if _get(env, f"ARAGORA_PG_{part}"):
                raise ConfigError(
                    f"ARAGORA_PG_{part} is set but ARAGORA_PG_HOST is not: expected a host name"
                )
        return None
    port = _number(env, "ARAGORA_PG_PORT", 5432, int)
    if not 0 < port < 65536:
        raise ConfigError(f"invalid ARAGORA_PG_PORT: expected 1..65535, got {port}")
    user = _get(env, "ARAGORA_PG_USER") or "postgres"
    password = env.get("ARAGORA_PG_PASSWORD", "")
    database = _get(env, "ARAGORA_PG_DATABASE") or "aragora"
    userinfo = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    netloc = f"{userinfo}@{_bracket(host)}:{port}"
    query = urlencode({"sslmode": ssl_mode}) if ssl_mode else ""
    return "ARAGORA_PG_HOST", urlunsplit(("postgresql", netloc, "/" + quote(database), query, ""))


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _replicas(env: Mapping[str, str], primary: str) -> tuple[tuple[str, str], ...]:
    raw = _get(env, "ARAGORA_POSTGRES_REPLICAS")
    out: list[tuple[str, str]] = []
    base = parse_dsn(primary)
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        if "://" in item:
            out.append(("ARAGORA_POSTGRES_REPLICAS", _check_dsn("ARAGORA_POSTGRES_REPLICAS", item)))
            continue
        try:
            probe = parse_dsn(f"postgresql://{item}")
        except DsnError:
            probe = None
        if probe is None or len(probe.hosts) != 1 or probe.user or probe.database or probe.params:
            shown = redact_dsn(f"postgresql://{item}").removeprefix("postgresql://")
            raise ConfigError(
                "invalid ARAGORA_POSTGRES_REPLICAS: expected comma-separated DSNs or "
                f"host[:port] entries, got {shown!r}"
            )
        replica = Dsn(
            base.scheme, base.user, base.password, probe.hosts, base.database, base.params
        )
        out.append(("ARAGORA_POSTGRES_REPLICAS", replica.uri()))
    return tuple(out)


def is_production(env: Mapping[str, str] | None = None) -> bool:
    """``ARAGORA_ENV=production`` (or ``prod``)."""
    return _get(os.environ if env is None else env, "ARAGORA_ENV").lower() in (
        "production",
        "prod",
    )


def check_connection_policy(dsn: Secret, *, production: bool | None = None) -> None:
    """The rule every PostgreSQL connection obeys, applied where connections are made
    (pool, single connections, pg_dump), so no DSN from a flag or an argument bypasses it:
    in production the server's certificate must be verified.

    Raises:
        ConfigError: in production, for a DSN whose sslmode is not verify-ca/verify-full.
    """
    if production is None:
        production = is_production()
    if production:
        _require_verified_tls("the DSN", dsn.reveal())


def _require_verified_tls(variable: str, dsn: str) -> None:
    """Production: verify-full and verify-ca pass quietly; require passes with a warning
    (managed services document it, so a deployment must be able to start with it);
    disable, allow, prefer and no sslmode are refused."""
    mode = sslmode(dsn)
    if mode == "require":
        _log.warning(
            "%s uses sslmode=require under ARAGORA_ENV=production: the connection is "
            "encrypted, but the server's certificate is not checked, so whoever sits "
            "between this process and the server can pose as it and read everything; "
            "set sslmode=verify-full with sslrootcert=<the server's CA>",
            variable,
        )
        return
    if mode not in VERIFIED_SSL_MODES:
        raise ConfigError(
            f"invalid {variable} for ARAGORA_ENV=production: expected sslmode=verify-full "
            f"or verify-ca (the server's certificate checked; require is accepted with a "
            f"warning), got "
            f"{mode or 'no sslmode (asyncpg tries TLS, then falls back to plain text)'}"
        )


_N = TypeVar("_N", int, float)


def _number(env: Mapping[str, str], name: str, default: _N, kind: type[_N]) -> _N:
    raw = _get(env, name)
    if not raw:
        return default
    expected = "an integer" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"invalid {name}: expected {expected} >= 0, got {raw!r}") from None
    if value < 0 or value != value:
        raise ConfigError(f"invalid {name}: expected {expected} >= 0, got {raw!r}")
    return value
