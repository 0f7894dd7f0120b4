"""PostgreSQL scenarios: the generated repositories against raw asyncpg, SQLAlchemy 2
(Core and ORM, async) and aiosql, on the Aragora schema."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import aiosql
import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aragora_db import Database, User, UserRole, connect
from aragora_db.audit import (
    APPEND_AUDIT_EVENT,
    AppendAuditEventsBatchParams,
    AppendAuditEventsParams,
)
from aragora_db.users import GET_USER_AUTH_STATE, RECORD_LOGIN
from aragora_repos import JSON, Config, Secret
from bench.harness import Contender, Scenario

PREFS: JSON = {
    "theme": "dark",
    "language": "en",
    "notifications": {"email": True, "slack": False},
    "agents": ["claude", "gemini", "gpt"],
}
DETAILS: JSON = {
    "debate_id": "d_4f2a9c",
    "round": 3,
    "agents": ["claude", "gemini"],
    "outcome": "consensus",
    "confidence": 0.82,
}


@dataclass(frozen=True, slots=True)
class AuthState:
    id: str
    email: str
    password_hash: str
    password_salt: str
    is_active: bool
    locked_until: datetime | None
    failed_login_count: int


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    email: str
    name: str
    role: str
    last_login_at: datetime | None
    is_active: bool


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    timestamp: datetime
    user_id: str | None
    org_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    details: Any
    ip_address: str | None
    user_agent: str | None


class Base(DeclarativeBase):
    pass


class UserORM(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(primary_key=True)
    email: Mapped[str]
    password_hash: Mapped[str]
    password_salt: Mapped[str]
    name: Mapped[str]
    org_id: Mapped[str | None]
    role: Mapped[str] = mapped_column(
        sa.Enum("owner", "admin", "member", "viewer", name="user_role", create_type=False)
    )
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    is_active: Mapped[bool]
    email_verified: Mapped[bool]
    avatar_url: Mapped[str | None]
    preferences: Mapped[Any] = mapped_column(JSONB)
    locked_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    failed_login_count: Mapped[int]
    lockout_reason: Mapped[str | None]
    last_activity_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_debate_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class AuditORM(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    user_id: Mapped[str | None]
    org_id: Mapped[str | None]
    action: Mapped[str]
    resource_type: Mapped[str]
    resource_id: Mapped[str | None]
    details: Mapped[Any] = mapped_column(JSONB)
    ip_address: Mapped[str | None]
    user_agent: Mapped[str | None]


AUTH_SQL = (
    "SELECT id, email, password_hash, password_salt, is_active, locked_until, "
    "failed_login_count FROM users WHERE id = $1"
)
USER_SQL = (
    "SELECT id, email, password_hash, password_salt, name, org_id, role, created_at, "
    "updated_at, last_login_at, is_active, email_verified, avatar_url, preferences, "
    "locked_until, failed_login_count, lockout_reason, last_activity_at, last_debate_at "
    "FROM users WHERE id = $1"
)
MEMBERS_SQL = (
    "SELECT id, email, name, role, last_login_at, is_active FROM users "
    "WHERE org_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3"
)
EVENTS_SQL = (
    "SELECT id, timestamp, user_id, org_id, action, resource_type, resource_id, "
    "details, ip_address, user_agent FROM audit_log WHERE org_id = $1 "
    "ORDER BY timestamp DESC, id DESC LIMIT $2 OFFSET $3"
)
INSERT_SQL = (
    "INSERT INTO audit_log (user_id, org_id, action, resource_type, resource_id, "
    "details, ip_address, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
    "RETURNING id"
)
BULK_SQL = (
    "INSERT INTO audit_log (timestamp, user_id, org_id, action, resource_type, "
    "resource_id, details, ip_address, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, "
    "$8, $9)"
)
COPY_COLUMNS = (
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
AIOSQL = """
-- name: auth_state(id)^
SELECT id, email, password_hash, password_salt, is_active, locked_until, failed_login_count
FROM users WHERE id = :id;

-- name: members(org_id, lim, off)
SELECT id, email, name, role, last_login_at, is_active FROM users
WHERE org_id = :org_id ORDER BY created_at, id LIMIT :lim OFFSET :off;

-- name: events(org_id, lim, off)
SELECT id, timestamp, user_id, org_id, action, resource_type, resource_id, details,
ip_address, user_agent FROM audit_log WHERE org_id = :org_id
ORDER BY timestamp DESC, id DESC LIMIT :lim OFFSET :off;

