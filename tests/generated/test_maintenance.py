"""Data retention (aragora-repos maintenance) on both backends: old audit entries go,
usage events are rolled up into usage_monthly before they go (billing history survives,
nothing counted twice, also with two runs at once), expired token entries go, newer rows
stay, and a second run changes nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aragora_db import Database, connect
from aragora_db.audit import AppendAuditEventsParams
from aragora_repos import Config, errors
from aragora_repos.tools.maintenance import Maintained, run_maintenance
from tests.conftest import SQLITE_KEY, postgres_config
from tests.generated.test_repositories import make_org, make_user

ORGS = ("acme", "beta")


async def _seed(db: Database, tag: str, n: int) -> None:
    await db.audit.append_audit_events(
        [
            AppendAuditEventsParams(
                timestamp=datetime.now(UTC),
                user_id=None,
                org_id="acme",
                action=f"{tag}-{i}",
                resource_type="t",
                resource_id=None,
                details={},
                ip_address=None,
                user_agent=None,
            )
            for i in range(n)
        ]
    )
    for i in range(n):
        await db.usage.record_usage_event(
            org_id=ORGS[i % 2], event_type=("debate", "vote")[i % 3 % 2], count=i + 1, metadata={}
        )


async def _monthly(db: Database) -> Counter[tuple[str, datetime, str]]:
    since = datetime(2000, 1, 1, tzinfo=UTC)
    totals: Counter[tuple[str, datetime, str]] = Counter()
    for org in ORGS:
        for row in await db.usage.monthly_usage_by_org(org_id=org, since=since):
            totals[(org, row.month, row.event_type)] += row.total
    return totals


async def _rolled(db: Database) -> Counter[tuple[str, datetime, str]]:
    since = datetime(2000, 1, 1, tzinfo=UTC)
    return Counter(
        {
            (org, row.month, row.event_type): row.total
            for org in ORGS
            for row in await db.usage.list_usage_monthly(org_id=org, since=since)
        }
    )


async def test_retention_keeps_billing_history_and_newer_rows(db: Database) -> None:
    await make_user(db, "owner")
    for org in ORGS:
        await make_org(db, org, "owner")
    await _seed(db, "old", 25)
    expected = await _monthly(db)  # what the old events add up to, per month
    mid = datetime.now(UTC)
    await asyncio.sleep(0.002)  # the new rows' timestamps must differ from mid
    await _seed(db, "new", 7)
    for jti, days in (("gone1", -2), ("gone2", -1), ("gone3", -3), ("kept1", 1), ("kept2", 5)):
        await db.auth.revoke_token(
            jti=jti, user_id="owner", reason=None, expires_at=mid + timedelta(days=days)
        )
    maintained: Maintained = db  # the generated facade has what maintenance needs
    report = await run_maintenance(
        maintained, audit_days=90, usage_days=90, batch=10, now=mid + timedelta(days=90)
    )
    assert (report.audit_removed, report.usage_removed, report.usage_rolled_up) == (25, 25, 25)
    # Tokens are compared with `now` itself: all five are expired 90 days on.
    assert report.tokens_removed == 5
    assert report.batches >= 3 + 3 + 1
    assert await _rolled(db) == expected
    left = await db.audit.list_audit_events_by_org(org_id="acme", off=0, lim=100)
    assert sorted(e.action for e in left) == sorted(f"new-{i}" for i in range(7))
    assert sum((await _monthly(db)).values()) == sum(range(1, 8))  # the new events stay
    again = await run_maintenance(maintained, batch=10, now=mid + timedelta(days=90))
    assert (again.audit_removed, again.usage_removed, again.tokens_removed) == (0, 0, 0)
    assert await _rolled(db) == expected


async def _open_twice(db: Database, tmp_path: Path) -> tuple[Database, Database]:
    if db.backend.kind.value == "sqlite":
        config = Config(data_dir=tmp_path, sqlite_key=SQLITE_KEY)
        return await connect(config), await connect(config)
    dsn = db.backend._dsn.reveal()  # type: ignore[attr-defined]
    return (
        await connect(postgres_config(dsn, dsn, pool_max=2)),
        await connect(postgres_config(dsn, dsn, pool_max=2)),
    )


async def test_two_runs_at_once_count_every_event_once(db: Database, tmp_path: Path) -> None:
    await make_user(db, "owner")
    for org in ORGS:
        await make_org(db, org, "owner")
    for _ in range(4):
        await _seed(db, "old", 150)
    expected = await _monthly(db)
    later = datetime.now(UTC) + timedelta(days=91)
    first, second = await _open_twice(db, tmp_path)
    try:
        reports = await asyncio.gather(
            run_maintenance(first, batch=37, now=later),
            run_maintenance(second, batch=37, now=later),
        )
    finally:
        await first.close()
        await second.close()
    assert sum(r.usage_rolled_up for r in reports) == 600
    assert sum(r.usage_removed for r in reports) == 600
    assert sum(r.audit_removed for r in reports) == 600
    assert await _rolled(db) == expected


async def test_a_batch_that_meets_a_deadlock_runs_again_and_counts_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadlock two runs met in CI (their month totals locked in different orders),
    raised here once in the middle of a batch: the batch rolls back, runs again, and
    every event is rolled up once."""
    await make_user(db, "owner")
    for org in ORGS:
        await make_org(db, org, "owner")
    await _seed(db, "old", 60)
    expected = await _monthly(db)
    original = type(db.usage).roll_up_usage_events
    failures = [errors.from_sqlstate("40P01", "deadlock detected")]

    async def roll_up(self: object, *, ids: list[int]) -> int:
        rolled = await original(self, ids=ids)  # type: ignore[arg-type]
        if failures:
            raise failures.pop()  # after the totals were written: they must roll back
        return rolled

    monkeypatch.setattr(type(db.usage), "roll_up_usage_events", roll_up)
    later = datetime.now(UTC) + timedelta(days=91)
    report = await run_maintenance(db, batch=25, now=later)
    assert not failures
    assert (report.usage_rolled_up, report.usage_removed) == (60, 60)
    assert await _rolled(db) == expected


@pytest.mark.parametrize("batch", [0, -1])
async def test_a_batch_below_one_is_refused(db: Database, batch: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await run_maintenance(db, batch=batch)


def test_the_cli_runs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    from contextlib import redirect_stdout

    from aragora_db.__main__ import main as cli_main

    monkeypatch.setenv("ARAGORA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ARAGORA_DB_BACKEND", "sqlite")
    monkeypatch.setenv("ARAGORA_AUDIT_RETENTION_DAYS", "0")
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_main(["migrate", "up"]) == 0
        assert cli_main(["maintenance", "--batch", "5"]) == 0
    assert "audit entries removed: 0" in out.getvalue()
    assert "usage events rolled up into usage_monthly and removed: 0" in out.getvalue()
