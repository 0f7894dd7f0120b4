"""Batch lookups bind a whole list as one parameter (json_each on SQLite), so any number of
ids fits one statement: no 999/32766 variable limit, no chunking needed."""

from __future__ import annotations

from datetime import UTC, datetime

from aragora_db import Database


async def test_thousands_of_ids_in_one_call(db: Database) -> None:
    for i in range(0, 300, 3):
        await db.auth.revoke_token(jti=f"t{i}", user_id=None, reason=None, expires_at=_far())
    asked = [f"t{i}" for i in range(40_000)]
    revoked = await db.auth.revoked_among(jtis=asked)
    assert revoked == sorted(f"t{i}" for i in range(0, 300, 3))
    assert await db.debates.existing_debate_ids(ids=[f"d{i}" for i in range(40_000)]) == []
    assert await db.auth.revoked_among(jtis=[]) == []


def _far() -> datetime:
    return datetime(2100, 1, 1, tzinfo=UTC)
