"""Application code that uses the repositories correctly: mypy --strict must pass."""

from __future__ import annotations

from datetime import UTC, datetime

from aragora_db import Database, SyncDatabase, User, UserRole, connect, connect_sync
from aragora_db.audit import AppendAuditEventsParams
from aragora_repos import JSON, ExecResult


async def login(db: Database, email: str) -> str | None:
    user = await db.users.get_user_by_email(email=email)
    if user is None:
        return None
    name: str = user.name
    locked: datetime | None = user.locked_until
    prefs: JSON = user.preferences
    if locked is not None and locked > datetime.now(UTC):
        return None
    await db.users.record_login(id=user.id)
    return f"{name} {prefs}"


async def admin_report(db: Database, org_id: str) -> list[str]:
    async with db.transaction():
        members = await db.users.list_organization_members(org_id=org_id, lim=10, off=0)
        total: int | None = await db.orgs.count_organization_members(org_id=org_id)
        result: ExecResult = await db.orgs.set_stripe_ids(
            customer_id=None, subscription_id=None, id=org_id
        )
    copied: int = await db.audit.append_audit_events(
        [
            AppendAuditEventsParams(
                datetime.now(UTC), None, org_id, "report", "org", None, {"n": total}, None, None
            )
        ]
    )
    roles: list[UserRole] = [m.role for m in members]
    return [str(r) for r in roles] + [str(result.rows_affected), str(copied)]


def script(sync: SyncDatabase) -> User | None:
    with sync.transaction():
        return sync.users.get_user_by_id(id="u1")


async def main() -> None:
    db = await connect()
    await db.close()
    connect_sync().close()
