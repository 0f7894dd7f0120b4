"""The synchronous SQLite API: same repositories, same results, for scripts and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aragora_db import SyncDatabase, UserRole, connect_sync
from aragora_db.audit import AppendAuditEventsParams
from aragora_db.migrations import MIGRATIONS
from aragora_repos import Config, ConfigError, Isolation, Secret, TransactionError, UniqueViolation
from tests.conftest import SQLITE_KEY


def add_user(db: SyncDatabase, uid: str, email: str) -> None:
    db.users.create_user(
        id=uid,
        email=email,
        password_hash="h",
        password_salt="s",
        name="",
        org_id=None,
        role=UserRole.MEMBER,
    )


@pytest.fixture
def sync_db(tmp_path: Path) -> Iterator[SyncDatabase]:
    with connect_sync(Config(data_dir=tmp_path, sqlite_key=SQLITE_KEY)) as db:
        assert db.migrate() == [m.version for m in MIGRATIONS]
        yield db


def test_crud_and_types(sync_db: SyncDatabase) -> None:
    user = sync_db.users.create_user(
        id="u1",
        email="a@b.c",
        password_hash="h",
        password_salt="s",
        name="Ann",
        org_id=None,
        role=UserRole.VIEWER,
    )
    assert user is not None and user.role is UserRole.VIEWER and user.is_active is True
    assert sync_db.users.get_user_by_email(email="a@b.c") == user
    with pytest.raises(UniqueViolation):
        add_user(sync_db, "u2", "a@b.c")
    rows = [
        AppendAuditEventsParams(
            datetime(2024, 1, 1, tzinfo=UTC), "u1", None, "x", "user", None, {"i": i}, None, None
        )
        for i in range(100)
    ]
    assert sync_db.audit.append_audit_events(rows) == 100
    events = sync_db.audit.list_audit_events_by_user(user_id="u1", lim=3)
    assert [e.details for e in events] == [{"i": 99}, {"i": 98}, {"i": 97}]


def test_transactions_and_savepoints(sync_db: SyncDatabase) -> None:
    with pytest.raises(ZeroDivisionError), sync_db.transaction():
        add_user(sync_db, "u1", "a@b.c")
        _ = 1 / 0
    assert sync_db.users.count_active_users() == 0
    with sync_db.transaction():
        add_user(sync_db, "u1", "a@b.c")
        with pytest.raises(UniqueViolation), sync_db.transaction():
            add_user(sync_db, "u2", "b@b.c")
            add_user(sync_db, "u3", "b@b.c")
        assert sync_db.connection.in_transaction
    assert not sync_db.connection.in_transaction
    assert [u.id for u in sync_db.users.get_users_by_ids(ids=["u1", "u2", "u3"])] == ["u1"]
    with pytest.raises(TransactionError, match="always serializable"):
        sync_db.transaction(isolation=Isolation.REPEATABLE_READ).__enter__()


def test_failed_batch_inserts_nothing(sync_db: SyncDatabase) -> None:
    good = AppendAuditEventsParams(
        datetime(2024, 1, 1, tzinfo=UTC), "u", None, "x", "t", None, {}, None, None
    )
    bad = AppendAuditEventsParams(
        datetime(2024, 1, 1, tzinfo=UTC),
        "u",
        None,
        None,  # type: ignore[arg-type]
        "t",
        None,
        {},
        None,
        None,
    )
    with pytest.raises(Exception, match="NOT NULL"):
        sync_db.audit.append_audit_events([good, good, bad])
    assert sync_db.audit.list_audit_events_by_user(user_id="u", lim=10) == []


def test_files_live_under_the_data_dir_in_wal_mode(tmp_path: Path) -> None:
    with connect_sync(Config.from_env({"ARAGORA_DATA_DIR": str(tmp_path / "nomic")})) as db:
        db.migrate()
        assert db.connection.fetchone("PRAGMA journal_mode", ()) == ("wal",)
        assert db.connection.fetchone("PRAGMA foreign_keys", ()) == (1,)
    assert (tmp_path / "nomic" / "aragora.db").exists()


def test_sync_api_refuses_postgres() -> None:
    with pytest.raises(ConfigError, match="sync API is for sqlite"):
        connect_sync(Config(backend="postgres", dsn=Secret("postgresql://u@h/db")))
