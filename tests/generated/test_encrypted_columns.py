"""Encrypted columns (``-- aragora:encrypted``): webhooks.secret and integrations.config
are sealed on write and opened on read on both backends; a canary never reaches the
SQLite file, its WAL, a backup, PostgreSQL's table pages, its WAL or a ``pg_dump``;
tampered, moved and unknown-key values fail with the project's errors; the migration that
marks the columns seals existing rows and its down opens them; ``rotate-keys`` seals
everything again under the new key, online and resumably under SIGKILL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path

import asyncpg
import pytest

from aragora_db import MIGRATIONS, Database, UserRole, connect
from aragora_repos import Config, MigrationError, Secret
from aragora_repos.backup import client_binary, libpq_environment
from aragora_repos.errors import DataError, TamperedValue, UniqueViolation, UnknownKey
from aragora_repos.keyring import NO_KEYS, KeyRing, key_id
from aragora_repos.tools.backup_sets import take_backup
from aragora_repos.tools.rotate_keys import rotate_keys
from tests.conftest import BACKENDS
from tests.pg_server import fresh_database

ROOT = Path(__file__).resolve().parent.parent.parent
CANARY = "SECRETCANARY-7d41e9"
KEY_A = hashlib.sha256(b"column key A").digest()
KEY_B = hashlib.sha256(b"column key B").digest()
#: The version that marks the columns (sql/schema/0014_encrypted_columns.sql).
MARKED = next(m.version for m in MIGRATIONS if m.up.crypts)


@contextmanager
def place(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh SQLite data directory or PostgreSQL database of this test's own."""
    if backend == "sqlite":
        yield str(tmp_path / "data")
    else:
        with fresh_database(request.getfixturevalue("postgres_dsn")) as dsn:
            yield dsn


def config(where: str, keys: KeyRing) -> Config:
    if where.startswith("postgresql://"):
        return Config(backend="postgres", dsn=Secret(where), pool_max=4, encryption=keys)
    return Config(data_dir=Path(where), encryption=keys)


@asynccontextmanager
async def opened(where: str, keys: KeyRing, *, migrate: bool = True) -> AsyncIterator[Database]:
    db = await connect(config(where, keys))
    try:
        if migrate:
            await db.migrate()
        yield db
    finally:
        await db.close()


def sql(db: Database, text: str) -> str:
    """``text`` with ``$n`` placeholders as the backend spells them."""
    return text if db.backend.dialect == "postgres" else text.replace("$", "?")


async def plain_webhooks(db: Database, numbers: Iterable[int]) -> None:
    """Organization ``org`` and webhooks ``w<n>`` whose secret is ``CANARY-<n>``, written
    as plain SQL before the columns are marked encrypted."""
    await db.backend.execute(
        "INSERT INTO organizations (id, name, slug, tier, settings) "
        "VALUES ('org', 'Org', 'org', 'free', '{}')",
        (),
    )
    events = "'{}'" if db.backend.dialect == "postgres" else "'[]'"
    for n in numbers:
        await db.backend.execute(
            "INSERT INTO webhooks (id, org_id, url, secret, events) VALUES "
            f"('w{n}', 'org', 'u', '{CANARY}-{n}', {events})",
            (),
        )


async def raw(db: Database, table: str, column: str, id_: str) -> bytes:
    row = await db.backend.fetchrow(sql(db, f"SELECT {column} FROM {table} WHERE id = $1"), (id_,))
    assert row is not None
    return bytes(row[0])


async def fill(db: Database, n: int, secret: str = CANARY) -> None:
    """An organization, ``n`` webhooks and ``n`` integrations holding ``secret``."""
    await db.orgs.create_organization(
        id="org", name="Org", slug="org", tier="free", owner_id=None, settings={}
    )
    for i in range(n):
        await db.auth.create_webhook(
            id=f"w{i:04d}",
            org_id="org",
            url=f"https://example.com/{i}",
            secret=f"{secret}-{i}",
            events=["*"],
            active=True,
        )
        await db.integrations.upsert_integration(
            id=f"i{i:04d}",
            org_id="org",
            provider=f"p{i:04d}",
            config={"token": f"{secret}-{i}", "n": i},
            enabled=True,
        )


