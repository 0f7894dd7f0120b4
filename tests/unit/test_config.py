"""Configuration from the environment: resolution, validation messages, secrecy."""

from __future__ import annotations

from pathlib import Path

import pytest

from aragora_repos import Config, ConfigError, Secret, redact_dsn

CANARY = "s3cr3t-CANARY-pw"


def test_default_is_sqlite_under_nomic() -> None:
    config = Config.from_env({})
    assert config.backend == "sqlite"
    assert config.sqlite_file == Path(".nomic/aragora.db")
    assert config.dsn is None and config.timeout == 5.0


@pytest.mark.parametrize("var", ["DATABASE_URL", "ARAGORA_DATABASE_URL", "ARAGORA_POSTGRES_DSN"])
def test_auto_picks_postgres_when_a_dsn_is_set(var: str) -> None:
    config = Config.from_env({var: "postgresql://u@h:5432/db"})
    assert config.backend == "postgres"
    assert config.dsn == Secret("postgresql://u@h:5432/db")


def test_database_url_wins_over_aliases() -> None:
    config = Config.from_env(
        {"ARAGORA_POSTGRES_DSN": "postgresql://b@h/b", "DATABASE_URL": "postgresql://a@h/a"}
    )
    assert config.dsn == Secret("postgresql://a@h/a")


def test_explicit_sqlite_ignores_the_dsn() -> None:
    config = Config.from_env(
        {
            "ARAGORA_DB_BACKEND": "sqlite",
            "DATABASE_URL": "postgresql://a@h/a",
            "ARAGORA_DATA_DIR": "/x",
        }
    )
    assert config.backend == "sqlite" and config.sqlite_file == Path("/x/aragora.db")


@pytest.mark.parametrize("var", ["ARAGORA_DATA_DIR", "ARAGORA_NOMIC_DIR", "NOMIC_DIR"])
def test_data_dir_aliases(var: str) -> None:
    assert Config.from_env({var: "/data"}).data_dir == Path("/data")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ARAGORA_DB_BACKEND": "mysql"},
            "invalid ARAGORA_DB_BACKEND: expected sqlite, postgres or auto, got 'mysql'",
        ),
        (
            {"ARAGORA_DB_BACKEND": "postgres"},
            "ARAGORA_DB_BACKEND=postgres needs a DSN in one of DATABASE_URL, ARAGORA_DATABASE_URL, "
            "ARAGORA_POSTGRES_DSN",
        ),
        (
            {"DATABASE_URL": f"mysql://u:{CANARY}@h/db"},
            "invalid DATABASE_URL: expected postgresql://user@host:port/db, "
            "got 'mysql://u:***@h/db'",
        ),
        ({"DB_TIMEOUT": "soon"}, "invalid DB_TIMEOUT: expected a float >= 0, got 'soon'"),
        (
            {"ARAGORA_POSTGRES_POOL_MAX": "-1"},
            "invalid ARAGORA_POSTGRES_POOL_MAX: expected a int >= 0, got '-1'",
        ),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env(env)
    assert str(info.value) == message
    assert CANARY not in str(info.value)


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        (f"postgresql://user:{CANARY}@db:5432/app", "postgresql://user:***@db:5432/app"),
        (
            f"postgresql://user@db/app?password={CANARY}&sslmode=require",
            "postgresql://user@db/app?password=%2A%2A%2A&sslmode=require",
        ),
        ("postgresql://user@db/app", "postgresql://user@db/app"),
    ],
)
def test_redaction(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown
    secret = Secret(dsn)
    assert CANARY not in repr(secret) and CANARY not in str(secret)
    config = Config.from_env({"DATABASE_URL": dsn})
    assert CANARY not in repr(config) and CANARY not in str(config)
    assert secret.reveal() == dsn
