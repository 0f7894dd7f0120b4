"""Encrypted SQLite (SQLCipher): the same runtime code on an encrypted file, a canary
value never on disk in the clear, clear errors for wrong, missing and unexpected keys,
the key never shown, and encrypt / decrypt / rekey that are atomic under SIGKILL."""

from __future__ import annotations

import asyncio
import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from aragora_db import MIGRATIONS, UserRole, connect, connect_sync
from aragora_db.__main__ import main as cli_main
from aragora_db.schema import EXPECTED
from aragora_repos import Config, ConfigError, DatabaseError, FileError
from aragora_repos.backends.sqlite import Opener, get_encrypted_connection
from aragora_repos.backends.sqlite.opener import PLAIN_HEADER
from aragora_repos.backup import table_counts
from aragora_repos.config import SqliteKey
from aragora_repos.errors import EncryptionError
from aragora_repos.tools.adopt import adopt
from aragora_repos.tools.backup_sets import restore, take_backup
from aragora_repos.tools.cipher import SUFFIX, change_key
from aragora_repos.tools.layout import consolidate
from aragora_repos.tools.migrate_data.sqlite_target import copy_into_sqlite
from tests.migrate_data import legacy

KEY_TEXT = "KEYCANARY-5e1f 'quoted' \"double\" ;--"
KEY = SqliteKey(KEY_TEXT)
VALUE = "VALUECANARY-9c2d41"
ROOT = Path(__file__).resolve().parent.parent.parent


def on_disk(folder: Path, needle: str) -> list[Path]:
    """Every file under ``folder`` whose bytes hold ``needle`` (UTF-8)."""
    raw = needle.encode()
    return [p for p in folder.rglob("*") if p.is_file() and raw in p.read_bytes()]


def _add_user(db_path: Path, key: SqliteKey | None, uid: str, email: str) -> None:
    with connect_sync(Config(data_dir=db_path, sqlite_key=key)) as db:
        db.migrate()
        db.users.create_user(
            id=uid,
            email=email,
            password_hash="h",
            password_salt=VALUE,
            name=uid,
            org_id=None,
            role=UserRole.MEMBER,
        )


def test_every_runtime_path_on_an_encrypted_file_leaves_no_plaintext(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path, sqlite_key=KEY)

    async def go() -> None:
        db = await connect(config)
        await db.migrate()  # migrations (with their pre-migration backup path)
        for n in range(50):  # the writer thread
            await db.users.create_user(
                id=f"u{n}",
                email=f"{VALUE}-{n}@example.com",
                password_hash=VALUE,
                password_salt=VALUE,
                name=VALUE,
                org_id=None,
                role=UserRole.MEMBER,
            )
        # An inline read on the event loop's reader, a list, and a stream of its own.
        found = await db.users.get_user_by_email(email=f"{VALUE}-7@example.com")
        assert found is not None and found.name == VALUE
        assert len(await db.users.get_users_by_ids(ids=[f"u{n}" for n in range(50)])) == 50
        streamed = [u.id async for u in db.users.get_users_by_ids_iter(ids=["u1", "u2"])]
        assert sorted(streamed) == ["u1", "u2"]
        # Still open, so the WAL holds the writes.
        assert (tmp_path / "aragora.db-wal").stat().st_size > 0
        assert on_disk(tmp_path, VALUE) == []
        await db.close()

    asyncio.run(go())
    report = asyncio.run(take_backup(config, verify=True))
    assert on_disk(tmp_path, VALUE) == []
    assert on_disk(tmp_path, KEY_TEXT) == []
    copy = report.folder / "aragora.db"
    assert copy.read_bytes()[:16] != PLAIN_HEADER  # the backup stays encrypted
    with pytest.raises(EncryptionError):
        Opener().connect(copy, read_only=True)
    # The sync API, and the seeds' helper, open the same file with the same key.
    with connect_sync(config) as sync:
        assert sync.users.get_user_by_id(id="u3") is not None
    conn = get_encrypted_connection(config.sqlite_file, KEY_TEXT)
    try:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 50
    finally:
        conn.close()
    # The sqlcipher shell's way: the passphrase, with SQLCipher 4's own key derivation.
    from sqlcipher3 import dbapi2  # type: ignore[import-untyped]

    raw = dbapi2.connect(str(config.sqlite_file))
    raw.execute("PRAGMA key = '" + KEY_TEXT.replace("'", "''") + "'")
    assert raw.execute("SELECT count(*) FROM users").fetchone()[0] == 50
    raw.close()


