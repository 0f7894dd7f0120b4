"""One TLS policy at the one place connections are made.

Found on an earlier main: with ``ARAGORA_ENV=production``, ``--database-url
...?sslmode=disable``, ``migrate-data --postgres-dsn ...?sslmode=disable`` and
``--database-url`` over a verified environment DSN all connected in plain text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aragora_db.__main__ import main as cli_main
from aragora_repos import ConfigError, Secret
from aragora_repos.backends.postgres import PostgresDatabase, connect_one
from aragora_repos.backup import pg_dump_backup
from tests.pg_server import free_port

PORT = free_port()
PLAIN = f"postgresql://u:pw@127.0.0.1:{PORT}/d?sslmode=disable"
UNSET = f"postgresql://u:pw@127.0.0.1:{PORT}/d"
VERIFIED = f"postgresql://u:pw@127.0.0.1:{PORT}/d?sslmode=verify-full"


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARAGORA_ENV", "production")
    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", VERIFIED)


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize("dsn", [PLAIN, UNSET], ids=["sslmode-disable", "sslmode-unset"])
def test_every_entry_point_refuses_plain_text(
    dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "s.db"
    source.touch()
    for argv in (
        ["--database-url", dsn, "health"],
        ["--database-url", dsn, "migrate", "up"],
        ["migrate-data", "--sqlite-path", str(source), "--postgres-dsn", dsn],
    ):
        assert cli_main(argv) == 1
        err = capsys.readouterr().err
        # Refused by the policy before any connection is tried (the port is closed, so
        # an attempt would say "cannot connect").
        assert "sslmode=verify-full" in err and "cannot connect" not in err, err


@pytest.mark.usefixtures("production")
async def test_the_python_api_refuses_plain_text(tmp_path: Path) -> None:
    for attempt in (
        lambda: PostgresDatabase.open(Secret(PLAIN)),
        lambda: connect_one(Secret(PLAIN)),
    ):
        with pytest.raises(ConfigError, match="verify-full"):
            await attempt()
    with pytest.raises(ConfigError, match="verify-full"):
        pg_dump_backup(Secret(PLAIN), tmp_path / "backup", tables=0)
    assert not (tmp_path / "backup").exists()


@pytest.mark.usefixtures("production")
def test_a_verified_dsn_passes_the_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["health"]) == 1  # the policy lets it through; nothing listens
    assert "cannot connect" in capsys.readouterr().err
