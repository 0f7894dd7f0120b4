"""The minimal migration runner on both backends: once, in order, atomic, checksummed."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from aragora_repos import AsyncBackend, Config, Migration, MigrationError, Secret, open_async
from aragora_repos.migrations import Section
from tests.conftest import BACKENDS
from tests.pg_server import run_async

FIRST = Migration(
    1,
    "things",
    "c1",
    Section(
        ("CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",),
        ("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL) STRICT",),
    ),
    Section(("DROP TABLE things",), ("DROP TABLE things",)),
)
# Fails on its last statement, after creating a table and an index.
FAILING = "INSERT INTO missing VALUES (1)"
BROKEN = Migration(
    2,
    "broken",
    "c2",
    Section(
        ("CREATE TABLE extra (id BIGINT)", "CREATE INDEX extra_id ON extra (id)", FAILING),
        ("CREATE TABLE extra (id INTEGER) STRICT", "CREATE INDEX extra_id ON extra (id)", FAILING),
    ),
)


async def _drop(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS things, extra, schema_version")
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncBackend]:
    if request.param == "sqlite":
        db = await open_async(Config(data_dir=tmp_path))
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")
        run_async(_drop(dsn))
        db = await open_async(Config(backend="postgres", dsn=Secret(dsn)))
    try:
        yield db
    finally:
        await db.close()
        if request.param == "postgres":
            run_async(_drop(dsn))


async def test_applies_once_in_order(backend: AsyncBackend) -> None:
    assert await backend.schema_version() is None
    assert await backend.migrate([FIRST]) == [1]
    assert await backend.migrate([FIRST]) == []
    assert await backend.schema_version() == 1


async def test_failed_migration_leaves_the_previous_version(backend: AsyncBackend) -> None:
    await backend.migrate([FIRST])
    with pytest.raises(MigrationError, match=r"cannot apply up 0002_broken on (sqlite|postgresql)"):
        await backend.migrate([FIRST, BROKEN])
    assert await backend.schema_version() == 1
    fixed = dataclasses.replace(
        BROKEN,
        checksum="c2b",
        up=Section(BROKEN.up.postgres[:-1], BROKEN.up.sqlite[:-1]),
    )
    # Re-running works only because the failed attempt left no table or index behind.
    assert await backend.migrate([FIRST, fixed]) == [2]


async def test_changed_migration_is_refused(backend: AsyncBackend) -> None:
    await backend.migrate([FIRST])
    tampered = dataclasses.replace(FIRST, checksum="other")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await backend.migrate([tampered])


async def test_unknown_applied_version_is_refused(backend: AsyncBackend) -> None:
    await backend.migrate([FIRST])
    with pytest.raises(MigrationError, match="does not know"):
        await backend.migrate([])


@pytest.mark.postgres
def test_a_role_without_schema_privileges_is_told_what_to_grant(postgres_dsn: str) -> None:
    """PostgreSQL 15: GRANT ALL PRIVILEGES ON DATABASE (the seeds' setup) does not let a
    role create tables in schema public; migrate says which GRANT it needs."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    from aragora_db import connect
    from tests.pg_server import fresh_database, with_database

    role = f"aragora_t_{uuid.uuid4().hex[:10]}"

    async def admin(dsn: str, sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def migrate(dsn: str) -> None:
        db = await connect(Config(backend="postgres", dsn=Secret(dsn), pool_max=1))
        try:
            await db.migrate()
        finally:
            await db.close()

    run_async(admin(postgres_dsn, f"CREATE ROLE {role} LOGIN"))
    try:
        with fresh_database(postgres_dsn) as dsn:
            name = dsn.rsplit("/", 1)[1]
            run_async(admin(dsn, f'GRANT ALL PRIVILEGES ON DATABASE "{name}" TO {role}'))
            parts = urlsplit(with_database(postgres_dsn, name))
            host = parts.netloc.rsplit("@", 1)[-1]
            as_role = urlunsplit(parts._replace(netloc=f"{role}@{host}"))
            with pytest.raises(MigrationError) as caught:
                run_async(migrate(as_role))
            message = str(caught.value)
            assert f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"' in message, message
            assert caught.value.sqlstate == "42501"
            run_async(admin(dsn, f"GRANT USAGE, CREATE ON SCHEMA public TO {role}"))
            run_async(migrate(as_role))  # what the message said is enough
            run_async(admin(dsn, f"DROP OWNED BY {role}"))
    finally:
        run_async(admin(postgres_dsn, f"DROP ROLE IF EXISTS {role}"))
