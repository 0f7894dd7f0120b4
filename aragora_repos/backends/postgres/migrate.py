"""Migrations on PostgreSQL: one step per transaction under an advisory lock."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from aragora_repos import errors
from aragora_repos.backup import pg_dump_backup
from aragora_repos.config import Secret
from aragora_repos.keyring import NO_KEYS, KeyRing
from aragora_repos.migrations import (
    ADVISORY_LOCK_KEY,
    CRYPT_PAGE,
    SCHEMA_VERSION_POSTGRES,
    Applied,
    Crypt,
    Migration,
    Step,
    applied_row,
)

if TYPE_CHECKING:
    from aragora_repos.backends.base import Planner
    from aragora_repos.backends.postgres.driver import BoundConnection

_log = logging.getLogger("aragora_repos.migrations")


def privilege_hint(exc: BaseException, role: str | None) -> str:
    """What to grant, when a migration fails for a missing privilege (42501)."""
    if getattr(exc, "sqlstate", None) != "42501":
        return ""
    who = f'"{role}"' if role else "<the application role>"
    return (
        "; the role lacks a privilege: since PostgreSQL 15 no role may create tables in "
        "schema public by default, and GRANT ALL PRIVILEGES ON DATABASE does not change "
        f"that. As the database owner, run: GRANT USAGE, CREATE ON SCHEMA public TO {who}; "
        "(see the README's 'Roles and privileges')"
    )


async def applied_versions(conn: BoundConnection) -> dict[int, Applied]:
    """The ``schema_version`` rows; empty when the table does not exist yet."""
    if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
        return {}
    rows = await conn.fetch(
        "SELECT version, name, checksum, applied_at, execution_ms, success "
        "FROM schema_version ORDER BY version"
    )
    return {a.version: a for a in (applied_row(tuple(r)) for r in rows)}


async def run_step(
    conn: BoundConnection,
    step: Step,
    lock_timeout: float,
    on_statement: Callable[[str], None] | None,
    role: str | None = None,
    keys: KeyRing = NO_KEYS,
) -> None:
    """Run one step. A lock timeout makes a blocked ALTER fail fast instead of queueing
    every other query behind its ACCESS EXCLUSIVE request (explicit-locking.html). A
    missing privilege (creating ``schema_version`` too) says what ``role`` needs."""
    try:
        await _run_step(conn, step, lock_timeout, on_statement, role, keys)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise errors.MigrationError(
            f"cannot apply {step.direction} {step.migration.label} on postgresql: {exc} "
            f"({exc.sqlstate}){privilege_hint(exc, role)}",
            sqlstate=exc.sqlstate,
        ) from exc


async def _run_step(
    conn: BoundConnection,
    step: Step,
    lock_timeout: float,
    on_statement: Callable[[str], None] | None,
    role: str | None,
    keys: KeyRing,
) -> None:
    m = step.migration
    timeout = f"SET {{}} lock_timeout = '{int(lock_timeout * 1000)}ms'"
    started = time.perf_counter()

    async def run_statements() -> None:
        for statement in step.statements:
            if on_statement is not None:
                on_statement(statement.describe() if isinstance(statement, Crypt) else statement)
            try:
                if isinstance(statement, Crypt):
                    await _convert_column(conn, statement, keys)
                else:
                    await conn.execute(statement)
            except asyncpg.PostgresError as exc:
                raise errors.MigrationError(
                    f"cannot apply {step.direction} {m.label} on postgresql: {exc} "
                    f"({exc.sqlstate}){privilege_hint(exc, role)}",
                    sqlstate=exc.sqlstate,
                ) from exc
            except errors.ColumnEncryptionError as exc:
                raise errors.MigrationError(
                    f"cannot apply {step.direction} {m.label} on postgresql: {exc}"
                ) from exc

    if step.transactional:
        async with conn.transaction():
            # Created with the first step, so a failed first migration leaves no trace.
            await conn.execute(SCHEMA_VERSION_POSTGRES)
            await conn.execute(timeout.format("LOCAL"))
            await run_statements()
            if step.direction == "up":
                await conn.execute(
                    "INSERT INTO schema_version (version, name, checksum, execution_ms) "
                    "VALUES ($1, $2, $3, $4)",
                    m.version,
                    m.name,
                    m.checksum,
                    (time.perf_counter() - started) * 1000,
                )
            else:
                await conn.execute("DELETE FROM schema_version WHERE version = $1", m.version)
        return
    # Not transactional (CREATE INDEX CONCURRENTLY): mark the version dirty first, so an
    # interruption is detected by every later run until `migrate repair`.
    await conn.execute(SCHEMA_VERSION_POSTGRES)
    if step.direction == "up":
        await conn.execute(
            "INSERT INTO schema_version (version, name, checksum, success) "
            "VALUES ($1, $2, $3, FALSE)",
            m.version,
            m.name,
            m.checksum,
        )
    else:
        await conn.execute(
            "UPDATE schema_version SET success = FALSE WHERE version = $1", m.version
        )
    await conn.execute(timeout.format("SESSION"))
    try:
        await run_statements()
    finally:
        await conn.execute("RESET lock_timeout")
    if step.direction == "up":
        await conn.execute(
            "UPDATE schema_version SET success = TRUE, execution_ms = $2 WHERE version = $1",
            m.version,
            (time.perf_counter() - started) * 1000,
        )
    else:
        await conn.execute("DELETE FROM schema_version WHERE version = $1", m.version)


#: Ordinary tables pg_dump writes data for (not system or extension-owned ones).
COUNT_TABLES = """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                AND d.objid = c.oid AND d.deptype = 'e')"""


async def take_migration_lock(conn: BoundConnection, timeout: float) -> None:
    """Poll ``pg_try_advisory_lock``; every few seconds say who holds it, and give up
    after ``timeout`` seconds with an error naming the holder."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    next_report = started + _LOCK_REPORT_EVERY
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY):
        now = loop.time()
        if now - started >= timeout or now >= next_report:
            holder = await conn.fetchrow(_LOCK_HOLDER, ADVISORY_LOCK_KEY)
            who = (
                "an unknown session"
                if holder is None
                else f"pid {holder[0]} ({holder[1] or 'no application name'}, "
                f"state {holder[2]}, since {holder[3]:%Y-%m-%d %H:%M:%S %Z})"
            )
            if now - started >= timeout:
                raise errors.MigrationError(
                    f"cannot migrate: another migrator holds the migration lock: {who}; "
                    f"gave up after {timeout:g} s (ARAGORA_MIGRATION_LOCK_TIMEOUT)"
                )
            _log.warning("waiting for the migration lock, held by %s", who)
            next_report = now + _LOCK_REPORT_EVERY
        await asyncio.sleep(0.1)