-- name: bulk(ts, user_id, org_id, action, resource_type, resource_id, details, ip, ua)*!
INSERT INTO audit_log (timestamp, user_id, org_id, action, resource_type, resource_id,
details, ip_address, user_agent) VALUES (:ts, :user_id, :org_id, :action, :resource_type,
:resource_id, :details, :ip, :ua);
"""


async def seed(db: Database) -> None:
    owner = await db.users.create_user(
        id="u0",
        email="u0@x",
        password_hash="h" * 60,
        password_salt="s" * 16,
        name="Owner",
        org_id=None,
        role=UserRole.OWNER,
    )
    assert owner is not None
    await db.orgs.create_organization(
        id="org", name="Org", slug="org", tier="enterprise", owner_id="u0", settings=PREFS
    )
    async with db.transaction():
        for i in range(1, 1000):
            await db.users.create_user(
                id=f"u{i}",
                email=f"u{i}@x",
                password_hash="h" * 60,
                password_salt="s" * 16,
                name=f"User {i}",
                org_id="org",
                role=UserRole.MEMBER,
            )
            await db.users.update_user_profile(
                name=None, avatar_url=None, preferences=PREFS, id=f"u{i}"
            )
    base = datetime(2026, 1, 1, tzinfo=UTC)
    await db.audit.append_audit_events(
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


@asynccontextmanager
async def scenarios(dsn: str) -> AsyncIterator[list[Scenario]]:
    db = await connect(Config(backend="postgres", dsn=Secret(dsn), pool_min=10, pool_max=10))
    await db.migrate()
    await seed(db)
    raw = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
    assert raw is not None
    # A bench database: the bulk scenario empties its rows between turns, which the
    # append-only audit log would refuse.
    await raw.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    assert raw is not None
    raw_conn = await raw.acquire()
    engine = create_async_engine(
        dsn.replace("postgresql://", "postgresql+asyncpg://"), pool_size=10, max_overflow=0
    )
    queries = aiosql.from_str(AIOSQL, "asyncpg")
    # Held for the whole run, in autocommit: no BEGIN/ROLLBACK per call, as a raw held
    # asyncpg connection has none.
    held = await (await engine.connect()).execution_options(isolation_level="AUTOCOMMIT")
    session = AsyncSession(held)
    try:
        yield _build(db, raw, raw_conn, engine, queries, held, session)
    finally:
        await session.close()
        await held.close()
        await raw.release(raw_conn)
        await raw.close()
        await engine.dispose()
        await db.close()


def _auth(r: Any) -> AuthState:
    return AuthState(r[0], r[1], r[2], r[3], r[4], r[5], r[6])


def _event(r: Any) -> Event:
    return Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9])


def _build(
    db: Database, raw: Any, raw_conn: Any, engine: Any, queries: Any, held: Any, session: Any
) -> list[Scenario]:
    """Every library is timed twice where it can be: through its pool (a connection taken
    and given back per call, as applications write it) and on a connection held for the
    whole run (the raw-driver reference's way); every result is typed the same way, with
    the hand-written mapping of the raw reference."""
    text_auth = sa.text(AUTH_SQL.replace("$1", ":id"))
    text_members = sa.text(MEMBERS_SQL.replace("$1", ":o").replace("$2", ":l").replace("$3", ":f"))
    text_events = sa.text(EVENTS_SQL.replace("$1", ":o").replace("$2", ":l").replace("$3", ":f"))
    out: list[Scenario] = []

    async def raw_auth() -> AuthState:
        return _auth(await raw.fetchrow(AUTH_SQL, "u42"))

    async def raw_conn_auth() -> AuthState:
        return _auth(await raw_conn.fetchrow(AUTH_SQL, "u42"))

    async def sa_core_auth() -> AuthState:
        async with engine.connect() as conn:
            return AuthState(*(await conn.execute(text_auth, {"id": "u42"})).one())

    async def sa_core_held_auth() -> AuthState:
        return AuthState(*(await held.execute(text_auth, {"id": "u42"})).one())

    async def sa_orm_auth() -> Any:
        async with AsyncSession(engine) as session:
            return await session.get(UserORM, "u42")

    async def sa_orm_held_auth() -> Any:
        # populate_existing: a query every call, not the identity map's copy
        return await session.get(UserORM, "u42", populate_existing=True)

    async def aiosql_auth() -> AuthState:
        return _auth(await queries.auth_state(raw, id="u42"))

    async def aiosql_held_auth() -> AuthState:
        return _auth(await queries.auth_state(raw_conn, id="u42"))

    out.append(
        Scenario(
            "postgresql",
            "fetch one row by key (scalar columns)",
            "raw asyncpg connection",
            [
                Contender("raw asyncpg pool", raw_auth),
                Contender("raw asyncpg connection", raw_conn_auth),
                Contender("generated", partial(db.users.get_user_auth_state, id="u42")),
                Contender("SQLAlchemy Core", sa_core_auth),
                Contender("SQLAlchemy Core (held connection)", sa_core_held_auth),
                Contender("SQLAlchemy ORM", sa_orm_auth),
                Contender("SQLAlchemy ORM (held session)", sa_orm_held_auth),
                Contender("aiosql", aiosql_auth),
                Contender("aiosql (held connection)", aiosql_held_auth),
            ],
            inner=800,
            target={"generated": 1.03},
        )
    )

    async def raw_user() -> User:
        r = await raw.fetchrow(USER_SQL, "u42")
        return User(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            UserRole(r[6]),
            r[7],
            r[8],
            r[9],
            r[10],
            r[11],
            r[12],
            json.loads(r[13]),
            r[14],
            r[15],
            r[16],
            r[17],
            r[18],
        )

    async def raw_conn_user() -> User:
        r = await raw_conn.fetchrow(USER_SQL, "u42")
        return User(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            UserRole(r[6]),
            r[7],
            r[8],
            r[9],
            r[10],
            r[11],
            r[12],
            json.loads(r[13]),
            r[14],
            r[15],
            r[16],
            r[17],
            r[18],
        )

    async def sa_orm_user() -> Any:
        async with AsyncSession(engine) as session:
            return await session.get(UserORM, "u42")

    out.append(
        Scenario(
            "postgresql",
            "fetch one row by key (with a JSON column)",
            "raw asyncpg connection",
            [
                Contender("raw asyncpg connection", raw_conn_user),
                Contender("raw asyncpg pool", raw_user),
                Contender("generated", partial(db.users.get_user_by_id, id="u42")),
                Contender("SQLAlchemy ORM", sa_orm_user),
            ],
            inner=800,
            target={"generated": 1.05},
        )
    )

    async def raw_members(on: Any = raw) -> list[Member]:
        return [
            Member(r[0], r[1], r[2], r[3], r[4], r[5])
            for r in await on.fetch(MEMBERS_SQL, "org", 1000, 0)
        ]

    async def aiosql_members(on: Any = raw) -> list[Member]:
        result = queries.members(on, org_id="org", lim=1000, off=0)
        rows = await result if inspect.isawaitable(result) else [r async for r in result]
        return [Member(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def sa_core_members() -> list[Member]:
        async with engine.connect() as conn:
            rows = (await conn.execute(text_members, {"o": "org", "l": 1000, "f": 0})).all()
        return [Member(*r) for r in rows]

    async def sa_core_held_members() -> list[Member]:
        rows = (await held.execute(text_members, {"o": "org", "l": 1000, "f": 0})).all()
        return [Member(*r) for r in rows]

    async def sa_orm_members() -> Any:
        async with AsyncSession(engine) as session:
            stmt = (
                sa.select(UserORM)
                .where(UserORM.org_id == "org")
                .order_by(UserORM.created_at, UserORM.id)
                .limit(1000)
            )
            return (await session.scalars(stmt)).all()

    out.append(
        Scenario(
            "postgresql",
            "fetch 1,000 rows (no JSON)",
            "raw asyncpg connection",
            [
                Contender("raw asyncpg connection", partial(raw_members, raw_conn)),
                Contender("raw asyncpg pool", raw_members),
                Contender(
                    "generated",
                    partial(db.users.list_organization_members, org_id="org", lim=1000, off=0),
                ),
                Contender("SQLAlchemy Core", sa_core_members),
                Contender("SQLAlchemy Core (held connection)", sa_core_held_members),
                Contender("SQLAlchemy ORM", sa_orm_members, "whole User rows"),
                Contender("aiosql", aiosql_members),
                Contender("aiosql (held connection)", partial(aiosql_members, raw_conn)),
            ],
            inner=10,
            unit="1,000 rows",
            target={"generated": 1.25},
        )
    )

    async def raw_events(on: Any = raw) -> list[Event]:
        return [_event(r) for r in await on.fetch(EVENTS_SQL, "org", 1000, 0)]

    async def sa_core_events() -> list[Event]:
        async with engine.connect() as conn:
            rows = (await conn.execute(text_events, {"o": "org", "l": 1000, "f": 0})).all()
        # SQLAlchemy's asyncpg dialect decodes jsonb itself, even through text()
        return [Event(*r) for r in rows]

    async def sa_orm_events() -> Any:
        async with AsyncSession(engine) as session:
            stmt = (
                sa.select(AuditORM)
                .where(AuditORM.org_id == "org")
                .order_by(AuditORM.timestamp.desc(), AuditORM.id.desc())
                .limit(1000)
            )
            return (await session.scalars(stmt)).all()

    out.append(
        Scenario(
            "postgresql",
            "fetch 1,000 rows (JSON decoded)",
            "raw asyncpg connection",
            [
                Contender("raw asyncpg connection", partial(raw_events, raw_conn)),
                Contender("raw asyncpg pool", raw_events),
                Contender(
                    "generated",
                    partial(db.audit.list_audit_events_by_org, org_id="org", lim=1000, off=0),
                ),
                Contender("SQLAlchemy Core", sa_core_events),
                Contender("SQLAlchemy ORM", sa_orm_events),
            ],
            inner=8,
            unit="1,000 rows",
            target={"generated": 1.6},
        )
    )

    async def raw_insert(on: Any = raw) -> Any:
        return await on.fetchval(
            INSERT_SQL, "u1", "ins", "login", "user", None, json.dumps(DETAILS), None, None
        )

    out.append(
        Scenario(
            "postgresql",
            "insert one row",
            "raw asyncpg connection",
            [
                Contender("raw asyncpg connection", partial(raw_insert, raw_conn)),
                Contender("raw asyncpg pool", raw_insert),
                Contender(
                    "generated",
                    partial(
                        db.audit.append_audit_event,
                        user_id="u1",
                        org_id="ins",
                        action="login",
                        resource_type="user",
                        resource_id=None,
                        details=DETAILS,
                        ip_address=None,
                        user_agent=None,
                    ),
                ),
            ],
            inner=500,
            target={"generated": 1.05},
        )
    )

    ts = datetime(2026, 2, 1, tzinfo=UTC)
    rows = [
        AppendAuditEventsParams(
            ts, f"u{i % 1000}", "bulk", "debate", "debate", f"d{i}", DETAILS, None, None
        )
        for i in range(50_000)
    ]
    names = [f.name for f in dataclasses.fields(AppendAuditEventsParams)]
    batch_rows = [AppendAuditEventsBatchParams(*(getattr(r, n) for n in names)) for r in rows]
    aiosql_rows = [
        {
            "ts": r.timestamp,
            "user_id": r.user_id,
            "org_id": r.org_id,
            "action": r.action,
            "resource_type": r.resource_type,
            "resource_id": r.resource_id,
            "details": json.dumps(r.details),
            "ip": None,
            "ua": None,
        }
        for r in rows
    ]

    async def raw_bulk() -> None:
        # The hand-written mapping from the same dataclasses runs inside the timed call,
        # as the generated method's does.
        await raw.executemany(
            BULK_SQL,
            [
                (
                    r.timestamp,
                    r.user_id,
                    r.org_id,
                    r.action,
                    r.resource_type,
                    r.resource_id,
                    json.dumps(r.details),
                    r.ip_address,
                    r.user_agent,
                )
                for r in rows
            ],
        )

    async def raw_copy() -> None:
        async with raw.acquire() as conn:
            await conn.copy_records_to_table(
                "audit_log",
                columns=list(COPY_COLUMNS),
                records=[
                    (
                        r.timestamp,
                        r.user_id,
                        r.org_id,
                        r.action,
                        r.resource_type,
                        r.resource_id,
                        json.dumps(r.details),
                        r.ip_address,
                        r.user_agent,
                    )
                    for r in rows
                ],
            )

    async def sa_core_bulk() -> None:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(AuditORM),
                [
                    {
                        "timestamp": r.timestamp,
                        "user_id": r.user_id,
                        "org_id": r.org_id,
                        "action": r.action,
                        "resource_type": r.resource_type,
                        "resource_id": r.resource_id,
                        "details": r.details,
                        "ip_address": None,
                        "user_agent": None,
                    }
                    for r in rows
                ],
            )

    out.append(
        Scenario(
            "postgresql",
            "bulk insert 50,000 rows",
            "raw asyncpg executemany",
            [
                Contender("raw asyncpg executemany", raw_bulk),
                Contender(
                    "generated :batchexec (executemany)",
                    partial(db.audit.append_audit_events_batch, batch_rows),
                ),
                Contender("raw asyncpg COPY", raw_copy),
                Contender(
                    "generated :copyfrom (COPY)", partial(db.audit.append_audit_events, rows)
                ),
                Contender("SQLAlchemy Core", sa_core_bulk),
                Contender("aiosql", partial(queries.bulk, raw, aiosql_rows)),
            ],
            inner=1,
            unit="50,000 rows",
            per_call_items=50_000,
            reset=lambda: raw.execute("DELETE FROM audit_log WHERE org_id = 'bulk'"),
            target={
                "generated :batchexec (executemany)": 1.02,
                "generated :copyfrom (COPY)": 1 / 1.8,
            },
        )
    )

    async def raw_tx() -> None:
        # The same statements as the generated calls below, by hand.
        async with raw.acquire() as conn, conn.transaction():
            _auth(await conn.fetchrow(GET_USER_AUTH_STATE, "u7"))
            await conn.execute(RECORD_LOGIN, "u7")
            await conn.fetchval(
                APPEND_AUDIT_EVENT, "u7", "tx", "login", "user", None, "{}", None, None
            )
            await conn.execute(RECORD_LOGIN, "u7")
            _auth(await conn.fetchrow(GET_USER_AUTH_STATE, "u7"))

    async def gen_tx() -> None:
        async with db.transaction():
            await db.users.get_user_auth_state(id="u7")
            await db.users.record_login(id="u7")
            await db.audit.append_audit_event(
                user_id="u7",
                org_id="tx",
                action="login",
                resource_type="user",
                resource_id=None,
                details={},
                ip_address=None,
                user_agent=None,
            )
            await db.users.record_login(id="u7")
            await db.users.get_user_auth_state(id="u7")

    out.append(
        Scenario(
            "postgresql",
            "transaction of 5 statements",
            "raw asyncpg",
            [Contender("raw asyncpg", raw_tx), Contender("generated", gen_tx)],
            inner=60,
        )
    )

    async def raw_concurrent() -> None:
        async def task(i: int) -> None:
            for _ in range(10):
                _auth(await raw.fetchrow(AUTH_SQL, f"u{i}"))

        await asyncio.gather(*(task(i) for i in range(50)))

    async def gen_concurrent() -> None:
        async def task(i: int) -> None:
            for _ in range(10):
                await db.users.get_user_auth_state(id=f"u{i}")

        await asyncio.gather(*(task(i) for i in range(50)))

    out.append(
        Scenario(
            "postgresql",
            "50 concurrent tasks on a pool of 10 (500 reads)",
            "raw asyncpg pool",
            [Contender("raw asyncpg pool", raw_concurrent), Contender("generated", gen_concurrent)],
            inner=3,
            unit="500 reads",
        )
    )
    return out


@asynccontextmanager
async def pooler_scenarios(dsn: str, pooled: str) -> AsyncIterator[list[Scenario]]:
    """Single-row fetch through a transaction pooler (PgBouncer): the generated code with
    ARAGORA_POSTGRES_POOLER=transaction against a raw asyncpg pool configured the same way
    (no statement cache, so no named prepared statement outlives a transaction; no session
    reset on release, since the pooler's sessions are not the client's)."""
    db = await connect(
        Config(
            backend="postgres",
            dsn=Secret(pooled),
            pool_min=4,
            pool_max=4,
            pooler="transaction",
            direct_dsn=Secret(dsn),
        )
    )

    async def no_reset(conn: Any) -> None:
        """As the runtime behind a transaction pooler: no session to reset."""

    raw = await asyncpg.create_pool(
        pooled, min_size=4, max_size=4, statement_cache_size=0, reset=no_reset
    )
    assert raw is not None
    try:

        async def raw_auth() -> AuthState:
            return _auth(await raw.fetchrow(AUTH_SQL, "u42"))

        yield [
            Scenario(
                "postgresql",
                "fetch one row by key through a transaction pooler (PgBouncer)",
                "raw asyncpg pool",
                [
                    Contender("raw asyncpg pool", raw_auth),
                    Contender("generated", partial(db.users.get_user_auth_state, id="u42")),
                ],
                inner=160,
                target={"generated": 1.05},
            )
        ]
    finally:
        await raw.close()
        await db.close()
