"""Health over HTTP: the probes the seeds' deployments call, as an ASGI application any
ASGI server (or an application's router) can mount, and a small server of its own for
``aragora-repos serve-health --port N``.

Routes (GET or HEAD):

* ``/api/health``: the pool's own view, no round trip (``get_health_status``): status,
  backend, pool, transactions, replicas. 200 when healthy, else 503.
* ``/api/health/db``: a probe of the database (``get_database_health``): reachable,
  latency, schema version and whether it is the one the code expects, table count,
  pool, replicas. 200 when reachable and at the expected version, else 503.
* ``/metrics``: the same figures as Prometheus text (version 0.0.4).

Errors in the bodies are the backend's own messages, which never hold a password.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aragora_repos.backends import Backend
from aragora_repos.observability import DatabaseHealth, HealthStatus

_log = logging.getLogger("aragora_repos.health_http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _json(value: object) -> bytes:
    return json.dumps(value, indent=2, default=str, sort_keys=True).encode() + b"\n"


def _metric_lines(
    status: HealthStatus, health: DatabaseHealth | None, expected: int | None
) -> list[str]:
    backend = status.backend.value
    out: list[str] = []

    def gauge(name: str, help_: str, value: float | None, kind: str = "gauge") -> None:
        if value is None:
            return
        out.append(f"# HELP aragora_db_{name} {help_}")
        out.append(f"# TYPE aragora_db_{name} {kind}")
        out.append(f'aragora_db_{name}{{backend="{backend}"}} {value:g}')

    gauge("healthy", "1 when the pool considers itself healthy", float(status.healthy))
    pool = status.pool
    gauge("pool_connections", "connections the pool holds", pool.total)
    gauge("pool_active", "connections in use", pool.active)
    gauge("pool_idle", "connections free", pool.idle)
    gauge("pool_max", "the most connections the pool opens", pool.max_size)
    gauge("pool_waits_total", "acquisitions that had to wait", pool.waits, "counter")
    gauge("pool_timeouts_total", "acquisitions that timed out", pool.timeouts, "counter")
    gauge("queries_total", "statements run", pool.queries, "counter")
    gauge("replica_reads_total", "reads served by replicas", pool.replica_reads, "counter")
    tx = status.transactions
    for field in dataclasses.fields(tx):
        gauge(
            f"transactions_{field.name}_total",
            f"transactions {field.name}",
            getattr(tx, field.name),
            "counter",
        )
    if health is not None:
        gauge("reachable", "1 when the last probe reached the database", float(health.reachable))
        gauge("probe_latency_ms", "round trip of the last probe", health.latency_ms)
        gauge("schema_version", "the newest migration applied", health.schema_version)
        gauge("schema_version_expected", "the newest migration the code has", expected)
    for replica in status.replicas:
        name = replica.name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        out.append(f'aragora_db_replica_healthy{{replica="{name}"}} {int(replica.healthy)}')
        if replica.lag_bytes is not None:
            out.append(f'aragora_db_replica_lag_bytes{{replica="{name}"}} {replica.lag_bytes}')
    return out


class HealthApp:
    """The ASGI application over an open backend (see the module docstring).

    ``expected_version``: the newest migration the application's code has (the generated
    package's ``MIGRATIONS[-1].version``); ``/api/health/db`` is 503 while the database
    is behind it.
    """

    def __init__(self, backend: Backend, *, expected_version: int | None = None) -> None:
        self.backend = backend
        self.expected_version = expected_version

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        code, kind, body = await self.respond(scope["method"], scope["path"])
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", kind.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    async def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        """Status code, content type and body for one request."""
        if method not in ("GET", "HEAD"):
            return 405, "text/plain; charset=utf-8", b"method not allowed\n"
        if path == "/api/health":
            status = self.backend.get_health_status()
            body = {"status": "ok" if status.healthy else "unhealthy", **dataclasses.asdict(status)}
            return (200 if status.healthy else 503), "application/json", _json(body)
        if path == "/api/health/db":
            health = await self.backend.get_database_health()
            current = (
                health.schema_version == self.expected_version or self.expected_version is None
            )
            ok = health.reachable and current
            body = {
                "status": "ok" if ok else ("behind" if health.reachable else "unreachable"),
                "expected_schema_version": self.expected_version,
                **dataclasses.asdict(health),
            }
            return (200 if ok else 503), "application/json", _json(body)
        if path == "/metrics":
            status = self.backend.get_health_status()
            health = await self.backend.get_database_health()
            lines = _metric_lines(status, health, self.expected_version)
            return (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                ("\n".join(lines) + "\n").encode(),
            )
        return 404, "text/plain; charset=utf-8", b"not found\n"


_EMPTY = "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


async def serve(
    app: HealthApp, host: str, port: int, *, ready: Callable[[int], None] | None = None
) -> None:
    """Serve ``app`` over HTTP/1.1 on ``host:port`` until cancelled (one request per
    connection; enough for probes and scrapes). ``ready`` gets the bound port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            code, kind, body = await app.respond(method, target.split("?", 1)[0])
            reason = {
                200: "OK",
                404: "Not Found",
                405: "Method Not Allowed",
                503: "Service Unavailable",
            }
            writer.write(
                f"HTTP/1.1 {code} {reason.get(code, '')}\r\ncontent-type: {kind}\r\n"
                f"content-length: {len(body)}\r\ncache-control: no-store\r\n"
                "connection: close\r\n\r\n".encode()
                + (b"" if method == "HEAD" else body)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            writer.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
        except Exception:  # a failing probe must not take the server down
            _log.exception("health request failed")
            writer.write(_EMPTY.format(status="500 Internal Server Error").encode())
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    async with server:
        await server.serve_forever()
