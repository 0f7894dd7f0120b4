"""Find a PostgreSQL server for the tests, in this order:

1. ``ARAGORA_TEST_POSTGRES_DSN`` (a DSN whose user may create databases);
2. the local service on 127.0.0.1:5432 as user ``postgres``;
3. a throwaway server started here with ``initdb`` / ``pg_ctl`` (as the ``postgres``
   user when running as root, since initdb refuses root);
4. testcontainers, if it is installed and a Docker engine answers.

Each test session then works in a fresh database of its own, dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a private loop (callers may be inside a running loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass(frozen=True)
class Server:
    admin_dsn: str
    source: str


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def _reachable(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False
    await conn.close()
    return True


def free_port() -> int:
    """A local TCP port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _own_server() -> Iterator[Server | None]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        yield None
        return
    bindir = os.path.dirname(found[-1])
    root = os.geteuid() == 0
    workdir = tempfile.mkdtemp(prefix="aragora-pg-")
    datadir = os.path.join(workdir, "data")
    prefix = ["runuser", "-u", "postgres", "--"] if root else []
    if root:
        shutil.chown(workdir, "postgres")
    port = free_port()
    try:
        subprocess.run(
            [
                *prefix,
                f"{bindir}/initdb",
                "-D",
                datadir,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--locale=C.UTF-8",  # text in code-point order, as the runtime requires
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *prefix,
                f"{bindir}/pg_ctl",
                "-D",
                datadir,
                "-w",
                "-l",
                os.path.join(workdir, "log"),
                "-o",
                f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1",
                "start",
            ],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        shutil.rmtree(workdir, ignore_errors=True)
        yield None
        return
    try:
        yield Server(f"postgresql://postgres@127.0.0.1:{port}/postgres", f"own server :{port}")
    finally:
        subprocess.run(
            [*prefix, f"{bindir}/pg_ctl", "-D", datadir, "-m", "fast", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _container() -> Iterator[Server | None]:
    try:
        from testcontainers.postgres import PostgresContainer  # type: ignore[import-not-found]
    except ImportError:
        yield None
        return
    try:
        container = PostgresContainer("postgres:15").start()
    except Exception:  # no Docker engine answering
        yield None
        return
    try:
        url = container.get_connection_url().replace("+psycopg2", "")
        yield Server(url, "testcontainers")
    finally:
        container.stop()


@contextlib.contextmanager
def find_server() -> Iterator[Server | None]:
    explicit = os.environ.get("ARAGORA_TEST_POSTGRES_DSN")
    if explicit:
        yield (
            Server(explicit, "ARAGORA_TEST_POSTGRES_DSN")
            if run_async(_reachable(explicit))
            else None
        )
        return
    if run_async(_reachable(LOCAL_DSN)):
        yield Server(LOCAL_DSN, "local service")
        return
    with _own_server() as server:
        if server is not None:
            yield server
            return
    with _container() as server:
        yield server


@contextlib.contextmanager
def fresh_database(admin_dsn: str, options: str = "") -> Iterator[str]:
    """Create ``aragora_test_<random>`` (with ``options``, e.g. a locale) and drop it
    afterwards; yield its DSN."""
    name = f"aragora_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_async(admin(f'CREATE DATABASE "{name}" {options}'.strip()))
    try:
        yield with_database(admin_dsn, name)
    finally:
        run_async(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, *, timeout: float = 10.0
) -> None:
    """Wait for a condition, not for a time: poll ``check`` until it holds, and fail naming
    ``what`` if it still does not after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout:g} s for {what}")
        await asyncio.sleep(0.01)


async def terminate_during_commit(admin: asyncpg.Connection[Any], *, tries: int = 100) -> None:
    """Poll for a backend of ``admin``'s database running COMMIT and terminate it (the test
    slows its COMMIT with a deferred trigger), so the client loses the connection with
    COMMIT in flight. ``admin`` must be connected to the test's own database."""
    for _ in range(tries):
        await asyncio.sleep(0.05)
        # Only the test's own database, never this session: the server may be shared.
        pids = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE query = 'COMMIT' AND state = 'active' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        if pids:
            await admin.execute("SELECT pg_terminate_backend($1)", pids[0][0])
            return
