"""Health over HTTP, over real sockets: /api/health, /api/health/db and /metrics on both
backends, 503 when the database is behind the code, the ASGI interface, the CLI server,
and no password in any body."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from aragora_db import MIGRATIONS, Database
from aragora_repos.health_http import HealthApp, serve

ROOT = Path(__file__).resolve().parent.parent.parent


def _get(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["content-type"] or "", exc.read().decode()


@asynccontextmanager
async def _serving(app: HealthApp) -> AsyncIterator[int]:
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(serve(app, "127.0.0.1", 0, ready=bound.set_result))
    try:
        yield await bound
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_probes_and_metrics_over_http(db: Database) -> None:
    expected = MIGRATIONS[-1].version
    async with _serving(HealthApp(db.backend, expected_version=expected)) as port:

        def fetch(path: str, method: str = "GET") -> Awaitable[tuple[int, str, str]]:
            return asyncio.to_thread(_get, port, path, method)

        code, kind, body = await fetch("/api/health")
        assert (code, kind) == (200, "application/json")
        health = json.loads(body)
        assert health["status"] == "ok" and health["backend"] == db.backend.kind.value
        assert health["pool"]["max_size"] >= 1
        code, _, body = await fetch("/api/health/db")
        probe = json.loads(body)
        assert code == 200 and probe["reachable"] and probe["schema_version"] == expected
        assert probe["latency_ms"] >= 0 and probe["table_count"] > 0
        code, kind, body = await fetch("/metrics")
        assert code == 200 and kind.startswith("text/plain; version=0.0.4")
        backend = db.backend.kind.value
        assert f'aragora_db_schema_version{{backend="{backend}"}} {expected}' in body
        assert f'aragora_db_reachable{{backend="{backend}"}} 1' in body
        assert "# TYPE aragora_db_queries_total counter" in body
        assert (await fetch("/nowhere"))[0] == 404
        assert (await fetch("/api/health", "POST"))[0] == 405
        head = await fetch("/api/health", "HEAD")
        assert head[0] == 200 and head[2] == ""


async def test_a_database_behind_the_code_is_503(db: Database) -> None:
    app = HealthApp(db.backend, expected_version=MIGRATIONS[-1].version + 1)
    async with _serving(app) as port:
        code, _, body = await asyncio.to_thread(_get, port, "/api/health/db")
        assert code == 503 and json.loads(body)["status"] == "behind"


async def test_it_is_an_asgi_application(db: Database) -> None:
    app = HealthApp(db.backend)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app({"type": "http", "method": "GET", "path": "/api/health/db"}, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["reachable"] is True


def test_the_cli_serves_until_stopped(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ARAGORA_DATA_DIR": str(tmp_path),
        "ARAGORA_DB_BACKEND": "sqlite",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'generated'}",
    }
    subprocess.run(
        [sys.executable, "-m", "aragora_db", "migrate", "up"],
        env=env,
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "aragora_db", "serve-health", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the socket listens
        port = int(line.rsplit(":", 1)[1].split("/", 1)[0])
        code, _, body = _get(port, "/api/health/db")
        assert code == 200 and json.loads(body)["schema_version"] == MIGRATIONS[-1].version
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.postgres
async def test_no_password_in_any_body(postgres_dsn: str) -> None:
    """A DSN's password (trust auth ignores it) and a replica's never show."""
    from urllib.parse import urlsplit, urlunsplit

    from aragora_repos import Config, Secret, open_async

    canary = "CANARYpw4e1d"
    parts = urlsplit(postgres_dsn)
    user, host = parts.netloc.rsplit("@", 1)
    with_password = urlunsplit(parts._replace(netloc=f"{user}:{canary}@{host}"))
    config = Config(
        backend="postgres",
        dsn=Secret(with_password),
        replicas=(Secret(with_password),),
        pool_max=2,
    )
    backend = await open_async(config)
    try:
        async with _serving(HealthApp(backend)) as port:
            for path in ("/api/health", "/api/health/db", "/metrics"):
                code, _, body = await asyncio.to_thread(_get, port, path)
                assert code in (200, 503) and canary not in body, body
    finally:
        await backend.close()