def test_restore_of_an_encrypted_backup(tmp_path: Path) -> None:
    _add_user(tmp_path, KEY, "u1", "a@example.com")
    config = Config(data_dir=tmp_path, sqlite_key=KEY)
    taken = asyncio.run(take_backup(config))
    _add_user(tmp_path, KEY, "u2", "b@example.com")
    done = asyncio.run(restore(config, taken.folder))
    assert done.restored["aragora.db"]["users"] == 1
    with connect_sync(config) as db:
        assert db.users.get_user_by_id(id="u2") is None
    # A copy of the other kind is refused, naming what to set.
    with pytest.raises(DatabaseError, match="encrypted"):
        asyncio.run(restore(Config(data_dir=tmp_path), taken.folder))


def test_wrong_missing_and_unexpected_keys_are_clear_errors(tmp_path: Path) -> None:
    _add_user(tmp_path / "enc", KEY, "u1", "a@example.com")
    _add_user(tmp_path / "plain", None, "u1", "a@example.com")
    enc, plain = tmp_path / "enc" / "aragora.db", tmp_path / "plain" / "aragora.db"
    cases = [
        (Config(data_dir=tmp_path / "enc", sqlite_key=SqliteKey("wrong")), "does not open it"),
        (Config(data_dir=tmp_path / "enc"), "is encrypted"),
        (Config(data_dir=tmp_path / "plain", sqlite_key=KEY), "plain (not encrypted)"),
    ]
    for config, says in cases:
        for sync in (True, False):
            with pytest.raises(EncryptionError) as caught:
                if sync:
                    connect_sync(config).close()
                else:
                    asyncio.run(_open_close(config))
            message = str(caught.value)
            assert says in message and str(config.sqlite_file) in message, message
            assert KEY_TEXT not in message
    assert enc.read_bytes()[:16] != PLAIN_HEADER and plain.read_bytes()[:16] == PLAIN_HEADER


async def _open_close(config: Config) -> None:
    db = await connect(config)
    await db.close()


def test_configuration_of_the_key(tmp_path: Path) -> None:
    keyfile = tmp_path / "key"
    keyfile.write_bytes(KEY_TEXT.encode() + b"\n")
    config = Config.from_env(
        {"ARAGORA_SQLITE_ENCRYPTION": "1", "ARAGORA_SQLITE_KEY_FILE": str(keyfile)}
    )
    assert config.sqlite_key == KEY  # one trailing newline is not part of the key
    shown = repr(config) + str(config) + repr(config.sqlite_key) + repr(Opener(KEY))
    assert KEY_TEXT not in shown and "KEYCANARY" not in shown and "encrypted" in shown
    refusals = [
        ({"ARAGORA_SQLITE_ENCRYPTION": "1"}, "ARAGORA_SQLITE_KEY"),
        ({"ARAGORA_SQLITE_KEY": KEY_TEXT}, "ARAGORA_SQLITE_ENCRYPTION is not"),
        ({"ARAGORA_SQLITE_ENCRYPTION": "maybe"}, "expected 1 or 0"),
        (
            {
                "ARAGORA_SQLITE_ENCRYPTION": "1",
                "ARAGORA_SQLITE_KEY": "a",
                "ARAGORA_SQLITE_KEY_FILE": str(keyfile),
            },
            "not both",
        ),
        (
            {"ARAGORA_SQLITE_ENCRYPTION": "1", "ARAGORA_SQLITE_KEY_FILE": str(tmp_path / "no")},
            "cannot read",
        ),
    ]
    for env, says in refusals:
        with pytest.raises(ConfigError, match=says) as caught:
            Config.from_env(env)
        assert KEY_TEXT not in str(caught.value)
    assert Config.from_env({"ARAGORA_SQLITE_ENCRYPTION": "0"}).sqlite_key is None


