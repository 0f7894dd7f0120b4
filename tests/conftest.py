"""Shared fixtures: a real SQLite file per test and a real PostgreSQL database per session."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from aragora_db import Database, connect
from aragora_repos import Config, Secret
from aragora_repos.config import SqliteKey
from aragora_repos.keyring import KeyRing
from tests.pg_server import find_server, fresh_database

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A fresh, empty database for this session; fails under CI=true when none is found."""
    with find_server() as server:
        if server is None:
            message = (
                "no PostgreSQL server: set ARAGORA_TEST_POSTGRES_DSN, run the local "
                "service, or install the server binaries"
            )
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"CI=true requires PostgreSQL: {message}")
            pytest.skip(message)
        with fresh_database(server.admin_dsn) as dsn:
            yield dsn


async def _truncate_all(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'schema_version'"
            )
        ]
        if tables:
            # Replica mode: append-only tables' triggers (which refuse TRUNCATE) stay quiet.
            await conn.execute(
                "SET session_replication_role = replica; "
                f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE; "
                "SET session_replication_role = DEFAULT"
            )
    finally:
        await conn.close()


async def _reset_if_unversioned(dsn: str) -> None:
    """Start from an empty schema when a test dropped the version table but left the
    schema's objects behind (tests of the migration runner share this database)."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


#: ``ARAGORA_TEST_POOLER=transaction`` (or ``session``): the PostgreSQL side of the
#: repository tests (the ``db`` fixture, the differential suite) goes through a PgBouncer
#: in that mode that the session starts; in transaction mode the session database is the
#: direct DSN.
POOLER = os.environ.get("ARAGORA_TEST_POOLER", "none")


@pytest.fixture(scope="session")
def pooled_dsn(postgres_dsn: str) -> Iterator[str]:
    """``postgres_dsn`` as the repositories reach it: through the pooler under test, if any."""
    if POOLER == "none":
        yield postgres_dsn
        return
    from tests.pgbouncer import pgbouncer

    with pgbouncer(postgres_dsn, POOLER) as dsn:
        yield dsn


def postgres_config(pooled: str, direct: str, **settings: Any) -> Config:
    """The Config the repository tests use for PostgreSQL (through the pooler, if any)."""
    settings.setdefault("encryption", COLUMN_KEYS)
    return Config(
        backend="postgres",
        dsn=Secret(pooled),
        pooler=POOLER,  # type: ignore[arg-type]
        direct_dsn=Secret(direct) if POOLER == "transaction" else None,
        **settings,
    )


#: The column key of the repository tests (encrypted columns: webhooks.secret, ...).
COLUMN_KEYS = KeyRing(hashlib.sha256(b"aragora-repos test column key").digest())


#: ``ARAGORA_TEST_SQLITE_KEY=...``: the repository tests' SQLite databases are encrypted
#: with it (SQLCipher); ``make test`` runs them once so.
SQLITE_KEY = (
    SqliteKey(os.environ["ARAGORA_TEST_SQLITE_KEY"])
    if os.environ.get("ARAGORA_TEST_SQLITE_KEY")
    else None
)


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """The generated facade over a migrated, empty database of each backend."""
    if request.param == "sqlite":
        database = await connect(
            Config(data_dir=tmp_path, sqlite_key=SQLITE_KEY, encryption=COLUMN_KEYS)
        )
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")
        await _reset_if_unversioned(dsn)
        pooled: str = request.getfixturevalue("pooled_dsn")
        database = await connect(postgres_config(pooled, dsn, pool_max=4))
    await database.migrate()
    if request.param == "postgres":
        await _truncate_all(dsn)
    try:
        yield database
    finally:
        await database.close()
