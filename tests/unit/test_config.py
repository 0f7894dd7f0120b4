"""Configuration from the environment: resolution, validation messages, secrecy."""

from __future__ import annotations

from pathlib import Path

import pytest

from aragora_repos import Config, ConfigError, Secret, redact_dsn
from aragora_repos.dsn import parse_dsn

CANARY = "s3cr3t-CANARY-pw"


def test_default_is_sqlite_under_nomic() -> None:
    config = Config.from_env({})
    assert config.backend == "sqlite"
    assert config.sqlite_file == Path(".nomic/aragora.db")
    assert config.dsn is None and config.timeout == 5.0


@pytest.mark.parametrize(
    "var",
    [
        "DATABASE_URL",
        "ARAGORA_DATABASE_URL",
        "ARAGORA_POSTGRES_DSN",
        "SUPABASE_POSTGRES_DSN",
        "ARAGORA_POSTGRES_PRIMARY",
    ],
)
def test_auto_picks_postgres_when_a_dsn_is_set(var: str) -> None:
    config = Config.from_env({var: "postgresql://u@h:5432/db"})
    assert config.backend == "postgres"
    assert config.dsn == Secret("postgresql://u@h:5432/db")


def test_database_url_wins_over_aliases() -> None:
    config = Config.from_env(
        {"ARAGORA_POSTGRES_DSN": "postgresql://b@h/b", "DATABASE_URL": "postgresql://a@h/a"}
    )
    assert config.dsn == Secret("postgresql://a@h/a")


def test_dsn_from_parts_quotes_user_and_password() -> None:
    config = Config.from_env(
        {
            "ARAGORA_PG_HOST": "db.internal",
            "ARAGORA_PG_PORT": "6432",
            "ARAGORA_PG_DATABASE": "aragora_prod",
            "ARAGORA_PG_USER": "app",
            "ARAGORA_PG_PASSWORD": "p@ss:w/rd",
            "ARAGORA_PG_SSL_MODE": "verify-full",
        }
    )
    assert config.backend == "postgres" and config.dsn is not None
    assert config.dsn.reveal() == (
        "postgresql://app:p%40ss%3Aw%2Frd@db.internal:6432/aragora_prod?sslmode=verify-full"
    )
    assert "p%40ss" not in repr(config) and "p@ss" not in repr(config)


def test_ssl_mode_fills_a_dsn_without_one_only() -> None:
    env = {"DATABASE_URL": "postgresql://u@h/db", "ARAGORA_PG_SSL_MODE": "require"}
    assert Config.from_env(env).dsn == Secret("postgresql://u@h/db?sslmode=require")
    env["DATABASE_URL"] = "postgresql://u@h/db?sslmode=disable"
    assert Config.from_env(env).dsn == Secret("postgresql://u@h/db?sslmode=disable")


def test_replicas_inherit_credentials_from_the_primary() -> None:
    config = Config.from_env(
        {
            "DATABASE_URL": f"postgresql://app:{CANARY}@primary:5432/db?sslmode=verify-full",
            "ARAGORA_POSTGRES_REPLICAS": "r1:5433, r2 ,postgresql://other@r3/db?sslmode=verify-ca",
            "ARAGORA_ENV": "production",
        }
    )
    assert [r.reveal() for r in config.replicas] == [
        f"postgresql://app:{CANARY}@r1:5433/db?sslmode=verify-full",
        f"postgresql://app:{CANARY}@r2/db?sslmode=verify-full",
        "postgresql://other@r3/db?sslmode=verify-ca",
    ]
    assert CANARY not in repr(config)


def test_the_seeds_pool_settings() -> None:
    """ARAGORA_DB_POOL_SIZE is the pool's size (its most connections), with
    ARAGORA_DB_POOL_MAX_OVERFLOW extra during bursts; ARAGORA_POOL_MAX_SIZE and
    ARAGORA_POSTGRES_POOL_MAX name the most directly, the latter first."""
    assert (Config.from_env({}).pool_min, Config.from_env({}).pool_max) == (1, 10)
    config = Config.from_env({"ARAGORA_DB_POOL_SIZE": "4", "ARAGORA_DB_POOL_MAX_OVERFLOW": "6"})
    assert (config.pool_min, config.pool_max) == (1, 10)
    assert Config.from_env({"ARAGORA_DB_POOL_SIZE": "20"}).pool_max == 20
    assert (
        Config.from_env({"ARAGORA_POOL_MAX_SIZE": "20", "ARAGORA_DB_POOL_SIZE": "4"}).pool_max == 20
    )
    both = {"ARAGORA_POOL_MAX_SIZE": "20", "ARAGORA_POSTGRES_POOL_MAX": "7"}
    assert Config.from_env(both).pool_max == 7


def test_the_seeds_backend_spelling() -> None:
    env = {"ARAGORA_DB_BACKEND": "postgresql", "DATABASE_URL": "postgresql://u@h/db"}
    assert Config.from_env(env).backend == "postgres"
    config = Config.from_env(
        {
            "ARAGORA_DB_POOL_SIZE": "4",
            "ARAGORA_POSTGRES_POOL_MIN": "2",
            "ARAGORA_POSTGRES_POOL_MAX": "3",
        }
    )
    assert (config.pool_min, config.pool_max) == (2, 3)


