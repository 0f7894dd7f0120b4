"""Configuration from the environment, validated once; errors name the variable.

Backend resolution (``ARAGORA_DB_BACKEND``: sqlite | postgres | auto, default auto):
auto picks PostgreSQL when a DSN is set in ``DATABASE_URL``, ``ARAGORA_DATABASE_URL`` or
``ARAGORA_POSTGRES_DSN`` (first set wins), else SQLite at ``$ARAGORA_DATA_DIR/aragora.db``
(default ``.nomic/``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aragora_repos.errors import ConfigError

DSN_VARIABLES = ("DATABASE_URL", "ARAGORA_DATABASE_URL", "ARAGORA_POSTGRES_DSN")
DATA_DIR_VARIABLES = ("ARAGORA_DATA_DIR", "ARAGORA_NOMIC_DIR", "NOMIC_DIR")
SQLITE_FILE = "aragora.db"
_SECRET_KEYS = frozenset({"password", "pass", "pwd", "sslpassword"})


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (userinfo and query parameters)."""
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{host}"
        query = urlencode(
            [
                (k, "***" if k.lower() in _SECRET_KEYS else v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ]
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<unparseable dsn>"


class Secret:
    """A DSN whose ``str`` and ``repr`` never show the password."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({redact_dsn(self._value)!r})"

    def __str__(self) -> str:
        return redact_dsn(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Config:
    """Resolved settings. Build with :meth:`from_env` or directly in tests."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    dsn: Secret | None = None
    data_dir: Path = field(default_factory=lambda: Path(".nomic"))
    sqlite_path: Path | None = None
    timeout: float = 5.0
    """Seconds a SQLite writer waits for the lock (``DB_TIMEOUT``)."""
    pool_min: int = 1
    pool_max: int = 10

    @property
    def sqlite_file(self) -> Path:
        return self.sqlite_path or self.data_dir / SQLITE_FILE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read and validate the environment (``os.environ`` when ``env`` is None)."""
        env = os.environ if env is None else env
        mode = env.get("ARAGORA_DB_BACKEND", "auto").strip().lower() or "auto"
        if mode not in ("sqlite", "postgres", "auto"):
            raise ConfigError(
                f"invalid ARAGORA_DB_BACKEND: expected sqlite, postgres or auto, got {mode!r}"
            )
        dsn_var = next((v for v in DSN_VARIABLES if env.get(v, "").strip()), None)
        dsn = env[dsn_var].strip() if dsn_var else None
        if dsn is not None:
            scheme = urlsplit(dsn).scheme if "://" in dsn else ""
            if scheme not in ("postgres", "postgresql"):
                raise ConfigError(
                    f"invalid {dsn_var}: expected postgresql://user@host:port/db, "
                    f"got {redact_dsn(dsn)!r}"
                )
        backend: Literal["sqlite", "postgres"]
        if mode == "postgres" or (mode == "auto" and dsn is not None):
            if dsn is None:
                raise ConfigError(
                    "ARAGORA_DB_BACKEND=postgres needs a DSN in one of " + ", ".join(DSN_VARIABLES)
                )
            backend = "postgres"
        else:
            backend = "sqlite"
        data_var = next((v for v in DATA_DIR_VARIABLES if env.get(v, "").strip()), None)
        data_dir = Path(env[data_var]) if data_var else Path(".nomic")
        sqlite_path = Path(env["ARAGORA_SQLITE_PATH"]) if env.get("ARAGORA_SQLITE_PATH") else None
        return cls(
            backend=backend,
            dsn=Secret(dsn) if dsn is not None else None,
            data_dir=data_dir,
            sqlite_path=sqlite_path,
            timeout=_number(env, "DB_TIMEOUT", 5.0, float),
            pool_min=_number(env, "ARAGORA_POSTGRES_POOL_MIN", 1, int),
            pool_max=_number(env, "ARAGORA_POSTGRES_POOL_MAX", 10, int),
        )


_N = TypeVar("_N", int, float)


def _number(env: Mapping[str, str], name: str, default: _N, kind: type[_N]) -> _N:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"invalid {name}: expected a {kind.__name__} >= 0, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"invalid {name}: expected a {kind.__name__} >= 0, got {raw!r}")
    return value