async def share(db: Database, n: int, token: str = CANARY) -> None:
    """A debate and ``n`` share links of it, whose tokens hold ``token``."""
    await db.debates.insert_debate(
        id="d1",
        slug="d1",
        task="t",
        agents=["a"],
        final_answer=None,
        consensus_reached=False,
        confidence=None,
        rounds_used=None,
        duration_seconds=None,
        grounded_verdict=None,
    )
    for i in range(n):
        await db.share_links.create_share_link(
            token=f"{token}-{i}",
            debate_id="d1",
            created_by=None,
            visibility="public",
            expires_at=None,
        )


async def key_ids(db: Database) -> set[bytes]:
    ids = set()
    for table, column in (
        ("webhooks", "secret"),
        ("integrations", "config"),
        ("share_links", "token"),
    ):
        for row in await db.backend.fetch(f"SELECT {column} FROM {table}", ()):
            ids.add(bytes(row[0])[1:5])
    return ids


@pytest.mark.parametrize("backend", BACKENDS)
async def test_values_round_trip_and_are_stored_sealed(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    keys = KeyRing(KEY_A)
    with place(backend, tmp_path, request) as where:
        async with opened(where, keys) as db:
            await fill(db, 3)
            hook = await db.auth.get_webhook(id="w0001")
            assert hook is not None and hook.secret == f"{CANARY}-1"
            listed = await db.integrations.list_integrations_for_org(org_id="org")
            assert [i.config for i in listed] == [
                {"token": f"{CANARY}-{i}", "n": i} for i in range(3)
            ]
            stored = await raw(db, "webhooks", "secret", "w0001")
            assert stored[0] == 1 and stored[1:5] == key_id(KEY_A)
            assert CANARY.encode() not in stored
            # Upsert replaces the sealed value; the row key (org_id, provider) binds it.
            again = await db.integrations.upsert_integration(
                id="ignored", org_id="org", provider="p0000", config=[1, "two"], enabled=False
            )
            assert again is not None and again.config == [1, "two"]
            got = await db.integrations.get_integration(org_id="org", provider="p0000")
            assert got is not None and got.config == [1, "two"]
            assert await key_ids(db) == {key_id(KEY_A)}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_tampered_moved_and_unknown_key_values_fail_clearly(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with place(backend, tmp_path, request) as where:
        async with opened(where, KeyRing(KEY_A)) as db:
            await fill(db, 3)
            update = sql(db, "UPDATE webhooks SET secret = $1 WHERE id = $2")
            # One flipped bit in the ciphertext.
            value = bytearray(await raw(db, "webhooks", "secret", "w0000"))
            value[-20] ^= 1
            await db.backend.execute(update, (bytes(value), "w0000"))
            with pytest.raises(TamperedValue, match=r"webhooks\.secret of row \('w0000'\)"):
                await db.auth.get_webhook(id="w0000")
            # A valid value copied to another row.
            await db.backend.execute(
                update, (await raw(db, "webhooks", "secret", "w0002"), "w0001")
            )
            with pytest.raises(TamperedValue, match="another row"):
                await db.auth.get_webhook(id="w0001")
            # Plain text where a sealed value belongs.
            await db.backend.execute(update, (b"plain", "w0002"))
            with pytest.raises(TamperedValue, match="not in the encrypted form"):
                await db.auth.get_webhook(id="w0002")
        # A ring without the key that sealed them; no ring at all.
        async with opened(where, KeyRing(KEY_B), migrate=False) as db:
            with pytest.raises(UnknownKey, match=key_id(KEY_A).hex()):
                await db.integrations.get_integration(org_id="org", provider="p0001")
        async with opened(where, NO_KEYS, migrate=False) as db:
            with pytest.raises(UnknownKey, match="ARAGORA_ENCRYPTION_KEY"):
                await db.integrations.list_integrations_for_org(org_id="org")
            with pytest.raises(UnknownKey, match="no column key is configured"):
                await db.auth.create_webhook(
                    id="w9", org_id="org", url="u", secret="s", events=[], active=True
                )
            # Everything without an encrypted column still works without a key.
            assert await db.orgs.get_organization_by_id(id="org") is not None


def on_disk(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_canary_never_on_disk_sqlite(tmp_path: Path) -> None:
    """A plain (not SQLCipher) file, so the column encryption alone keeps the canary out:
    the database, its WAL while open, and a backup set."""
    data = tmp_path / "data"
    cfg = config(str(data), KeyRing(KEY_A))
    async with opened(str(data), KeyRing(KEY_A)) as db:
        await fill(db, 20)
        await db.users.create_user(  # a control: an unencrypted column reaches the file
            id="u1",
            email="CONTROLCANARY@example.com",
            password_hash="h",
            password_salt="s",
            name="n",
            org_id=None,
            role=UserRole.MEMBER,
        )
        wal = [p for p in data.rglob("*-wal")]
        assert wal and any(p.stat().st_size > 0 for p in wal)
        assert on_disk(data, b"CONTROLCANARY")
        assert on_disk(data, CANARY.encode()) == []
    report = await take_backup(cfg)
    assert report.folder is not None and on_disk(report.folder, b"CONTROLCANARY")
    assert on_disk(tmp_path, CANARY.encode()) == []


@pytest.mark.postgres
async def test_canary_never_in_postgres_pages_wal_or_dump(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The WAL is the server's, shared with the tests running beside this one, some of which
    # write CANARY in plain text on purpose (before the marking migration): a canary of
    # this test's own.
    canary = f"PGCANARY-{uuid.uuid4().hex}"
    with place("postgres", tmp_path, request) as where:
        async with opened(where, KeyRing(KEY_A)) as db:
            await fill(db, 20, canary)
            await share(db, 20, canary)
            await db.orgs.create_organization(
                id="ctl",
                name="CONTROLCANARY",
                slug="ctl",
                tier="free",
                owner_id=None,
                settings={},
            )
        conn = await asyncpg.connect(where)
        try:
            await conn.execute("CHECKPOINT")
            pages = b""
            for table in ("webhooks", "integrations", "share_links", "organizations"):
                path = await conn.fetchval("SELECT pg_relation_filepath($1::regclass)", table)
                pages += await conn.fetchval("SELECT pg_read_binary_file($1)", path)
                toast = await conn.fetchval(
                    "SELECT pg_relation_filepath(reltoastrelid) FROM pg_class "
                    "WHERE oid = $1::regclass AND reltoastrelid <> 0",
                    table,
                )
                if toast:
                    pages += await conn.fetchval("SELECT pg_read_binary_file($1)", toast)
            assert b"CONTROLCANARY" in pages
            assert canary.encode() not in pages
            wal = b""
            for (name,) in await conn.fetch(
                "SELECT name FROM pg_ls_waldir() ORDER BY modification DESC LIMIT 2"
            ):
                wal += await conn.fetchval("SELECT pg_read_binary_file($1)", f"pg_wal/{name}")
            assert b"CONTROLCANARY" in wal
            assert canary.encode() not in wal
        finally:
            await conn.close()
        dump = client_binary("pg_dump")
        assert dump is not None, "pg_dump is not installed"
        dsn = Secret(where)
        out = subprocess.run(
            [
                str(dump),
                "--data-only",
                "--format=plain",
                "-t",
                "webhooks",
                "-t",
                "integrations",
                "-t",
                "share_links",
                "-t",
                "organizations",
            ],
            env={**os.environ, **libpq_environment(dsn.parsed)},
            capture_output=True,
            check=True,
        ).stdout
        assert b"CONTROLCANARY" in out and canary.encode() not in out


@pytest.mark.parametrize("backend", BACKENDS)
async def test_marking_migration_seals_existing_rows_and_down_opens_them(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    before = [m for m in MIGRATIONS if m.version < MARKED]
    with place(backend, tmp_path, request) as where:
        async with opened(where, KeyRing(KEY_A), migrate=False) as db:
            await db.backend.migrate(before)
            await plain_webhooks(db, range(5))
            await db.backend.execute(
                "INSERT INTO integrations (id, org_id, provider, config) VALUES "
                "('i0', 'org', 'slack', '{\"token\": \"" + CANARY + "\"}')",
                (),
            )
        # Without a key, the migration refuses and leaves the database as it was.
        async with opened(where, NO_KEYS, migrate=False) as db:
            with pytest.raises(MigrationError, match="no column key is configured"):
                await db.migrate()
            assert max((await db.backend.applied()).keys()) == MARKED - 1
            row = await db.backend.fetchrow("SELECT secret FROM webhooks WHERE id = 'w3'", ())
            assert row is not None and row[0] == f"{CANARY}-3"
        async with opened(where, KeyRing(KEY_A)) as db:
            assert CANARY.encode() not in await raw(db, "webhooks", "secret", "w3")
            hook = await db.auth.get_webhook(id="w3")
            assert hook is not None and hook.secret == f"{CANARY}-3"
            got = await db.integrations.get_integration(org_id="org", provider="slack")
            assert got is not None and got.config == {"token": CANARY}
            await db.backend.migrate_down(MIGRATIONS, target=MARKED - 1)
            row = await db.backend.fetchrow("SELECT secret FROM webhooks WHERE id = 'w3'", ())
            assert row is not None and row[0] == f"{CANARY}-3"
            row = await db.backend.fetchrow("SELECT config FROM integrations WHERE id = 'i0'", ())
            assert row is not None and CANARY in str(row[0])
            await db.migrate()  # and up again
            hook = await db.auth.get_webhook(id="w4")
            assert hook is not None and hook.secret == f"{CANARY}-4"


@pytest.mark.parametrize("page", [3, 5])
@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_marking_migration_seals_page_by_page_and_misses_no_row(
    backend: str,
    page: int,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The data step reads, seals and writes CRYPT_PAGE rows at a time (it read the whole
    column at once): across page boundaries, in row-key order (``w10`` before ``w2``),
    with a page that ends the table exactly (5), every row is sealed once and opens."""
    from aragora_repos.backends.postgres import migrate as pg_migrate
    from aragora_repos.backends.sqlite import connection as sqlite_connection

    monkeypatch.setattr(pg_migrate, "CRYPT_PAGE", page)
    monkeypatch.setattr(sqlite_connection, "CRYPT_PAGE", page)
    before = [m for m in MIGRATIONS if m.version < MARKED]
    with place(backend, tmp_path, request) as where:
        async with opened(where, KeyRing(KEY_A), migrate=False) as db:
            await db.backend.migrate(before)
            await plain_webhooks(db, range(1, 11))
        async with opened(where, KeyRing(KEY_A)) as db:
            for i in range(1, 11):
                assert CANARY.encode() not in await raw(db, "webhooks", "secret", f"w{i}")
                hook = await db.auth.get_webhook(id=f"w{i}")
                assert hook is not None and hook.secret == f"{CANARY}-{i}"
            await db.backend.migrate_down(MIGRATIONS, target=MARKED - 1)
            rows = await db.backend.fetch("SELECT id, secret FROM webhooks", ())
            assert sorted((r[0], r[1]) for r in rows) == sorted(
                (f"w{i}", f"{CANARY}-{i}") for i in range(1, 11)
            )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_paged_marking_migration_killed_leaves_all_or_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SIGKILL at random points of ``migrate up`` while it seals 3,000 values a page at a
    time: the pages share the migration's transaction, so after each kill the column is
    all plain (not applied) or all sealed (applied), never part of each."""
    rows = 3000
    before = [m for m in MIGRATIONS if m.version < MARKED]
    with place(backend, tmp_path, request) as where:
        async with opened(where, KeyRing(KEY_A), migrate=False) as db:
            await db.backend.migrate(before)
            await plain_webhooks(db, range(rows))
        env = {**os.environ, "ARAGORA_ENCRYPTION_KEY": _b64(KEY_A)}
        if backend == "postgres":
            target = ["--database-url", where]
        else:
            target, env["ARAGORA_DATA_DIR"] = [], where
        command = [sys.executable, "-m", "aragora_db", "migrate", *target, "up", "--no-backup"]
        rng = random.Random(3113)
        for _ in range(6):
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:  # a random point of the run (fault injection, not synchronisation)
                process.wait(timeout=rng.uniform(0.3, 2.5))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
            async with opened(where, KeyRing(KEY_A), migrate=False) as db:
                applied = max((await db.backend.applied()).keys()) >= MARKED
                stored = await db.backend.fetch("SELECT secret FROM webhooks", ())
                plain = sum(CANARY.encode() in bytes(str(r[0]), "utf-8") for r in stored)
                assert plain == (0 if applied else rows), (applied, plain)
                if applied:
                    break
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        async with opened(where, KeyRing(KEY_A), migrate=False) as db:
            hooks = await db.auth.list_webhooks_for_org(org_id="org")
            assert sorted(h.secret for h in hooks) == sorted(f"{CANARY}-{i}" for i in range(rows))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_rotation_is_online_and_leaves_every_value_under_the_new_key(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with place(backend, tmp_path, request) as where:
        async with opened(where, KeyRing(KEY_A)) as db:
            await fill(db, 60)
        rotated = KeyRing(KEY_B, [KEY_A])
        async with opened(where, rotated, migrate=False) as db:
            writes = 0

            async def application() -> None:
                # The application keeps writing (under B) while rotation runs.
                nonlocal writes
                for i in range(0, 60, 3):
                    await db.integrations.upsert_integration(
                        id="x",
                        org_id="org",
                        provider=f"p{i:04d}",
                        config={"new": i},
                        enabled=True,
                    )
                    writes += 1
                    await asyncio.sleep(0)

            report, _ = await asyncio.gather(
                rotate_keys(db.backend, MIGRATIONS, batch=7), application()
            )
            assert writes == 20
            assert report.key_id == key_id(KEY_B).hex()
            assert report.resealed["webhooks.secret"] == 60
            assert 40 <= report.resealed["integrations.config"] <= 60
            assert await key_ids(db) == {key_id(KEY_B)}
            again = await rotate_keys(db.backend, MIGRATIONS, batch=7)
            assert again.resealed == {
                "webhooks.secret": 0,
                "integrations.config": 0,
                "share_links.token": 0,
            }
        async with opened(where, KeyRing(KEY_B), migrate=False) as db:
            configs = {
                i.provider: i.config
                for i in await db.integrations.list_integrations_for_org(org_id="org")
            }
            assert configs == {
                f"p{i:04d}": ({"new": i} if i % 3 == 0 else {"token": f"{CANARY}-{i}", "n": i})
                for i in range(60)
            }
            hooks = await db.auth.list_webhooks_for_org(org_id="org")
            assert sorted(h.secret for h in hooks) == sorted(f"{CANARY}-{i}" for i in range(60))


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_rotation_killed_ten_times_then_resumed(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rows = 150
    with place(backend, tmp_path, request) as where:
        async with opened(where, KeyRing(KEY_A)) as db:
            await fill(db, rows)
        env = {
            **os.environ,
            "ARAGORA_ENCRYPTION_KEY": _b64(KEY_B),
            "ARAGORA_ENCRYPTION_PREVIOUS_KEYS": _b64(KEY_A),
        }
        if backend == "postgres":
            target = ["--database-url", where]
        else:
            target, env["ARAGORA_DATA_DIR"] = [], where
        command = [sys.executable, "-m", "aragora_db", *target, "rotate-keys", "--batch", "4"]
        rng = random.Random(2112)
        kills = 0
        for _ in range(10):
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            assert process.stdout is not None
            # A random number of committed batches, then SIGKILL wherever it is.
            for _ in range(rng.randrange(0, 6)):
                if not process.stdout.readline():
                    break
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += process.returncode == -signal.SIGKILL
        assert kills == 10
        async with opened(where, KeyRing(KEY_B, [KEY_A]), migrate=False) as db:
            partly = await key_ids(db)
            assert key_id(KEY_B) in partly  # the killed runs did commit batches
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "current column key: " + key_id(KEY_B).hex() in done.stdout
        async with opened(where, KeyRing(KEY_B), migrate=False) as db:
            assert await key_ids(db) == {key_id(KEY_B)}
            hooks = await db.auth.list_webhooks_for_org(org_id="org")
            assert sorted(h.secret for h in hooks) == sorted(f"{CANARY}-{i}" for i in range(rows))
            listed = await db.integrations.list_integrations_for_org(org_id="org")
            assert len(listed) == rows and all(
                i.config == {"token": f"{CANARY}-{int(i.provider[1:])}", "n": int(i.provider[1:])}
                for i in listed
            )


def test_key_ring_configuration_errors_never_show_a_key(tmp_path: Path) -> None:
    from aragora_repos import ConfigError

    canary = base64.b64encode(b"KEYCANARY" * 4).decode()  # 36 bytes: the wrong length
    for env in (
        {"ARAGORA_ENCRYPTION_KEY": canary},
        {"ARAGORA_ENCRYPTION_KEY": canary + "!"},
        {"ARAGORA_ENCRYPTION_KEY": _b64(KEY_A), "ARAGORA_ENCRYPTION_PREVIOUS_KEYS": canary},
        {"ARAGORA_ENCRYPTION_PREVIOUS_KEYS": _b64(KEY_A)},
        {"ARAGORA_ENCRYPTION_KEY": _b64(KEY_A), "ARAGORA_ENCRYPTION_KEY_FILE": "/nonexistent"},
        {"ARAGORA_ENCRYPTION_KEY_FILE": str(tmp_path / "missing")},
    ):
        with pytest.raises(ConfigError) as caught:
            Config.from_env(env)
        text = str(caught.value) + repr(caught.value)
        assert canary not in text and "KEYCANARY" not in text and _b64(KEY_A) not in text
        assert "ARAGORA_ENCRYPTION" in text
    key_file = tmp_path / "column.key"
    key_file.write_text(_b64(KEY_B) + "\n")
    cfg = Config.from_env(
        {
            "ARAGORA_ENCRYPTION_KEY_FILE": str(key_file),
            "ARAGORA_ENCRYPTION_PREVIOUS_KEYS": _b64(KEY_A),
        }
    )
    assert cfg.encryption.current_id == key_id(KEY_B)
    assert cfg.encryption.ids == {key_id(KEY_A), key_id(KEY_B)}
    shown = repr(cfg) + repr(cfg.encryption) + str(cfg.encryption)
    assert _b64(KEY_B) not in shown and KEY_B.hex() not in shown
    assert key_id(KEY_B).hex() in shown


def test_values_keep_their_type_and_hostile_content() -> None:
    ring = KeyRing(KEY_A, [KEY_B])
    for text in ("", "quote ' \" ;--", "line\nbreak", "nul\x00byte", "émile 🙂"):
        sealed = ring.seal_text(text, "t", "c", ("k", 1))
        assert ring.open_text(sealed, "t", "c", ("k", 1)) == text
        with pytest.raises(TamperedValue):
            ring.open_text(sealed, "t", "c", ("k", 2))
        with pytest.raises(TamperedValue):
            ring.open_text(sealed, "t", "other", ("k", 1))
    # The row key's parts cannot be shifted into each other: ("ab", "c") is not ("a", "bc").
    sealed = ring.seal_text("x", "t", "c", ("ab", "c"))
    with pytest.raises(TamperedValue):
        ring.open_text(sealed, "t", "c", ("a", "bc"))
    # An integer key and its text are different rows.
    sealed = ring.seal_text("x", "t", "c", (1,))
    with pytest.raises(TamperedValue):
        ring.open_text(sealed, "t", "c", ("1",))
    from aragora_repos.errors import DataError

    with pytest.raises(DataError):
        ring.seal_text("lone \ud800 surrogate", "t", "c", ("k",))
    sealed_json = ring.seal_json({"a": [1, None]}, "t", "c", ("k",))
    assert sealed_json is not None
    assert ring.open_json(sealed_json, "t", "c", ("k",)) == {"a": [1, None]}
    assert ring.seal_json(None, "t", "c", ("k",)) is None  # JSON null is SQL NULL
    # Two seals of one value differ (a fresh nonce each).
    assert ring.seal_text("x", "t", "c", ("k",)) != ring.seal_text("x", "t", "c", ("k",))


@pytest.mark.postgres
async def test_migrate_data_copies_sealed_values_that_open_on_postgresql(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SQLite to PostgreSQL: the sealed bytes travel as they are (BLOB to bytea) and open
    on the target, since table, column and row key are the same there; verify agrees."""
    from aragora_repos.tools.migrate_data import migrate_data

    keys = KeyRing(KEY_A)
    async with opened(str(tmp_path / "data"), keys) as db:
        await fill(db, 25)
        await share(db, 5)
        source = {h.id: h.secret for h in await db.auth.list_webhooks_for_org(org_id="org")}
    # An orphan (written with foreign keys off) that PostgreSQL refuses: its sealed secret
    # goes to the reject file, which must hold no more plaintext than the database.
    file = config(str(tmp_path / "data"), keys).sqlite_file
    with closing(sqlite3.connect(file)) as lite:
        lite.execute("PRAGMA foreign_keys = OFF")
        lite.execute(
            "INSERT INTO webhooks (id, org_id, url, secret, events) "
            "SELECT 'orphan', 'ghost', url, secret, events FROM webhooks WHERE id = 'w0003'"
        )
        lite.commit()
    rejects = tmp_path / "rejects.jsonl"
    with place("postgres", tmp_path, request) as where:
        async with opened(where, keys):
            pass  # the target's schema
        report = await migrate_data(file, where, reject_file=rejects)
        assert report.total_errors == 1
        assert report.tables["webhooks"].migrated == 25
        assert report.tables["integrations"].migrated == 25
        assert report.tables["share_links"].migrated == 5
        assert b"orphan" in rejects.read_bytes()
        assert on_disk(tmp_path, CANARY.encode()) == []  # nor the reject file or state
        async with opened(where, keys, migrate=False) as db:
            copied = {h.id: h.secret for h in await db.auth.list_webhooks_for_org(org_id="org")}
            assert copied == source
            got = await db.integrations.get_integration(org_id="org", provider="p0007")
            assert got is not None and got.config == {"token": f"{CANARY}-7", "n": 7}
            link = await db.share_links.get_active_share_link(token=f"{CANARY}-3")
            assert link is not None and link.token == f"{CANARY}-3"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_rotations_at_once_seal_each_value_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with place(backend, tmp_path, request) as where:
        async with opened(where, KeyRing(KEY_A)) as db:
            await fill(db, 80)
        ring = KeyRing(KEY_B, [KEY_A])
        async with (
            opened(where, ring, migrate=False) as one,
            opened(where, ring, migrate=False) as two,
        ):
            first, second = await asyncio.gather(
                rotate_keys(one.backend, MIGRATIONS, batch=5),
                rotate_keys(two.backend, MIGRATIONS, batch=5),
            )
            for column in ("webhooks.secret", "integrations.config"):
                assert first.resealed[column] + second.resealed[column] == 80, (first, second)
            assert await key_ids(one) == {key_id(KEY_B)}
            hooks = await one.auth.list_webhooks_for_org(org_id="org")
            assert sorted(h.secret for h in hooks) == sorted(f"{CANARY}-{i}" for i in range(80))


# --- share-link tokens: a deterministic column (sql/schema/0015_share_link_tokens.sql) ----

TOKENS = ("share_links", "token")


def sealed_token(keys: KeyRing, token: str) -> bytes:
    return keys.seal_text(token, *TOKENS, (), deterministic=True)


async def stored_tokens(db: Database) -> list[bytes]:
    rows = await db.backend.fetch("SELECT token FROM share_links ORDER BY token", ())
    return [bytes(r[0]) for r in rows]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_share_links_are_found_by_token_and_stored_sealed(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    keys = KeyRing(KEY_A)
    with place(backend, tmp_path, request) as where:
        async with opened(where, keys) as db:
            await share(db, 4)
            stored = await stored_tokens(db)
            assert len(stored) == 4
            assert all(t[0] == 2 and t[1:5] == key_id(KEY_A) for t in stored)
            assert not any(CANARY.encode() in t for t in stored)
            # Deterministic: the stored form is the lookup's, on either backend.
            assert sealed_token(keys, f"{CANARY}-1") in stored

            first = await db.share_links.get_active_share_link(token=f"{CANARY}-1")
            assert first is not None and first.token == f"{CANARY}-1" and first.view_count == 1
            again = await db.share_links.get_active_share_link(token=f"{CANARY}-1")
            assert again is not None and again.view_count == 2
            assert await db.share_links.get_active_share_link(token=f"{CANARY}-9") is None
            assert await db.share_links.revoke_share_link(token=f"{CANARY}-2") == 1
            assert await db.share_links.revoke_share_link(token=f"{CANARY}-2") == 0
            assert await db.share_links.get_active_share_link(token=f"{CANARY}-2") is None

            listed = await db.share_links.list_share_links_for_debate(debate_id="d1")
            assert sorted(s.token for s in listed) == [f"{CANARY}-{i}" for i in range(4)]
            # ORDER BY created_at, token: ties on created_at go in sealed order, the same
            # order on both backends (bytes compare alike), not the tokens' text order.
            order = [(s.created_at, sealed_token(keys, s.token)) for s in listed]
            assert order == sorted(order)
            streamed = [
                s async for s in db.share_links.list_share_links_for_debate_iter(debate_id="d1")
            ]
            assert streamed == listed

            with pytest.raises(UniqueViolation):
                await db.share_links.create_share_link(
                    token=f"{CANARY}-3",
                    debate_id="d1",
                    created_by=None,
                    visibility="public",
                    expires_at=None,
                )
            for hostile in (
                "",
                "'; DROP TABLE share_links; --",
                "a\nb",
                "nul\x00byte",
                "é🙂",
                "x" * 2048,
            ):
                await db.share_links.create_share_link(
                    token=hostile, debate_id="d1", created_by=None, visibility="v", expires_at=None
                )
                got = await db.share_links.get_active_share_link(token=hostile)
                assert got is not None and got.token == hostile
            with pytest.raises(DataError, match=r"share_links\.token"):
                await db.share_links.get_active_share_link(token="\ud800")
            # Random bytes do not compress: a key past PostgreSQL's index entry limit is
            # refused on both backends alike, before it is sent.
            with pytest.raises(DataError, match="at most 2048 bytes"):
                await db.share_links.create_share_link(
                    token="x" * 2049,
                    debate_id="d1",
                    created_by=None,
                    visibility="v",
                    expires_at=None,
                )


class RotatingRing(KeyRing):
    """A ring whose lookups run ``between`` after the first try: what a rotation running
    beside the application can do between two statements of one lookup."""

    def __init__(self, between: Callable[[], None], current: bytes, previous: list[bytes]) -> None:
        super().__init__(current, previous)
        self.between = between

    def lookup_text(self, value: str | None, table: str, column: str) -> Iterator[bytes | None]:
        tries = list(super().lookup_text(value, table, column))
        yield tries[0]
        self.between()
        yield from tries[1:]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_share_links_are_found_under_the_previous_key_during_rotation(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with place(backend, tmp_path, request) as where:
        async with opened(where, KeyRing(KEY_A)) as db:
            await share(db, 5)
        async with opened(where, KeyRing(KEY_B, [KEY_A]), migrate=False) as db:
            # Not rotated yet: each token is found under A, new ones are sealed under B.
            for i in range(5):
                got = await db.share_links.get_active_share_link(token=f"{CANARY}-{i}")
                assert got is not None and got.token == f"{CANARY}-{i}"
            await db.share_links.create_share_link(
                token="fresh", debate_id="d1", created_by=None, visibility="v", expires_at=None
            )
            assert await db.share_links.revoke_share_link(token=f"{CANARY}-4") == 1
            assert {t[1:5] for t in await stored_tokens(db)} == {key_id(KEY_A), key_id(KEY_B)}

        def rotate() -> None:
            # A whole rotation, from another connection, between the lookup's tries.
            async def run() -> None:
                async with opened(where, KeyRing(KEY_B, [KEY_A]), migrate=False) as other:
                    report = await rotate_keys(other.backend, MIGRATIONS)
                    resealed.append(report.resealed["share_links.token"])

            thread = threading.Thread(target=asyncio.run, args=(run(),))
            thread.start()
            thread.join()

        resealed: list[int] = []
        # The token is under A when the lookup tries B, and under B when it tries A: the
        # last try (B again) finds it.
        racing = RotatingRing(rotate, KEY_B, [KEY_A])
        async with opened(where, racing, migrate=False) as db:
            got = await db.share_links.get_active_share_link(token=f"{CANARY}-0")
            assert got is not None and got.view_count == 2
        assert resealed == [5]  # the rotation ran, between the tries (4 links and a revoked one)
        async with opened(where, KeyRing(KEY_B), migrate=False) as db:
            assert {t[1:5] for t in await stored_tokens(db)} == {key_id(KEY_B)}
            for token in [f"{CANARY}-{i}" for i in range(4)] + ["fresh"]:
                got = await db.share_links.get_active_share_link(token=token)
                assert got is not None and got.token == token
            assert await db.share_links.get_active_share_link(token=f"{CANARY}-4") is None


@pytest.mark.parametrize("backend", BACKENDS)
async def test_marking_migration_seals_existing_tokens_and_down_restores_them(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    version = next(m.version for m in MIGRATIONS if any(c.deterministic for c in m.up.crypts))
    with place(backend, tmp_path, request) as where:
        async with opened(where, KeyRing(KEY_A), migrate=False) as db:
            await db.backend.migrate([m for m in MIGRATIONS if m.version < version])
            await share(db, 0)
            for i in range(3):
                await db.backend.execute(
                    sql(db, "INSERT INTO share_links (token, debate_id) VALUES ($1, 'd1')"),
                    (f"{CANARY}-{i}",),
                )
            await db.migrate()
            assert not any(CANARY.encode() in t for t in await stored_tokens(db))
            got = await db.share_links.get_active_share_link(token=f"{CANARY}-2")
            assert got is not None and got.view_count == 1
            await db.backend.migrate_down(MIGRATIONS, target=version - 1)
            rows = await db.backend.fetch("SELECT token FROM share_links ORDER BY token", ())
            assert [r[0] for r in rows] == [f"{CANARY}-{i}" for i in range(3)]
