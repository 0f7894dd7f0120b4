"""Capabilities, pool and health reports, and the slow-query log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum

from aragora_repos.transaction import TransactionStats

slow_query_log = logging.getLogger("aragora_repos.slow_query")


class BackendType(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


@dataclass(frozen=True, slots=True)
class BackendCapabilities:
    """What the open backend can do, for feature checks at run time."""

    backend: BackendType
    concurrent_writes: bool
    advisory_locks: bool
    listen_notify: bool
    jsonb: bool
    full_text_search: bool
    read_replicas: bool
    savepoints: bool
    returning: bool
    async_pool: bool


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """One read replica as the pool sees it (``name`` is the redacted DSN)."""

    name: str
    healthy: bool
    reads: int
    lag_bytes: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Connections and calls of the primary pool since it opened.

    ``waits`` counts acquisitions that found no free connection and had to wait;
    ``timeouts`` those that gave up after the pool timeout.
    """

    total: int
    active: int
    idle: int
    max_size: int
    waits: int
    timeouts: int
    queries: int
    reads: int
    writes: int
    replica_reads: int


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """``get_health_status()``: the pool's own view, without a round trip."""

    healthy: bool
    backend: BackendType
    pool: PoolStats
    transactions: TransactionStats
    replicas: tuple[ReplicaStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class DatabaseHealth:
    """``get_database_health()``: what a probe of the database found."""

    backend: BackendType
    reachable: bool
    latency_ms: float | None
    schema_version: int | None
    table_count: int | None
    pool: PoolStats
    replicas: tuple[ReplicaStatus, ...] = ()
    error: str | None = None
    transactions: TransactionStats = field(default_factory=TransactionStats)


_NAMES: dict[str, str] = {}


def query_name(sql: str) -> str:
    """The ``-- name:`` of a generated statement, else its first 60 characters.

    Never includes parameter values: the statement text has placeholders only.
    """
    name = _NAMES.get(sql)
    if name is None:
        if sql.startswith("-- name: "):
            name = sql[9:].split(None, 1)[0]
        else:
            name = " ".join(sql.split())[:60]
        if len(_NAMES) < 4096:
            _NAMES[sql] = name
    return name


def log_slow(sql: str, elapsed_ms: float, backend: str) -> None:
    slow_query_log.warning(
        "slow query %s on %s: %.1f ms",
        query_name(sql),
        backend,
        elapsed_ms,
        extra={"query_name": query_name(sql), "duration_ms": elapsed_ms, "backend": backend},
    )