_LOCK_REPORT_EVERY = 5.0
#: The session holding our advisory lock (a bigint key shows as classid/objid halves).
_LOCK_HOLDER = """SELECT a.pid, a.application_name, a.state, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.classid::bigint = ($1::bigint >> 32) AND l.objid::bigint = ($1::bigint & 4294967295)
LIMIT 1"""


async def run_plan(
    conn: BoundConnection,
    planner: Planner,
    *,
    dsn: Secret,
    lock_timeout: float,
    migration_lock_timeout: float,
    on_statement: Callable[[str], None] | None,
    backup_to: Path | None,
    on_backup: Callable[[Path | None], None] | None,
    keys: KeyRing = NO_KEYS,
) -> list[int]:
    """Instances starting together serialise on an advisory lock taken by polling
    ``pg_try_advisory_lock``: a waiter blocked in ``pg_advisory_lock`` can be killed
    by the deadlock detector during ``CREATE INDEX CONCURRENTLY``. The holder plans
    under the lock, and backs up (when asked) only when it has steps to run."""
    done: list[int] = []
    await take_migration_lock(conn, migration_lock_timeout)
    try:
        steps = planner(await applied_versions(conn))
        if steps and backup_to is not None:
            tables = await conn.fetchval(COUNT_TABLES)
            where = await asyncio.to_thread(pg_dump_backup, dsn, backup_to, tables=int(tables))
            if on_backup is not None:
                on_backup(where)
        for step in steps:
            await run_step(conn, step, lock_timeout, on_statement, dsn.parsed.user, keys)
            done.append(step.migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    return done


async def stamp(
    conn: BoundConnection, migrations: Sequence[Migration], lock_timeout: float
) -> list[int]:
    """Under the migration lock, in one transaction: the ``schema_version`` rows of every
    migration, nothing run; refused when any row exists."""
    await take_migration_lock(conn, lock_timeout)
    try:
        async with conn.transaction():
            await conn.execute(SCHEMA_VERSION_POSTGRES)
            if await conn.fetchval("SELECT count(*) FROM schema_version"):
                raise errors.MigrationError("cannot stamp: the database already records migrations")
            await conn.executemany(
                "INSERT INTO schema_version (version, name, checksum, execution_ms) "
                "VALUES ($1, $2, $3, 0)",
                [(m.version, m.name, m.checksum) for m in migrations],
            )
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    return [m.version for m in migrations]


async def _convert_column(conn: BoundConnection, crypt: Crypt, keys: KeyRing) -> None:
    """Seal or open every stored value of the column, a page at a time."""
    update = crypt.update_sql("postgres")
    after: tuple[Any, ...] = ()
    while True:
        rows = await conn.fetch(crypt.page_sql("postgres", bool(after)), CRYPT_PAGE, *after)
        if rows:
            await conn.executemany(update, crypt.convert(keys, rows))
        if len(rows) < CRYPT_PAGE:
            return
        after = crypt.last_key(rows)
