"""Prove every PostgreSQL statement prepares, and returns what its code is typed for, on a
real server, before any code is written.

sqlc checks queries against the schema as it models PostgreSQL, which is not always as
PostgreSQL does: a statement it accepts can fail to prepare (a subquery in FROM without
an alias), and a result it types can come back as another type (``ts + interval`` typed
as an integer), which the generated code would then decode wrongly. When a server is
named (``ARAGORA_CODEGEN_POSTGRES_DSN``; ``make check`` passes the test server's), a
scratch database is built from the migrations, every statement is prepared there (which
plans without running), and each parameter and result column is compared with the type
the generated code uses. Problems name ``file:line:col``; the scratch database is dropped.
Without a DSN the stage does not run (the generated output never depends on it).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

from ..errors import Problem, Problems
from ..model.build import place
from ..model.ir import Migration, PgType, Query, QueryFile

DSN_VARIABLE = "ARAGORA_CODEGEN_POSTGRES_DSN"

#: PostgreSQL type names the generated code treats as the same Python type.
_SAME = {"varchar": "text", "bpchar": "text", "name": "text", "serial": "int4"}

_BYTEA = PgType("bytea")


def verify_postgres(
    migrations: Sequence[Migration], files: Sequence[QueryFile], problems: Problems
) -> None:
    dsn = os.environ.get(DSN_VARIABLE, "").strip()
    if not dsn:
        return
    global asyncpg
    import asyncpg  # only when a server is named: the import costs every run 20 ms

    asyncio.run(_verify(dsn, migrations, files, problems))


def _with_database(dsn: str, name: str) -> str:
    base, _, query = dsn.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}" + (f"?{query}" if query else "")


async def _verify(
    dsn: str, migrations: Sequence[Migration], files: Sequence[QueryFile], problems: Problems
) -> None:
    try:
        admin = await asyncpg.connect(dsn, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        problems.append(
            Problem(
                DSN_VARIABLE,
                1,
                1,
                f"cannot reach PostgreSQL to check the statements ({type(exc).__name__}); "
                f"unset {DSN_VARIABLE} to skip the check",
            )
        )
        return
    name = f"codegen_check_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        try:
            conn = await asyncpg.connect(_with_database(dsn, name), timeout=10)
            try:
                if await _migrate(conn, migrations, problems):
                    for file in files:
                        for query in file.queries:
                            await _check(conn, query, problems)
            finally:
                await conn.close()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _migrate(
    conn: asyncpg.Connection[asyncpg.Record], migrations: Sequence[Migration], problems: Problems
) -> bool:
    for migration in migrations:
        try:
            if migration.up.transactional:
                async with conn.transaction():
                    for statement in migration.up.postgres:
                        await conn.execute(statement)
            else:
                for statement in migration.up.postgres:
                    await conn.execute(statement)
        except asyncpg.PostgresError as exc:
            problems.append(
                Problem(migration.path, 1, 1, f"PostgreSQL rejected the up section: {exc}")
            )
            return False
    return True


def _where(query: Query, position: int | None) -> tuple[int, int]:
    """The file line and column of a character of the statement (1-based ``position``,
    as PostgreSQL reports it), or the ``-- name:`` line."""
    line, column = query.location.line, query.location.col
    if not position or not query.source_block:
        return line, column
    block = query.source_block.split("\n")
    first = next((i for i, text in enumerate(block) if not text.lstrip().startswith("--")), 0)
    before = query.postgres_sql[: position - 1]
    offset = before.count("\n")
    column = len(before) - (before.rfind("\n") + 1) + 1
    return line + first + offset, column


def _name(t: PgType) -> str:
    return _SAME.get(t.name, t.name)


async def _check(
    conn: asyncpg.Connection[asyncpg.Record], query: Query, problems: Problems
) -> None:
    try:
        statement = await conn.prepare(query.postgres_sql)
    except asyncpg.PostgresError as exc:
        position = getattr(exc, "position", None)
        line, column = _where(query, int(position) if position else None)
        problems.append(
            Problem(
                query.location.file,
                line,
                column,
                f"query {query.name}: PostgreSQL rejected it: {exc}",
            )
        )
        return
    # An encrypted column is stored as bytea: what is sealed into it or opened from it
    # goes over the wire as bytes whatever type the generated code gives it.
    sealed = {s.param for s in query.sealed}
    opened = {o.index for o in query.opened}
    for param, actual in zip(query.params, statement.get_parameters(), strict=False):
        typed = _BYTEA if param.number in sealed else param.type
        _compare(query, f"parameter ${param.number} ({param.name})", typed, actual, problems)
    for index, (result, attribute) in enumerate(
        zip(query.columns, statement.get_attributes(), strict=False)
    ):
        _compare(
            query,
            f"result column {result.name}",
            _BYTEA if index in opened else result.type,
            attribute.type,
            problems,
            near=result.name,
        )


def _compare(
    query: Query,
    what: str,
    typed: PgType,
    actual: asyncpg.types.Type,
    problems: Problems,
    *,
    near: str | None = None,
) -> None:
    dims = 0
    actual_name = actual.name
    if actual.kind == "array":
        dims, actual_name = 1, actual_name.removesuffix("[]").removeprefix("_")
    if actual.kind == "domain" or actual_name in ("unknown", "void", "record", "anyelement"):
        return
    if (_name(typed), typed.array_dims) == (_SAME.get(actual_name, actual_name), dims):
        return
    shown = typed.name + "[]" * typed.array_dims
    returned = actual_name + "[]" * dims
    line, column = query.location.line, query.location.col
    if near and query.source_block:
        line, column = place(query.source_block, query.location, near)
    problems.append(
        Problem(
            query.location.file,
            line,
            column,
            f"query {query.name}: {what} is typed {shown} but PostgreSQL has {returned}; "
            f"cast it (::{returned}) so both backends decode the same value",
        )
    )