def test_timeouts_and_slow_query_threshold() -> None:
    config = Config.from_env(
        {"DB_TIMEOUT": "2.5", "ARAGORA_DB_POOL_TIMEOUT": "7", "ARAGORA_SLOW_QUERY_MS": "250"}
    )
    assert (config.timeout, config.pool_timeout, config.slow_query_ms) == (2.5, 7.0, 250.0)
    assert Config.from_env({"ARAGORA_SLOW_QUERY_MS": "off"}).slow_query_ms is None


@pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
def test_production_refuses_unverified_tls(mode: str) -> None:
    env = {"ARAGORA_ENV": "production", "DATABASE_URL": f"postgresql://u@h/db?sslmode={mode}"}
    with pytest.raises(ConfigError, match=f"got {mode}$"):
        Config.from_env(env)
    env["ARAGORA_ENV"] = "development"
    assert Config.from_env(env).backend == "postgres"


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_production_accepts_verified_tls(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    env = {"ARAGORA_ENV": "production", "DATABASE_URL": f"postgresql://u@h/db?sslmode={mode}"}
    assert Config.from_env(env).production
    assert caplog.records == []  # quiet


def test_production_accepts_require_with_a_warning_naming_the_risk(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Managed services document sslmode=require, so a deployment must start with it; the
    warning says what it does not protect against and what to set."""
    env = {"ARAGORA_ENV": "production", "DATABASE_URL": "postgresql://u@h/db?sslmode=require"}
    assert Config.from_env(env).production
    (record,) = caplog.records
    assert record.levelname == "WARNING" and "DATABASE_URL uses sslmode=require" in record.message
    assert "certificate is not checked" in record.message and "verify-full" in record.message


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
            "invalid ARAGORA_DB_BACKEND: expected sqlite, postgres (postgresql) or auto, "
            "got 'mysql'",
        ),
        (
            {"ARAGORA_DB_BACKEND": "postgres"},
            "ARAGORA_DB_BACKEND=postgres needs a DSN in one of DATABASE_URL, ARAGORA_DATABASE_URL, "
            "ARAGORA_POSTGRES_DSN, SUPABASE_POSTGRES_DSN, ARAGORA_POSTGRES_PRIMARY, or "
            "ARAGORA_PG_HOST",
        ),
        (
            {"ARAGORA_PG_PASSWORD": CANARY},
            "ARAGORA_PG_PASSWORD is set but ARAGORA_PG_HOST is not: expected a host name",
        ),
        (
            {"ARAGORA_PG_HOST": "db", "ARAGORA_PG_PORT": "70000"},
            "invalid ARAGORA_PG_PORT: expected 1..65535, got 70000",
        ),
        (
            {"ARAGORA_PG_HOST": "db", "ARAGORA_PG_SSL_MODE": "sometimes"},
            "invalid ARAGORA_PG_SSL_MODE: expected one of disable, allow, prefer, require, "
            "verify-ca, verify-full, got 'sometimes'",
        ),
        (
            {"DATABASE_URL": "postgresql://u@h/db", "ARAGORA_POSTGRES_REPLICAS": "u@h2"},
            "invalid ARAGORA_POSTGRES_REPLICAS: expected comma-separated DSNs or host[:port] "
            "entries, got 'u@h2'",
        ),
        (
            {"ARAGORA_POSTGRES_POOL_MIN": "5", "ARAGORA_POSTGRES_POOL_MAX": "2"},
            "invalid ARAGORA_POSTGRES_POOL_MIN/ARAGORA_POSTGRES_POOL_MAX: expected 0 <= min "
            "<= max and max >= 1, got min=5, max=2",
        ),
        (
            {"ARAGORA_DB_POOL_TIMEOUT": "x"},
            "invalid ARAGORA_DB_POOL_TIMEOUT: expected a number >= 0, got 'x'",
        ),
        (
            {"ARAGORA_SLOW_QUERY_MS": "fast"},
            "invalid ARAGORA_SLOW_QUERY_MS: expected a number >= 0, got 'fast'",
        ),
        (
            {"ARAGORA_ENV": "production", "DATABASE_URL": f"postgresql://u:{CANARY}@h/db"},
            "invalid DATABASE_URL for ARAGORA_ENV=production: expected sslmode=verify-full or "
            "verify-ca (the server's certificate checked; require is accepted with a warning), "
            "got no sslmode (asyncpg tries TLS, then falls back to plain text)",
        ),
        (
            {
                "ARAGORA_ENV": "production",
                "DATABASE_URL": "postgresql://u@h/db?sslmode=verify-full",
                "ARAGORA_POSTGRES_REPLICAS": "postgresql://u@r/db?sslmode=prefer",
            },
            "invalid ARAGORA_POSTGRES_REPLICAS for ARAGORA_ENV=production: expected "
            "sslmode=verify-full or verify-ca (the server's certificate checked; require is "
            "accepted with a warning), got prefer",
        ),
        (
            {"DATABASE_URL": f"mysql://u:{CANARY}@h/db"},
            "invalid DATABASE_URL: cannot parse the DSN: expected the scheme "
            "postgresql:// or postgres://",
        ),
        ({"DB_TIMEOUT": "soon"}, "invalid DB_TIMEOUT: expected a number >= 0, got 'soon'"),
        (
            {"ARAGORA_POSTGRES_POOL_MAX": "-1"},
            "invalid ARAGORA_POSTGRES_POOL_MAX: expected an integer >= 0, got '-1'",
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
            "postgresql://user:***@db/app?sslmode=require",
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
    # Kept as a percent-encoded URI that means the same connection.
    assert parse_dsn(secret.reveal()) == parse_dsn(dsn)
