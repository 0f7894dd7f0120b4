"""A short Aragora-style application written once against the generated repositories.

Runs on SQLite under ``$ARAGORA_DATA_DIR`` (default ``.nomic/``) or on PostgreSQL when
``DATABASE_URL`` is set. Safe to run again: it reuses the accounts it created before.
"""

from __future__ import annotations

import asyncio
import secrets

from aragora_db import Database, User, UserRole, connect
from aragora_repos import Config


async def ensure_user(db: Database, email: str, name: str, org_id: str | None) -> User:
    user = await db.users.get_user_by_email(email=email)
    if user is not None:
        return user
    created = await db.users.create_user(
        id=f"usr_{secrets.token_hex(6)}",
        email=email,
        password_hash="demo-hash",
        password_salt=secrets.token_hex(8),
        name=name,
        org_id=org_id,
        role=UserRole.MEMBER,
    )
    assert created is not None
    return created


async def main() -> None:
    config = Config.from_env()
    where = config.sqlite_file if config.backend == "sqlite" else config.dsn
    async with await connect(config) as db:
        applied = await db.migrate()
        print(f"backend: {config.backend} ({where}); migrations applied now: {applied or 'none'}")

        owner = await ensure_user(db, "ada@aragora.example", "Ada Lovelace", None)
        org = await db.orgs.get_organization_by_slug(slug="analytical-engines")
        if org is None:
            async with db.transaction():
                org = await db.orgs.create_organization(
                    id=f"org_{secrets.token_hex(6)}",
                    name="Analytical Engines",
                    slug="analytical-engines",
                    tier="professional",
                    owner_id=owner.id,
                    settings={"debate_rounds": 3, "agents": ["claude", "gemini"]},
                )
                assert org is not None
                await db.users.set_user_organization(
                    org_id=org.id, role=UserRole.OWNER, id=owner.id
                )
            # transaction() may swallow a deliberate Rollback, so the type checker cannot
            # assume the block ran to its end.
            assert org is not None
        print(f"organization: {org.name} ({org.slug}), tier {org.tier}, settings {org.settings}")

        member = await ensure_user(db, "charles@aragora.example", "Charles Babbage", org.id)
        for _ in range(3):
            attempt = await db.users.record_failed_login(
                id=member.id, max_attempts=3, lockout_minutes=15
            )
            assert attempt is not None
            print(
                f"failed login for {member.email}: count={attempt.failed_login_count}, "
                f"locked_until={attempt.locked_until}"
            )
        print(f"locked now: {await db.users.is_user_locked(id=member.id)}")
        await db.users.record_login(id=member.id)
        print(f"after a successful login, locked: {await db.users.is_user_locked(id=member.id)}")

        members = await db.users.list_organization_members(org_id=org.id, lim=10, off=0)
        print(f"members of {org.slug}: " + ", ".join(f"{m.name} ({m.role})" for m in members))

        event_id = await db.audit.append_audit_event(
            user_id=member.id,
            org_id=org.id,
            action="login",
            resource_type="user",
            resource_id=member.id,
            details={"method": "password"},
            ip_address="127.0.0.1",
            user_agent="demo",
        )
        await db.usage.record_usage_event(
            org_id=org.id, event_type="debate", count=1, metadata={"rounds": 3}
        )
        summary = await db.audit.count_audit_events_by_action(org_id=org.id)
        print(
            f"audit event #{event_id} recorded; by action: "
            + ", ".join(f"{s.action}={s.events}" for s in summary)
        )
        print(f"active users: {await db.users.count_active_users()}")


if __name__ == "__main__":
    asyncio.run(main())
