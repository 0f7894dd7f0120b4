"""The runtime paths the backend contract runs, as ratios against the raw driver.

``python -m bench.contract [--rounds 21] [--inner 400]``: for each scenario, every round
times the raw driver and the generated repository back to back (their order alternating
by round), ``inner`` calls each after a warm-up, and takes their ratio; the report gives
the median ratio and its interquartile range over the rounds. It uses only the public
API (``connect``, ``connect_sync``, repositories, ``transaction``), so the same script
measures any tree that has it: ``PYTHONPATH=<tree>:<tree>/generated python -m
bench.contract`` compares two versions on one machine.

Scenarios: a typed single-row read (SQLite inline and through the sync API, PostgreSQL),
and a one-row write in a transaction (SQLite sync and async, PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from aragora_db import connect, connect_sync
from aragora_db.models import UserRole
from aragora_repos import AsyncSqliteDatabase, Config, Secret

Call = Callable[[], object]
GET_USER = (
    "SELECT id, email, password_hash, password_salt, name, org_id, role, created_at, "
    "updated_at, last_login_at, is_active, email_verified, avatar_url, preferences, "
    "locked_until, failed_login_count, lockout_reason, last_activity_at, last_debate_at "
    "FROM users WHERE id = {p}"
)
TOUCH = "UPDATE users SET failed_login_count = failed_login_count + 1 WHERE id = {p}"


async def _time(call: Call, n: int) -> float:
    first = call()
    asynchronous = inspect.isawaitable(first)
    if asynchronous:
        await first  # type: ignore[misc]
    gc.collect()
    start = time.perf_counter()
    if asynchronous:
        for _ in range(n):
            await call()  # type: ignore[misc]
    else:
        for _ in range(n):
            call()
    return (time.perf_counter() - start) / n


async def ratio_rounds(raw: Call, repo: Call, rounds: int, inner: int) -> dict[str, float]:
    ratios, raw_us = [], []
    for r in range(rounds):
        pair = [(raw, "raw"), (repo, "repo")]
        if r % 2:
            pair.reverse()
        got = {name: await _time(call, inner) for call, name in pair}
        ratios.append(got["repo"] / got["raw"])
        raw_us.append(got["raw"] * 1e6)
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return {
        "ratio": round(median, 3),
        "iqr_low": round(q1, 3),
        "iqr_high": round(q3, 3),
        "raw_us": round(statistics.median(raw_us), 1),
    }


def _user_args(i: int) -> dict[str, object]:
    return {
        "id": f"u{i}",
        "email": f"u{i}@example.com",
        "password_hash": "h",
        "password_salt": "s",
        "name": f"User {i}",
        "org_id": None,
        "role": UserRole.MEMBER,
    }


async def sqlite_scenarios(directory: Path, rounds: int, inner: int) -> dict[str, dict[str, float]]:
    config = Config(data_dir=directory)
    db = await connect(config)
    await db.migrate()
    await db.users.create_user(**_user_args(1))  # type: ignore[arg-type]
    sync = connect_sync(config)
    raw = sqlite3.connect(config.sqlite_file, isolation_level=None)
    raw.execute("PRAGMA foreign_keys = ON")
    raw.execute("PRAGMA synchronous = NORMAL")  # as the runtime sets it, in WAL mode
    get_sql, touch_sql = GET_USER.format(p="?"), TOUCH.format(p="?")

    def raw_get() -> object:
        return raw.execute(get_sql, ("u1",)).fetchone()

    def raw_touch() -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute(touch_sql, ("u1",))
        raw.execute("COMMIT")

    def sync_touch() -> None:
        with sync.transaction():
            sync.connection.execute(touch_sql, ("u1",))

    backend = db.backend
    assert isinstance(backend, AsyncSqliteDatabase)

    async def async_touch() -> None:
        async with db.transaction():
            await backend.run(backend.connection.execute, touch_sql, ("u1",))

    out = {
        "sqlite typed single-row read (async, inline)": await ratio_rounds(
            raw_get, lambda: db.users.get_user_by_id(id="u1"), rounds, inner
        ),
        "sqlite typed single-row read (sync)": await ratio_rounds(
            raw_get, lambda: sync.users.get_user_by_id(id="u1"), rounds, inner
        ),
        "sqlite one-row write in a transaction (sync)": await ratio_rounds(
            raw_touch, sync_touch, rounds, inner
        ),
        "sqlite one-row write in a transaction (async)": await ratio_rounds(
            raw_touch, async_touch, rounds, inner
        ),
    }
    raw.close()
    sync.close()
    await db.close()
    return out


async def postgres_scenarios(dsn: str, rounds: int, inner: int) -> dict[str, dict[str, float]]:
    admin = await asyncpg.connect(dsn)
    name = f"aragora_bench_{os.getpid()}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    target = dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        db = await connect(Config(backend="postgres", dsn=Secret(target), pool_max=2))
        await db.migrate()
        await db.users.create_user(**_user_args(1))  # type: ignore[arg-type]
        raw = await asyncpg.connect(target)
        get_sql, touch_sql = GET_USER.format(p="$1"), TOUCH.format(p="$1")

        async def raw_touch() -> None:
            async with raw.transaction():
                await raw.execute(touch_sql, "u1")

        async def repo_touch() -> None:
            async with db.transaction():
                await db.backend.execute(touch_sql, ("u1",))

        read: Callable[[], Awaitable[object]] = lambda: raw.fetchrow(get_sql, "u1")  # noqa: E731
        out = {
            "postgres typed single-row read": await ratio_rounds(
                read, lambda: db.users.get_user_by_id(id="u1"), rounds, inner
            ),
            "postgres one-row write in a transaction": await ratio_rounds(
                raw_touch, repo_touch, rounds, inner
            ),
        }
        await raw.close()
        await db.close()
        return out
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.contract")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--inner", type=int, default=400)
    args = parser.parse_args()
    dsn = os.environ.get(
        "ARAGORA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    with tempfile.TemporaryDirectory() as tmp:
        results = await sqlite_scenarios(Path(tmp), args.rounds, args.inner)
    results.update(await postgres_scenarios(dsn, args.rounds, max(args.inner // 4, 50)))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
