"""SQLite scenarios, sync and async: the generated repositories against raw sqlite3,
aiosqlite, SQLAlchemy 2 (Core and ORM, sync and async) and aiosql."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import aiosql
import aiosqlite
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from aragora_db import SyncDatabase, User, UserRole, connect, connect_sync
from aragora_db.audit import AppendAuditEventsParams
from aragora_repos import Config
from aragora_repos.codec import decode_timestamptz, encode_json, encode_timestamptz
from bench.harness import Contender, Scenario
from bench.pg import DETAILS, PREFS, AuthState, Event
from bench.stall import measure_stall

#: Filled after the scenarios run: the event-loop stall figures (bench/stall.py).
STALL: dict[str, float] = {}

AUTH_SQL = (
    "SELECT id, email, password_hash, password_salt, is_active, locked_until, "
    "failed_login_count FROM users WHERE id = ?"
)
USER_SQL = (
    "SELECT id, email, password_hash, password_salt, name, org_id, role, created_at, "
    "updated_at, last_login_at, is_active, email_verified, avatar_url, preferences, "
    "locked_until, failed_login_count, lockout_reason, last_activity_at, last_debate_at "
    "FROM users WHERE id = ?"
)
EVENTS_SQL = (
    "SELECT id, timestamp, user_id, org_id, action, resource_type, resource_id, "
    "details, ip_address, user_agent FROM audit_log WHERE org_id = ? "
    "ORDER BY timestamp DESC, id DESC LIMIT ? OFFSET ?"
)
BULK_SQL = (
    "INSERT INTO audit_log (timestamp, user_id, org_id, action, resource_type, "
    "resource_id, details, ip_address, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
AIOSQL = """
-- name: auth_state(id)^
SELECT id, email, password_hash, password_salt, is_active, locked_until, failed_login_count
FROM users WHERE id = :id;
"""


class Base(DeclarativeBase):
    pass


class UserORM(Base):
    """Timestamps are mapped as text: SQLAlchemy's SQLite DateTime does not read the
    ``+00:00`` suffix of the canonical form."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(primary_key=True)
    email: Mapped[str]
    password_hash: Mapped[str]
    password_salt: Mapped[str]
    name: Mapped[str]
    org_id: Mapped[str | None]
    role: Mapped[str]
    created_at: Mapped[str]
    updated_at: Mapped[str]
    last_login_at: Mapped[str | None]
    is_active: Mapped[bool]
    email_verified: Mapped[bool]
    avatar_url: Mapped[str | None]
    preferences: Mapped[Any] = mapped_column(sa.JSON)
    locked_until: Mapped[str | None]
    failed_login_count: Mapped[int]
    lockout_reason: Mapped[str | None]
    last_activity_at: Mapped[str | None]
    last_debate_at: Mapped[str | None]


class AuditORM(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    timestamp: Mapped[str]
    user_id: Mapped[str | None]
    org_id: Mapped[str | None]
    action: Mapped[str]
    resource_type: Mapped[str]
    resource_id: Mapped[str | None]
    details: Mapped[Any] = mapped_column(sa.JSON)
    ip_address: Mapped[str | None]
    user_agent: Mapped[str | None]


def seed(db: SyncDatabase) -> None:
    db.users.create_user(
        id="u0",
        email="u0@x",
        password_hash="h" * 60,
        password_salt="s" * 16,
        name="Owner",
        org_id=None,
        role=UserRole.OWNER,
    )
    db.orgs.create_organization(
        id="org", name="Org", slug="org", tier="enterprise", owner_id="u0", settings=PREFS
    )
    with db.transaction():
        for i in range(1, 1000):
            db.users.create_user(
                id=f"u{i}",
                email=f"u{i}@x",
                password_hash="h" * 60,
                password_salt="s" * 16,
                name=f"User {i}",
                org_id="org",
                role=UserRole.MEMBER,
            )
            db.users.update_user_profile(name=None, avatar_url=None, preferences=PREFS, id=f"u{i}")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    db.audit.append_audit_events(
        [
            AppendAuditEventsParams(
                base + timedelta(seconds=i),
                f"u{i % 1000}",
                "org",
                "debate",
                "debate",
                f"d{i}",
                DETAILS,
                "10.0.0.1",
                "bench",
            )
            for i in range(1000)
        ]
    )


def _event(r: Any) -> Event:
    return Event(
        r[0], decode_timestamptz(r[1]), r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9]
    )


