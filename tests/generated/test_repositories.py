"""One behaviour suite for the generated repositories, run on SQLite and PostgreSQL.

Every assertion states the expected value, so both backends are held to the same result.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest

from aragora_db import Database, Organization, User, UserRole
from aragora_db.audit import AppendAuditEventsBatchParams, AppendAuditEventsParams
from aragora_db.migrations import MIGRATIONS
from aragora_repos import (
    DataError,
    ExecResult,
    ForeignKeyViolation,
    Isolation,
    NotNullViolation,
    TransactionError,
    UniqueViolation,
)


async def make_user(
    db: Database,
    uid: str,
    email: str | None = None,
    *,
    name: str = "",
    org_id: str | None = None,
    role: UserRole = UserRole.MEMBER,
) -> User:
    user = await db.users.create_user(
        id=uid,
        email=email or f"{uid}@example.com",
        password_hash="h",
        password_salt="s",
        name=name or uid,
        org_id=org_id,
        role=role,
    )
    assert user is not None
    return user


async def make_org(db: Database, oid: str, owner: str | None) -> Organization:
    org = await db.orgs.create_organization(
        id=oid, name=oid.title(), slug=oid, tier="free", owner_id=owner, settings={}
    )
    assert org is not None
    return org


async def test_create_returns_whole_row_with_defaults(db: Database) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    user = await make_user(db, "u1", "ann@example.com", name="Ann", role=UserRole.ADMIN)
    assert (user.id, user.email, user.name, user.role) == (
        "u1",
        "ann@example.com",
        "Ann",
        UserRole.ADMIN,
    )
    assert isinstance(user.role, UserRole)
    assert user.is_active is True and user.email_verified is False
    assert user.preferences == {} and user.failed_login_count == 0
    assert user.last_login_at is None and user.locked_until is None
    assert user.created_at.tzinfo is not None
    assert before <= user.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    assert await db.users.get_user_by_id(id="u1") == user
    assert await db.users.get_user_by_email(email="ann@example.com") == user


async def test_missing_row_is_none(db: Database) -> None:
    assert await db.users.get_user_by_id(id="nobody") is None
    assert await db.users.get_user_by_email(email="nobody@example.com") is None
    assert await db.users.is_user_locked(id="nobody") is None


async def test_unique_violation_is_typed_alike(db: Database) -> None:
    await make_user(db, "u1", "dup@example.com")
    with pytest.raises(UniqueViolation) as info:
        await make_user(db, "u2", "dup@example.com")
    assert info.value.sqlstate == "23505"
    assert info.value.__cause__ is not None


async def test_foreign_key_violation_is_typed_alike(db: Database) -> None:
    with pytest.raises(ForeignKeyViolation) as info:
        await db.usage.record_usage_event(
            org_id="missing", event_type="debate", count=1, metadata={}
        )
    assert info.value.sqlstate == "23503"


async def test_not_null_violation_is_typed_alike(db: Database) -> None:
    with pytest.raises(NotNullViolation):
        await db.users.create_user(
            id="u1",
            email=cast(str, None),
            password_hash="h",
            password_salt="s",
            name="",
            org_id=None,
            role=UserRole.MEMBER,
        )


async def test_wrong_value_type_is_a_data_error(db: Database) -> None:
    await make_user(db, "owner")
    await make_org(db, "o", "owner")
    with pytest.raises(DataError):  # STRICT tables and asyncpg's encoder both refuse it
        await db.usage.record_usage_event(
            org_id="o", event_type="debate", count=cast(Any, "three"), metadata={}
        )
    assert await db.usage.sum_usage_since(org_id="o", since=datetime(2000, 1, 1, tzinfo=UTC)) == []


async def test_partial_profile_update_keeps_unset_fields(db: Database) -> None:
    await make_user(db, "u1", name="Ann")
    updated = await db.users.update_user_profile(
        name=None,
        avatar_url="https://x/a.png",
        preferences={"theme": "dark", "n": [1, 2.5]},
        id="u1",
    )
    assert updated is not None
    assert updated.name == "Ann" and updated.avatar_url == "https://x/a.png"
    assert updated.preferences == {"theme": "dark", "n": [1, 2.5]}
    again = await db.users.update_user_profile(
        name="Anna", avatar_url=None, preferences=None, id="u1"
    )
    assert again is not None
    assert (again.name, again.avatar_url, again.preferences) == (
        "Anna",
        "https://x/a.png",
        {"theme": "dark", "n": [1, 2.5]},
    )
    assert again.updated_at >= updated.updated_at


async def test_failed_logins_lock_after_n_and_login_resets(db: Database) -> None:
    await make_user(db, "u1")
    counts = []
    for _ in range(3):
        row = await db.users.record_failed_login(max_attempts=3, lockout_minutes=15, id="u1")
        assert row is not None
        counts.append((row.failed_login_count, row.locked_until is not None))
    assert counts == [(1, False), (2, False), (3, True)]
    user = await db.users.get_user_by_id(id="u1")
    assert user is not None and user.locked_until is not None
    lock = user.locked_until - datetime.now(UTC)
    assert timedelta(minutes=14) < lock <= timedelta(minutes=15)
    assert user.lockout_reason == "too many failed login attempts"
    assert await db.users.is_user_locked(id="u1") is True
    assert await db.users.record_login(id="u1") == 1
    assert await db.users.is_user_locked(id="u1") is False
    user = await db.users.get_user_by_id(id="u1")
    assert user is not None
    assert (user.failed_login_count, user.locked_until, user.lockout_reason) == (0, None, None)
    assert user.last_login_at is not None


async def test_org_membership_listing_pages_in_order(db: Database) -> None:
    owner = await make_user(db, "owner")
    org = await make_org(db, "acme", owner.id)
    for i in range(5):
        await make_user(db, f"m{i}", org_id=org.id)
    assert (
        await db.users.set_user_organization(org_id=org.id, role=UserRole.OWNER, id=owner.id) == 1
    )
    first = await db.users.list_organization_members(org_id=org.id, lim=4, off=0)
    rest = await db.users.list_organization_members(org_id=org.id, lim=4, off=4)
    ids = [m.id for m in first + rest]
    assert sorted(ids) == sorted(["owner", "m0", "m1", "m2", "m3", "m4"])
    assert len(first) == 4 and len(rest) == 2 and len(set(ids)) == 6
    roles = {m.id: m.role for m in first + rest}
    assert roles["owner"] is UserRole.OWNER and roles["m0"] is UserRole.MEMBER
    assert await db.orgs.count_organization_members(org_id=org.id) == 6
    assert (
        await db.users.set_user_organization(org_id=None, role=UserRole.VIEWER, id="missing") == 0
    )


async def test_slice_parameter_is_an_in_list(db: Database) -> None:
    for uid in ("a", "b", "c"):
        await make_user(db, uid)
    found = await db.users.get_users_by_ids(ids=["c", "a", "zz"])
    assert [u.id for u in found] == ["a", "c"]
    assert await db.users.get_users_by_ids(ids=[]) == []
    many = [f"x{i}" for i in range(1500)] + ["b"]  # past SQLite's 999 bound parameters
    assert [u.id for u in await db.users.get_users_by_ids(ids=many)] == ["b"]


async def test_like_is_case_sensitive_and_ilike_is_not(db: Database) -> None:
    await make_user(db, "u1", "Ann@Example.com", name="Annabel")
    await make_user(db, "u2", "ann@example.com", name="joANNa")
    await make_user(db, "u3", "a_b@example.com", name="Bob")
    await make_user(db, "u4", "axb@example.com", name="Rob")
    assert [r.id for r in await db.users.list_users_by_email_pattern(pattern="ann%")] == ["u2"]
    assert [r.id for r in await db.users.list_users_by_email_pattern(pattern="Ann%")] == ["u1"]
    # Backslash is LIKE's escape character in PostgreSQL; the translation keeps it.
    assert [r.id for r in await db.users.list_users_by_email_pattern(pattern="a\\_b%")] == ["u3"]
    assert [r.id for r in await db.users.list_users_by_email_pattern(pattern="a_b%")] == [
        "u3",
        "u4",
    ]
    assert [r.id for r in await db.users.search_users_by_name(term="ANN", lim=10)] == ["u1", "u2"]


async def test_nulls_sort_high_as_in_postgresql(db: Database) -> None:
    for uid in ("a", "b", "c"):
        await make_user(db, uid)
    await db.users.record_login(id="b")
    rows = await db.users.list_users_by_recent_login(lim=10)
    assert [r.id for r in rows] == ["a", "c", "b"]  # DESC puts NULL first
    assert rows[0].last_login_at is None and rows[2].last_login_at is not None


async def test_json_round_trip(db: Database) -> None:
    await make_user(db, "owner")
    settings: dict[str, Any] = {
        "unicode": "débat ✓ 🤖",
        "quote": 'it\'s "x"',
        "nested": {"a": [1, None, True, 1.5, {"b": []}]},
        "empty": "",
    }
    org = await db.orgs.create_organization(
        id="o", name="O", slug="o", tier="free", owner_id="owner", settings=settings
    )
    assert org is not None and org.settings == settings
    assert await db.orgs.update_organization_settings(id="o", settings=[1, "two"]) == [1, "two"]
    assert await db.orgs.update_organization_settings(id="o", settings="plain") == "plain"
    assert await db.orgs.update_organization_settings(id="missing", settings={}) is None
    fetched = await db.orgs.get_organization_by_slug(slug="o")
    assert fetched is not None and fetched.settings == "plain"


async def test_execresult_and_execrows(db: Database) -> None:
    await make_user(db, "owner")
    await make_org(db, "o", "owner")
    result = await db.orgs.set_stripe_ids(customer_id="cus_1", subscription_id=None, id="o")
    assert result == ExecResult(rows_affected=1)
    assert await db.orgs.update_organization_tier(id="o", tier="enterprise") == 1
    assert await db.orgs.update_organization_tier(id="nope", tier="free") == 0
    org = await db.orgs.get_organization_by_id(id="o")
    assert org is not None and (org.tier, org.stripe_customer_id) == ("enterprise", "cus_1")
    assert [o.id for o in await db.orgs.list_organizations_by_owner(owner_id="owner")] == ["o"]


async def test_timestamps_compare_as_instants_across_zones(db: Database) -> None:
    base = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)
    plus5 = timezone(timedelta(hours=5))
    rows = [
        AppendAuditEventsParams(
            base + timedelta(hours=h), "u", "o", f"a{h}", "user", None, {"h": h}, None, None
        )
        for h in range(4)
    ]
    assert await db.audit.append_audit_events(rows) == 4
    # 17:00 at +05:00 is 12:00 UTC: the window [12:00, 14:00) UTC holds a0 and a1.
    start = datetime(2024, 1, 15, 17, 0, tzinfo=plus5)
    end = datetime(2024, 1, 15, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    found = await db.audit.list_audit_events_in_range(start_time=start, end_time=end)
    assert [e.action for e in found] == ["a0", "a1"]
    assert found[0].timestamp == base and found[0].timestamp.utcoffset() == timedelta(0)
    assert found[1].details == {"h": 1}
    naive = datetime(2024, 1, 15, 13, 0)  # naive values are taken as UTC on both backends
    later = await db.audit.list_audit_events_in_range(
        start_time=naive, end_time=base.replace(hour=23)
    )
    assert [e.action for e in later] == ["a1", "a2", "a3"]


async def test_audit_listing_and_retention(db: Database) -> None:
    now = datetime.now(UTC)
    old = [
        AppendAuditEventsParams(
            now - timedelta(days=40 + i), "u1", "o1", "old", "debate", str(i), {}, "10.0.0.1", "ua"
        )
        for i in range(3)
    ]
    assert await db.audit.append_audit_events(old) == 3
    new_id = await db.audit.append_audit_event(
        user_id="u1",
        org_id="o1",
        action="login",
        resource_type="user",
        resource_id=None,
        details={"ok": True},
        ip_address=None,
        user_agent=None,
    )
    assert isinstance(new_id, int)
    event = await db.audit.get_audit_event(id=new_id)
    assert event is not None and event.details == {"ok": True} and event.ip_address is None
    by_user = await db.audit.list_audit_events_by_user(user_id="u1", lim=2)
    assert [e.action for e in by_user] == ["login", "old"]
    by_org = await db.audit.list_audit_events_by_org(org_id="o1", lim=10, off=1)
    assert [e.resource_id for e in by_org] == ["0", "1", "2"]
    summary = await db.audit.count_audit_events_by_action(org_id="o1")
    assert [(s.action, s.events) for s in summary] == [("old", 3), ("login", 1)]
    assert summary[1].last_seen is not None and summary[1].last_seen >= now - timedelta(minutes=1)
    cutoff = now - timedelta(days=30)
    for removed in (3, 0):
        async with db.transaction():
            await db.backend.allow_retention(cutoff)
            assert await db.audit.delete_audit_events_before(cutoff=cutoff, lim=10) == removed
    assert [
        e.action for e in await db.audit.list_audit_events_by_org(org_id="o1", lim=10, off=0)
    ] == ["login"]


async def test_aggregates_over_empty_sets(db: Database) -> None:
    assert await db.users.count_active_users() == 0
    assert await db.audit.count_audit_events_by_action(org_id="none") == []
    assert (
        await db.usage.sum_usage_since(org_id="none", since=datetime(2000, 1, 1, tzinfo=UTC)) == []
    )


async def test_grouped_average_of_only_nulls_is_none(db: Database) -> None:
    for agent, latency in (("claude", None), ("claude", None), ("gpt", 10.0), ("gpt", None)):
        await db.nomic.record_agent_metrics(
            loop_id="l1",
            cycle=1,
            agent_name=agent,
            model=None,
            phase="debate",
            messages_sent=2,
            proposals_made=0,
            critiques_given=0,
            votes_won=0,
            tokens_used=5,
            latency_ms=latency,
            error_count=0,
        )
    totals = await db.nomic.agent_metrics_totals(loop_id="l1")
    assert [(t.agent_name, t.messages, t.tokens, t.avg_latency_ms) for t in totals] == [
        ("claude", 4, 10, None),
        ("gpt", 4, 10, 10.0),
    ]


async def test_usage_events_aggregate_and_prune(db: Database) -> None:
    await make_user(db, "owner")
    await make_org(db, "o", "owner")
    for kind, count in (("debate", 2), ("debate", 3), ("api_call", 7)):
        event = await db.usage.record_usage_event(
            org_id="o", event_type=kind, count=count, metadata={"k": kind}
        )
        assert event is not None and event.count == count
    since = datetime.now(UTC) - timedelta(hours=1)
    totals = await db.usage.sum_usage_since(org_id="o", since=since)
    assert [(t.event_type, t.total) for t in totals] == [("api_call", 7), ("debate", 5)]
    assert (
        await db.usage.prune_usage_events_before(cutoff=datetime.now(UTC) + timedelta(seconds=5))
        == 3
    )


async def test_transaction_rolls_back_on_error(db: Database) -> None:
    await make_user(db, "u1")
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await db.users.deactivate_user(id="u1")
            await make_user(db, "u2")
            raise RuntimeError("boom")
    user = await db.users.get_user_by_id(id="u1")
    assert user is not None and user.is_active is True
    assert await db.users.get_user_by_id(id="u2") is None


async def test_nested_transaction_is_a_savepoint(db: Database) -> None:
    async with db.transaction():
        await make_user(db, "outer")
        with pytest.raises(UniqueViolation):
            async with db.transaction():
                await make_user(db, "inner")
                await make_user(db, "inner-dup", "inner@example.com")
        await make_user(db, "after")
    ids = [u.id for u in await db.users.get_users_by_ids(ids=["outer", "inner", "after"])]
    assert ids == ["after", "outer"]


async def test_transaction_commits_and_other_calls_see_it(db: Database) -> None:
    async with db.transaction():
        await make_user(db, "u1")
        assert await db.users.get_user_by_id(id="u1") is not None
    assert await db.users.count_active_users() == 1


async def test_isolation_levels(db: Database, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.params["db"]
    async with db.transaction(isolation=Isolation.SERIALIZABLE):
        await make_user(db, "u1")
    if backend == "sqlite":
        with pytest.raises(TransactionError, match="always serializable"):
            async with db.transaction(isolation=Isolation.READ_COMMITTED):
                pass
    else:
        async with db.transaction(isolation=Isolation.REPEATABLE_READ, readonly=True):
            assert await db.users.count_active_users() == 1


async def test_migrate_is_idempotent(db: Database) -> None:
    assert await db.migrate() == []
    assert await db.backend.schema_version() == MIGRATIONS[-1].version


async def test_batchexec_runs_every_row_atomically(db: Database) -> None:
    ts = datetime(2024, 5, 1, tzinfo=UTC)
    rows = [
        AppendAuditEventsBatchParams(ts, "u", "o", f"a{i}", "t", None, {"i": i}, None, None)
        for i in range(25)
    ]
    assert await db.audit.append_audit_events_batch(rows) == 25
    bad = [
        *rows[:3],
        AppendAuditEventsBatchParams(ts, "u", "o", cast(str, None), "t", None, {}, None, None),
    ]
    with pytest.raises(NotNullViolation):
        await db.audit.append_audit_events_batch(bad)
    events = await db.audit.list_audit_events_by_org(org_id="o", lim=100, off=0)
    assert len(events) == 25
    assert sorted(e.action for e in events) == sorted(f"a{i}" for i in range(25))


async def test_auth_state(db: Database) -> None:
    await make_user(db, "u1")
    state = await db.users.get_user_auth_state(id="u1")
    assert state is not None
    assert (state.id, state.is_active, state.locked_until, state.failed_login_count) == (
        "u1",
        True,
        None,
        0,
    )


async def test_webhooks_for_an_event_are_those_subscribed_to_it(db: Database) -> None:
    """An event reaches an organization's active webhooks that list it or '*'; not those
    that list other events or none, not inactive ones, not another organization's."""
    await make_user(db, "owner")
    for oid in ("acme", "other"):
        await make_org(db, oid, "owner")
    hooks = {
        "w1": ("acme", ["debate.created"], True),
        "w2": ("acme", ["debate.created", "vote.cast"], True),
        "w3": ("acme", ["*"], True),
        "w4": ("acme", [], True),
        "w5": ("acme", ["debate.created"], False),
        "w6": ("other", ["debate.created", "*"], True),
    }
    for hid, (org, events, active) in hooks.items():
        await db.auth.create_webhook(
            id=hid, org_id=org, url=f"https://x/{hid}", secret="s", events=events, active=active
        )

    async def ids(event: str) -> list[str]:
        rows = await db.auth.list_active_webhooks_for_event(org_id="acme", event=event)
        return [w.id for w in rows]

    assert await ids("debate.created") == ["w1", "w2", "w3"]
    assert await ids("vote.cast") == ["w2", "w3"]
    assert await ids("unheard.of") == ["w3"]
    assert await ids("*") == ["w3"]  # '*' is a subscription, not a query wildcard
