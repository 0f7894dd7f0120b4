"""A PgBouncer of the test's own (the Debian package ``pgbouncer``) in front of a test
database: its own config file, a free port, trust auth, started and stopped by the test.
PgBouncer refuses to run as root, so it runs as ``postgres`` then."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.pg_server import free_port


def binary() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
    )


def require_binary() -> str:
    found = binary()
    if found is None:
        message = "no pgbouncer binary: apt-get install pgbouncer"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires PgBouncer: {message}")
        pytest.skip(message)
    return found


@contextmanager
def pgbouncer(dsn: str, mode: str, *, pool_size: int = 10) -> Iterator[str]:
    """Run PgBouncer in ``mode`` (session or transaction) in front of ``dsn``'s server;
    yield ``dsn`` as seen through it."""
    program = require_binary()
    parts = urlsplit(dsn)
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="aragora-pgbouncer-")
    config = os.path.join(workdir, "pgbouncer.ini")
    with open(os.path.join(workdir, "userlist.txt"), "w") as f:
        f.write(f'"{parts.username or "postgres"}" ""\n')
    with open(config, "w") as f:
        f.write(
            "[databases]\n"
            f"* = host={parts.hostname} port={parts.port or 5432}\n\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {workdir}/userlist.txt\n"
            f"pool_mode = {mode}\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
            f"logfile = {workdir}/pgbouncer.log\n"
        )
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        for name in os.listdir(workdir):
            shutil.chown(os.path.join(workdir, name), "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    process = subprocess.Popen([*prefix, program, config], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:  # wait for the listening socket, not for a time
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    with open(os.path.join(workdir, "pgbouncer.log")) as f:
                        log = f.read()
                    raise RuntimeError(f"pgbouncer did not start: {log[-2000:]}") from None
                time.sleep(0.02)
        yield urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