@asynccontextmanager
async def scenarios(directory: Path) -> AsyncIterator[list[Scenario]]:
    config = Config(data_dir=directory)
    sync = connect_sync(config)
    sync.migrate()
    seed(sync)
    adb = await connect(config)
    path = str(config.sqlite_file)
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    # A bench database: the bulk scenario empties its rows between turns, which the
    # append-only audit log would refuse.
    raw.execute("DROP TRIGGER audit_log_append_only_delete")
    aio = await aiosqlite.connect(path, isolation_level=None)
    engine = sa.create_engine(f"sqlite:///{path}")
    aengine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    queries = aiosql.from_str(AIOSQL, "sqlite3")
    # held for the run, in autocommit (SQLite's driver-level BEGIN is not issued)
    held = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        yield _build(sync, adb, raw, aio, engine, aengine, queries, held)
        STALL.update(await measure_stall(adb, config.sqlite_file))
    finally:
        held.close()
        await aio.close()
        raw.close()
        engine.dispose()
        await aengine.dispose()
        await adb.close()
        sync.close()


def _build(
    sync: SyncDatabase,
    adb: Any,
    raw: sqlite3.Connection,
    aio: Any,
    engine: Any,
    aengine: Any,
    queries: Any,
    held: Any,
) -> list[Scenario]:
    """As for PostgreSQL: each library through its pool and on a held connection where
    the two differ, every result typed with the hand-written mapping."""
    out: list[Scenario] = []
    text_auth = sa.text(AUTH_SQL.replace("?", ":id"))

    def raw_auth() -> AuthState:
        r = raw.execute(AUTH_SQL, ("u42",)).fetchone()
        return AuthState(
            r[0],
            r[1],
            r[2],
            r[3],
            bool(r[4]),
            None if r[5] is None else decode_timestamptz(r[5]),
            r[6],
        )

    async def aiosqlite_auth() -> AuthState:
        rows = await aio.execute_fetchall(AUTH_SQL, ("u42",))
        r = rows[0]
        return AuthState(
            r[0],
            r[1],
            r[2],
            r[3],
            bool(r[4]),
            None if r[5] is None else decode_timestamptz(r[5]),
            r[6],
        )

    def typed_auth(r: Any) -> AuthState:
        return AuthState(
            r[0],
            r[1],
            r[2],
            r[3],
            bool(r[4]),
            None if r[5] is None else decode_timestamptz(r[5]),
            r[6],
        )

    def sa_core_auth() -> AuthState:
        with engine.connect() as conn:
            return typed_auth(conn.execute(text_auth, {"id": "u42"}).one())

    def sa_core_held_auth() -> AuthState:
        return typed_auth(held.execute(text_auth, {"id": "u42"}).one())

    def aiosql_auth() -> AuthState:
        return typed_auth(queries.auth_state(raw, id="u42"))

    def sa_orm_auth() -> Any:
        with Session(engine) as session:
            return session.get(UserORM, "u42")

    async def sa_async_core_auth() -> AuthState:
        async with aengine.connect() as conn:
            return typed_auth((await conn.execute(text_auth, {"id": "u42"})).one())

    async def sa_async_orm_auth() -> Any:
        async with AsyncSession(aengine) as session:
            return await session.get(UserORM, "u42")

    out.append(
        Scenario(
            "sqlite",
            "fetch one row by key (scalar columns)",
            "raw sqlite3",
            [
                Contender("raw sqlite3", raw_auth),
                Contender("generated sync", partial(sync.users.get_user_auth_state, id="u42")),
                Contender("generated async", partial(adb.users.get_user_auth_state, id="u42")),
                Contender("aiosqlite", aiosqlite_auth),
                Contender("SQLAlchemy Core sync", sa_core_auth),
                Contender("SQLAlchemy Core sync (held connection)", sa_core_held_auth),
                Contender("SQLAlchemy ORM sync", sa_orm_auth),
                Contender("SQLAlchemy Core async", sa_async_core_auth),
                Contender("SQLAlchemy ORM async", sa_async_orm_auth),
                Contender("aiosql sync", aiosql_auth),
            ],
            inner=400,
            target={"generated sync": 1.05, "generated async": 3.0},
        )
    )

    def raw_user() -> User:
        r = raw.execute(USER_SQL, ("u42",)).fetchone()
        return User(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            UserRole(r[6]),
            decode_timestamptz(r[7]),
            decode_timestamptz(r[8]),
            None if r[9] is None else decode_timestamptz(r[9]),
            bool(r[10]),
            bool(r[11]),
            r[12],
            json.loads(r[13]),
            None if r[14] is None else decode_timestamptz(r[14]),
            r[15],
            r[16],
            None if r[17] is None else decode_timestamptz(r[17]),
            None if r[18] is None else decode_timestamptz(r[18]),
        )

    def raw_user_plain() -> Any:
        return raw.execute(USER_SQL, ("u42",)).fetchone()

    out.append(
        Scenario(
            "sqlite",
            "fetch one row by key (JSON, boolean, timestamp conversion)",
            "raw sqlite3 (no conversion)",
            [
                Contender("raw sqlite3 (no conversion)", raw_user_plain),
                Contender("raw sqlite3 + hand-written User mapping", raw_user),
                Contender("generated sync", partial(sync.users.get_user_by_id, id="u42")),
                Contender("generated async", partial(adb.users.get_user_by_id, id="u42")),
            ],
            inner=400,
            target={"generated sync": 1.45},
        )
    )

    def raw_events() -> list[Event]:
        return [_event(r) for r in raw.execute(EVENTS_SQL, ("org", 1000, 0)).fetchall()]

    text_events = sa.text(
        EVENTS_SQL.replace("?", ":o", 1).replace("?", ":l", 1).replace("?", ":f", 1)
    )

    def sa_core_events() -> Any:
        with engine.connect() as conn:
            return [
                (r, json.loads(r[7]))
                for r in conn.execute(text_events, {"o": "org", "l": 1000, "f": 0}).all()
            ]

    def sa_orm_events() -> Any:
        with Session(engine) as session:
            stmt = (
                sa.select(AuditORM)
                .where(AuditORM.org_id == "org")
                .order_by(AuditORM.timestamp.desc(), AuditORM.id.desc())
                .limit(1000)
            )
            return session.scalars(stmt).all()

    async def aiosqlite_events() -> list[Event]:
        return [_event(r) for r in await aio.execute_fetchall(EVENTS_SQL, ("org", 1000, 0))]

    out.append(
        Scenario(
            "sqlite",
            "fetch 1,000 rows (JSON decoded)",
            "raw sqlite3",
            [
                Contender("raw sqlite3", raw_events),
                Contender(
                    "generated sync",
                    partial(sync.audit.list_audit_events_by_org, org_id="org", lim=1000, off=0),
                ),
                Contender(
                    "generated async",
                    partial(adb.audit.list_audit_events_by_org, org_id="org", lim=1000, off=0),
                ),
                Contender("aiosqlite", aiosqlite_events),
                Contender("SQLAlchemy Core sync", sa_core_events),
                Contender("SQLAlchemy ORM sync", sa_orm_events),
            ],
            inner=5,
            unit="1,000 rows",
        )
    )

    ts = datetime(2026, 2, 1, tzinfo=UTC)
    rows = [
        AppendAuditEventsParams(
            ts, f"u{i % 1000}", "bulk", "debate", "debate", f"d{i}", DETAILS, None, None
        )
        for i in range(100_000)
    ]

    def raw_bulk() -> None:
        encoded = [
            (
                encode_timestamptz(r.timestamp),
                r.user_id,
                r.org_id,
                r.action,
                r.resource_type,
                r.resource_id,
                encode_json(r.details),
                r.ip_address,
                r.user_agent,
            )
            for r in rows
        ]
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany(BULK_SQL, encoded)
        raw.execute("COMMIT")

    async def aiosqlite_bulk() -> None:
        encoded = [
            (
                encode_timestamptz(r.timestamp),
                r.user_id,
                r.org_id,
                r.action,
                r.resource_type,
                r.resource_id,
                encode_json(r.details),
                r.ip_address,
                r.user_agent,
            )
            for r in rows
        ]
        await aio.execute("BEGIN IMMEDIATE")
        await aio.executemany(BULK_SQL, encoded)
        await aio.execute("COMMIT")

    def sa_core_bulk() -> None:
        table = sa.table(
            "audit_log",
            *(
                sa.column(c)
                for c in (
                    "timestamp",
                    "user_id",
                    "org_id",
                    "action",
                    "resource_type",
                    "resource_id",
                    "details",
                    "ip_address",
                    "user_agent",
                )
            ),
        )
        with engine.begin() as conn:
            conn.execute(
                sa.insert(table),
                [
                    {
                        "timestamp": encode_timestamptz(r.timestamp),
                        "user_id": r.user_id,
                        "org_id": r.org_id,
                        "action": r.action,
                        "resource_type": r.resource_type,
                        "resource_id": r.resource_id,
                        "details": encode_json(r.details),
                        "ip_address": None,
                        "user_agent": None,
                    }
                    for r in rows
                ],
            )

    out.append(
        Scenario(
            "sqlite",
            "bulk insert 100,000 rows",
            "raw sqlite3 executemany",
            [
                Contender("raw sqlite3 executemany", raw_bulk),
                Contender(
                    "generated sync :copyfrom", partial(sync.audit.append_audit_events, rows)
                ),
                Contender(
                    "generated async :copyfrom", partial(adb.audit.append_audit_events, rows)
                ),
                Contender("aiosqlite executemany", aiosqlite_bulk),
                Contender("SQLAlchemy Core sync", sa_core_bulk),
            ],
            inner=1,
            unit="100,000 rows",
            per_call_items=100_000,
            reset=lambda: raw.execute("DELETE FROM audit_log WHERE org_id = 'bulk'"),
            target={"generated sync :copyfrom": 1.05},
        )
    )
    return out
