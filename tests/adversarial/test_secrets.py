"""A canary password through every malformed DSN form and every CLI entry point.

Found on an earlier main: an unencoded ``/ # ? @ :`` in the password defeated the
masking (``DATABASE_URL='postgresql://app:CANARY/x9@h:5432/d' aragora-repos health``
printed it); keyword DSNs were printed in full; argparse echoed ``--database-url``;
raw ``ValueError``s for bad ports or IPv6 brackets escaped with the DSN in frame locals;
pg_dump got the password on its command line from ``?password=``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sqlite3
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from aragora_db.__main__ import main as cli_main
from aragora_repos import Config, ConfigError, Secret, redact_dsn
from aragora_repos.dsn import parse_dsn
from tests.pg_server import free_port

CANARY = "CANARYpw7f3a"


PORT = free_port()
#: Each a password or DSN shape that broke the masking, or that a parser may mistake.
MALFORMED = [
    f"postgresql://app:{CANARY}/x9@127.0.0.1:{PORT}/d",
    f"postgresql://app:{CANARY}#x9@127.0.0.1:{PORT}/d",
    f"postgresql://app:{CANARY}?x9@127.0.0.1:{PORT}/d",
    f"postgresql://app:{CANARY}@x9@127.0.0.1:{PORT}/d",
    f"postgresql://app:{CANARY}:x9@127.0.0.1:{PORT}/d",
    f"postgresql://app:{CANARY} x9@127.0.0.1:{PORT}/d",
    f"postgresql://app@127.0.0.1:{PORT}/d?password={CANARY}&sslmode=disable",
    f"postgresql://app@127.0.0.1:{PORT}/d?password={CANARY}&x9",
    f"postgresql://app@127.0.0.1:{PORT}/d?password=ab&{CANARY}=1",
    f"host=127.0.0.1 port={PORT} user=u password={CANARY} dbname=d",
    f"host=127.0.0.1 port={PORT} user=u password='{CANARY} x9' dbname=d",
    f"host=127.0.0.1 user=u password='{CANARY}",
    f"postgresql://app:{CANARY}@[::1/d",
    f"postgresql://app:{CANARY}@[::1]x/d",
    f"postgresql://app:{CANARY}@127.0.0.1:notaport/d",
    f"postgresql://app:{CANARY}@127.0.0.1:99999/d",
    f"postgresql://app:{CANARY}@127.0.0.1:{PORT}/d\n",
    f"postgresql://app:{CANARY}\x00@127.0.0.1/d",
    f"postgresql://app:{CANARY}%ff@127.0.0.1:{PORT}/d",
    f"mysql://app:{CANARY}@127.0.0.1/d",
    f"{CANARY}",
    f"postgresql://app:{CANARY}@127.0.0.1:{PORT}/d",  # well formed, server refuses
]


class _LocalsHandler(logging.Handler):
    """Records every message and, like error reporters, every local of every frame of
    an attached exception."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            te = traceback.TracebackException.from_exception(
                record.exc_info[1], capture_locals=True
            )
            self.seen.append("".join(te.format()))


@contextmanager
def recording() -> Iterator[_LocalsHandler]:
    handler = _LocalsHandler()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def run_cli(argv: list[str]) -> str:
    """Output, error output and any exception (with frame locals) of one CLI run."""
    out, err = io.StringIO(), io.StringIO()
    extra = ""
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException as exc:  # a raw traceback: itself a failure
            te = traceback.TracebackException.from_exception(exc, capture_locals=True)
            extra = "RAW TRACEBACK\n" + "".join(te.format())
            code = -1
    return f"exit {code}\n{out.getvalue()}\n{err.getvalue()}\n{extra}"


def _with_locals(exc: BaseException) -> str:
    """The traceback and the repr of every local of every frame outside this file (the
    test's own frames hold the DSN it passed in)."""
    parts = ["".join(traceback.format_exception(exc))]
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename != __file__:
            parts.extend(repr(v) for v in tb.tb_frame.f_locals.values())
        tb = tb.tb_next
    return "\n".join(parts)


async def _sync_service(data: Path) -> str:
    """The service connect() starts, against the environment's target: its status and
    error after a flush that cannot reach the target, and the Database's repr."""
    from aragora_db import connect

    db = await connect(Config.from_env())
    assert db.sync is not None
    await db.sync.flush(timeout=3)
    status = await db.sync.get_status()
    shown = f"{status!r} {db!r} {db.sync.worker.settings!r}"
    await db.close()
    return shown


def leaks(text: str) -> bool:
    return CANARY in text or CANARY.lower() in text.lower()


