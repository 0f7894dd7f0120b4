"""Text order, one rule on both backends: by code point. A PostgreSQL database whose
default collation orders text otherwise (an ICU ``en-US`` database) is refused when the
runtime connects, unless ARAGORA_POSTGRES_COLLATION=any accepts the difference; under
C.UTF-8 the generated queries order mixed-case and accented names as SQLite does."""

from __future__ import annotations

from pathlib import Path

import pytest

from aragora_db import UserRole, connect
from aragora_repos import Config, ConfigError, Secret
from tests.pg_server import fresh_database

NAMES = ["Zed", "bob", "Émile", "ada", "Bob"]
ICU = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"


async def _ordered(config: Config) -> list[str]:
    db = await connect(config)
    try:
        await db.migrate()
        for i, name in enumerate(NAMES):
            await db.users.create_user(
                id=f"u{i}",
                email=f"u{i}@x",
                password_hash="h",
                password_salt="s",
                name=name,
                org_id=None,
                role=UserRole.MEMBER,
            )
        rows = await db.users.search_users_by_name(term="", lim=10)
        return [r.name for r in rows]
    finally:
        await db.close()


@pytest.mark.postgres
async def test_an_icu_database_is_refused_with_what_to_do(postgres_dsn: str) -> None:
    with fresh_database(postgres_dsn, ICU) as dsn:
        with pytest.raises(ConfigError) as caught:
            await connect(Config(backend="postgres", dsn=Secret(dsn)))
        message = str(caught.value)
        assert "ICU collation 'en-US'" in message
        assert "LOCALE 'C.UTF-8'" in message and "ARAGORA_POSTGRES_COLLATION=any" in message
        # Accepted on request, it orders as ICU does, which SQLite cannot: the reason.
        accepted = Config(backend="postgres", dsn=Secret(dsn), collation="any")
        assert await _ordered(accepted) == ["ada", "bob", "Bob", "Émile", "Zed"]


@pytest.mark.postgres
async def test_under_code_point_order_both_backends_agree(
    postgres_dsn: str, tmp_path: Path
) -> None:
    sqlite = await _ordered(Config(data_dir=tmp_path))
    with fresh_database(postgres_dsn, "TEMPLATE template0 LOCALE 'C.UTF-8'") as dsn:
        postgres = await _ordered(Config(backend="postgres", dsn=Secret(dsn)))
    assert sqlite == postgres == ["Bob", "Zed", "ada", "bob", "Émile"]


def test_the_setting_is_read_and_checked() -> None:
    assert Config.from_env({}).collation == "check"
    env = {"ARAGORA_POSTGRES_COLLATION": "ANY"}
    assert Config.from_env(env).collation == "any"
    with pytest.raises(ConfigError, match="ARAGORA_POSTGRES_COLLATION"):
        Config.from_env({"ARAGORA_POSTGRES_COLLATION": "loose"})