def _cli(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("ARAGORA_SQLITE_ENCRYPTION", "ARAGORA_SQLITE_KEY", "ARAGORA_SQLITE_NEW_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli_main(argv)
    return f"exit {code}\n{out.getvalue()}{err.getvalue()}"


def test_encrypt_rekey_decrypt_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    _add_user(data, None, "u1", f"{VALUE}@example.com")
    base = {"ARAGORA_DATA_DIR": str(data)}
    on = {**base, "ARAGORA_SQLITE_ENCRYPTION": "1", "ARAGORA_SQLITE_KEY": KEY_TEXT}
    outputs = [_cli(["encrypt"], on, monkeypatch)]
    assert outputs[-1].startswith("exit 0"), outputs[-1]
    live = [p for p in on_disk(data, VALUE) if "backup" not in p.parts]
    assert live == []  # the backup taken first holds the plain file, as it was
    new = "NEWKEYCANARY-77"
    outputs.append(_cli(["rekey"], {**on, "ARAGORA_SQLITE_NEW_KEY": new}, monkeypatch))
    assert outputs[-1].startswith("exit 0"), outputs[-1]
    outputs.append(_cli(["check"], on, monkeypatch))  # the old key no longer opens it
    assert outputs[-1].startswith("exit 1") and "does not open it" in outputs[-1]
    after = {**base, "ARAGORA_SQLITE_ENCRYPTION": "1", "ARAGORA_SQLITE_KEY": new}
    outputs.append(_cli(["check"], after, monkeypatch))
    assert outputs[-1].startswith("exit 0"), outputs[-1]
    outputs.append(_cli(["decrypt"], after, monkeypatch))
    assert outputs[-1].startswith("exit 0"), outputs[-1]
    outputs.append(_cli(["encrypt"], base, monkeypatch))  # no key: says what to set
    assert outputs[-1].startswith("exit 1") and "ARAGORA_SQLITE_KEY" in outputs[-1]
    with connect_sync(Config(data_dir=data)) as db:
        user = db.users.get_user_by_id(id="u1")
        assert user is not None and user.password_salt == VALUE
    everything = "\n".join(outputs)
    assert KEY_TEXT not in everything and new not in everything
    # Files created under umask 022 are still private.
    assert (data / "aragora.db").stat().st_mode & 0o077 == 0


def test_a_database_in_use_is_never_swapped(tmp_path: Path) -> None:
    _add_user(tmp_path, KEY, "u1", "a@example.com")
    config = Config(data_dir=tmp_path, sqlite_key=KEY)
    before = config.sqlite_file.read_bytes()
    with connect_sync(config) as db:  # an application holding it open
        with pytest.raises(FileError, match="another process has it open"):
            change_key(config, "rekey", new_key=SqliteKey("other"), take_backup=False)
        assert db.users.get_user_by_id(id="u1") is not None
    assert not Path(str(config.sqlite_file) + SUFFIX).exists()
    with connect_sync(config) as db:
        assert db.users.get_user_by_id(id="u1") is not None
    assert len(before) > 0


def test_an_open_that_races_a_swap_opens_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that opened the file while it was being replaced reopens it, so its
    writes never land in the replaced file."""
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    for path, mark in ((first, "old"), (second, "new")):
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE t (v TEXT)")
        db.execute("INSERT INTO t VALUES (?)", (mark,))
        db.commit()
        db.close()
    opener = Opener()
    real = Opener._connect
    swapped: list[bool] = []

    def racing(
        self: Opener, name: str, memory: bool, read_only: bool, kwargs: dict[str, Any]
    ) -> sqlite3.Connection:
        conn = real(self, name, memory, read_only, kwargs)
        if not swapped:  # the swap lands after this open, before it is used
            os.replace(second, first)
            swapped.append(True)
        return conn

    monkeypatch.setattr(Opener, "_connect", racing)
    conn = opener.connect(first)
    try:
        assert conn.execute("SELECT v FROM t").fetchone() == ("new",)
    finally:
        conn.close()


_REKEY_LOOP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from aragora_repos.config import Config, SqliteKey
    from aragora_repos.tools.cipher import change_key

    data, keys = Path(sys.argv[1]), [SqliteKey(k) for k in sys.argv[2:4]]
    n = 0
    while True:
        old, new = keys[n % 2], keys[(n + 1) % 2]
        change_key(Config(data_dir=data, sqlite_key=old), "rekey", new_key=new,
                   take_backup=False)
        n += 1
        print(n, flush=True)
    """
)


def test_rekey_killed_at_random_points_loses_nothing(tmp_path: Path) -> None:
    keys = ["key-one", "key-two"]
    with connect_sync(Config(data_dir=tmp_path, sqlite_key=SqliteKey(keys[0]))) as db:
        db.migrate()
        for n in range(300):
            db.users.create_user(
                id=f"u{n}",
                email=f"{n}@example.com",
                password_hash="h" * 50,
                password_salt=VALUE,
                name="",
                org_id=None,
                role=UserRole.MEMBER,
            )
    path = tmp_path / "aragora.db"
    with closing(Opener(SqliteKey(keys[0])).connect(path)) as conn:
        expected = table_counts(conn)
    rounds = int(os.environ.get("ARAGORA_ADVERSARIAL_ROUNDS", "10"))
    rng = random.Random(1234)
    for _ in range(rounds):
        child = subprocess.Popen(
            [sys.executable, "-c", _REKEY_LOOP, str(tmp_path), *keys],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert child.stdout is not None
        for _ in range(rng.randint(0, 2)):  # let some swaps finish, then kill mid-way
            child.stdout.readline()
        child.send_signal(signal.SIGKILL)
        child.wait()
        opened = []
        for key in keys:
            try:
                conn = Opener(SqliteKey(key)).connect(path, read_only=True)
            except EncryptionError:
                continue
            with closing(conn):
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                assert table_counts(conn) == expected
            opened.append(key)
        assert len(opened) == 1, opened  # exactly one of the two keys: old or new
        if opened[0] != keys[0]:
            keys.reverse()
    # The next run removes a killed run's leftover and completes.
    change_key(
        Config(data_dir=tmp_path, sqlite_key=SqliteKey(keys[0])),
        "rekey",
        new_key=SqliteKey(keys[1]),
        take_backup=False,
    )
    assert not Path(str(path) + SUFFIX).exists()
    with closing(Opener(SqliteKey(keys[1])).connect(path, read_only=True)) as conn:
        assert table_counts(conn) == expected


def test_the_data_tools_keep_encrypted_data_encrypted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """adopt, consolidate and migrate-data into and out of encrypted files: no value of
    the sources in the clear anywhere under the encrypted data directory."""
    source = legacy.legacy_layout(tmp_path / "legacy")
    users = sqlite3.connect(source / "users.db")
    email = users.execute("SELECT email FROM users LIMIT 1").fetchone()[0]
    users.close()
    monkeypatch.setenv("ARAGORA_SQLITE_ENCRYPTION", "1")
    monkeypatch.setenv("ARAGORA_SQLITE_KEY", KEY_TEXT)
    target = Config(data_dir=tmp_path / "target", sqlite_key=KEY)
    report = asyncio.run(adopt(source, target, MIGRATIONS, EXPECTED, verify=True))
    assert report.exit_code() == 0, report.render()
    assert on_disk(tmp_path / "target", email) == []
    with connect_sync(target) as db:
        assert db.users.get_user_by_email(email=email) is not None
    # consolidate: plain legacy files into encrypted consolidated files.
    result = consolidate(source, tmp_path / "consolidated", action="migrate", take_backup=False)
    assert result.ok
    assert on_disk(tmp_path / "consolidated", email) == []
    assert (tmp_path / "consolidated" / "core.db").read_bytes()[:16] != PLAIN_HEADER
    assert consolidate(source, tmp_path / "consolidated", action="verify").ok
    # migrate-data: an encrypted source into an encrypted project database.
    other = Config(data_dir=tmp_path / "other", sqlite_key=KEY)
    with connect_sync(other) as db:
        db.migrate()
    copied = copy_into_sqlite(target.sqlite_file, other.sqlite_file, EXPECTED, verify=True)
    assert copied.verified, copied.render()
    with connect_sync(other) as db:
        assert db.users.get_user_by_email(email=email) is not None
    assert on_disk(tmp_path / "other", email) == []


_REKEY_ONCE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from aragora_repos.config import Config, SqliteKey
    from aragora_repos.errors import DatabaseError
    from aragora_repos.tools import cipher

    data, old, new, hold = sys.argv[1:5]
    if hold == "hold":  # stop with the new file written, until the test says go
        verify = cipher._verify

        def held(*args):
            (Path(data) / "ready").touch()
            while not (Path(data) / "go").exists():
                time.sleep(0.001)
            return verify(*args)

        cipher._verify = held
    try:
        cipher.change_key(Config(data_dir=Path(data), sqlite_key=SqliteKey(old)), "rekey",
                          new_key=SqliteKey(new), take_backup=False)
    except DatabaseError as exc:
        print(f"refused: {exc}")
        sys.exit(1)
    """
)


def test_a_second_rekey_started_mid_export_is_refused(tmp_path: Path) -> None:
    """Found by attack: a second rekey, started while the first was exporting, took the
    first one's <file>.rekey for a killed run's leftover and removed it, so the first
    failed with "cannot verify". One run per data directory at a time now."""
    with connect_sync(Config(data_dir=tmp_path, sqlite_key=SqliteKey("k0"))) as db:
        db.migrate()
        db.connection.executemany(
            "INSERT INTO users (id, email, password_hash, password_salt, name, role) "
            "VALUES (?, ?, 'h', 's', '', 'member')",
            [(f"u{i}", f"{i}@x") for i in range(2_000)],
        )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [sys.executable, "-c", _REKEY_ONCE, str(tmp_path), "k0", "k1", "hold"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    while not (tmp_path / "ready").exists():  # the first has written <file>.rekey
        assert first.poll() is None, first.communicate()[0]
        time.sleep(0.001)
    assert Path(str(tmp_path / "aragora.db") + SUFFIX).exists()
    second = subprocess.run(
        [sys.executable, "-c", _REKEY_ONCE, str(tmp_path), "k0", "k2", "go"],
        capture_output=True,
        text=True,
        env=env,
    )
    (tmp_path / "go").touch()
    out, _ = first.communicate()
    assert first.returncode == 0, out
    assert second.returncode == 1 and "another encrypt, decrypt or rekey" in second.stdout
    with closing(Opener(SqliteKey("k1")).connect(tmp_path / "aragora.db", read_only=True)) as c:
        assert table_counts(c)["users"] == 2_000