@pytest.mark.parametrize("dsn", MALFORMED, ids=range(len(MALFORMED)))
def test_canary_never_shown(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARAGORA_DB_POOL_TIMEOUT", "2")
    monkeypatch.setenv("DB_TIMEOUT", "2")
    for var in ("DATABASE_URL", "ARAGORA_DATABASE_URL", "ARAGORA_POSTGRES_DSN"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "dsn.txt").write_text(dsn)
    sqlite_file = tmp_path / "src.db"
    sqlite_file.touch()
    outputs: list[str] = [redact_dsn(dsn)]
    try:
        outputs += [repr(Secret(dsn)), str(Secret(dsn)), repr(parse_dsn(dsn))]
    except ConfigError as exc:
        outputs.append(_with_locals(exc))
    runs = [
        ["--database-url", dsn, "health"],
        ["--database-url", dsn, "check"],
        ["--database-url", dsn, "migrate", "--status"],
        ["--database-url-file", str(tmp_path / "dsn.txt"), "migrate", "up"],
        ["migrate", "--database-url", dsn],  # argparse: unrecognized arguments
        ["--database-url", dsn, "no-such-command"],
        ["migrate-data", "--sqlite-path", str(sqlite_file), "--postgres-dsn", dsn],
        [f"--database-url={dsn}", "health", "--bogus"],
        ["--database-url", dsn, "backup", "--verify"],
        ["--database-url", dsn, "restore", str(tmp_path / "no-such-set")],
        ["--database-url", dsn, "maintenance"],
        ["--database-url", dsn, "serve-health", "--port", "0"],
        ["--database-url", dsn, "rekey"],
        ["--database-url", dsn, "rotate-keys", "--batch", "10"],
        [
            "--database-url",
            dsn,
            "export-audit",
            "--since",
            "2020-01-01",
            "--until",
            "2030-01-01",
            "--output",
            str(tmp_path / "audit.jsonl"),
        ],
    ]
    with recording() as handler:
        for argv in runs:
            outputs.append(run_cli(argv))
        if "\x00" not in dsn:  # no environment variable can hold a NUL
            # The sync's target: a migrated local database with a captured change, so
            # the worker reaches for the target (refused, unreachable or malformed).
            outputs.append(run_cli(["migrate", "up"]))
            with sqlite3.connect(tmp_path / "aragora.db") as lite:
                lite.execute(
                    "INSERT INTO stream_events (loop_id, cycle, event_type) VALUES ('l', 1, 'e')"
                )
            monkeypatch.setenv("SUPABASE_SYNC_ENABLED", "true")
            monkeypatch.setenv("SUPABASE_POSTGRES_DSN", dsn)
            for args in (["sync", "--once"], ["sync", "--status"], ["sync", "--dead-letter"]):
                outputs.append(run_cli(args))
            try:
                outputs.append(repr(Config.from_env()))
                outputs.append(asyncio.run(_sync_service(tmp_path)))
            except ConfigError as exc:
                outputs.append(_with_locals(exc))
            monkeypatch.delenv("SUPABASE_SYNC_ENABLED")
            monkeypatch.delenv("SUPABASE_POSTGRES_DSN")
            monkeypatch.setenv("DATABASE_URL", dsn)
            outputs.append(run_cli(["health"]))
            outputs.append(run_cli(["migrate", "--status"]))
        try:
            outputs.append(repr(Config.from_env()))
        except ConfigError as exc:
            outputs.append(str(exc))
    outputs += handler.seen
    shown = [o for o in outputs if leaks(o)]
    assert not shown, shown[0]
    assert not any("RAW TRACEBACK" in o for o in outputs), next(o for o in outputs if "RAW" in o)


def _cmdlines() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
            except OSError:
                continue
    return out


@pytest.mark.postgres
def test_pg_dump_gets_no_password_on_its_command_line(postgres_dsn: str, tmp_path: Path) -> None:
    """A role with a password, a DSN that carries it as ``?password=``, and every
    process's argv sampled while pg_dump runs."""
    import asyncpg

    from aragora_repos.backup import pg_dump_backup
    from tests.pg_server import fresh_database, run_async

    role = f"canary_role_{os.getpid()}"
    with fresh_database(postgres_dsn) as dsn:

        async def setup(sql: str) -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        run_async(setup(f"CREATE ROLE {role} LOGIN PASSWORD '{CANARY}'"))
        try:
            base = parse_dsn(dsn)
            host, port = base.hosts[0]
            with_password = f"postgresql://{role}@{host}:{port}/{base.database}?password={CANARY}"
            seen: list[str] = []
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    seen.extend(c for c in _cmdlines() if "pg_dump" in c or "pg_restore" in c)

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                where = pg_dump_backup(Secret(with_password), tmp_path / "backup", tables=0)
            finally:
                done.set()
                sampler.join()
            assert where is not None and where.stat().st_size > 0
            assert seen, "the sampler saw pg_dump running"
            assert not any(CANARY in c for c in seen)
        finally:
            run_async(setup(f"DROP ROLE {role}"))


def test_the_cli_takes_a_dsn_without_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MY_DSN", f"postgresql://app:{CANARY}@127.0.0.1:{PORT}/d")
    assert cli_main(["--database-url-env", "MY_DSN", "health"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to postgresql://app:***@127.0.0.1" in err and not leaks(err)
    assert cli_main(["--database-url-env", "UNSET_VARIABLE_X", "health"]) == 1
    assert "UNSET_VARIABLE_X: the variable is not set" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "--database-url",
                f"postgresql://a:{CANARY}@h/d",
                "--database-url-env",
                "MY_DSN",
                "health",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "give one of" in err and not leaks(err)
    assert sys.argv  # the test never put the DSN in its own argv


def test_driver_reconnect_warnings_carry_no_frames() -> None:
    """asyncpg's pool logs a failed reconnect with ``exc_info``; the connect frames'
    locals hold the connection parameters. The record reaches handlers without them."""
    import aragora_repos.backends.postgres  # noqa: F401  (installs the filter)

    def connect(password: str) -> None:
        raise OSError(111, "Connect call failed")

    with recording() as handler:
        try:
            connect(CANARY)
        except OSError:
            logging.getLogger("asyncpg.pool").warning(
                "Failed to restore the pool connection floor; retrying", exc_info=True
            )
    assert any("(ConnectionRefusedError)" in seen for seen in handler.seen)
    assert not any(leaks(seen) for seen in handler.seen)
