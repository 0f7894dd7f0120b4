"""Debate slugs: derived from task and date, unique under concurrent saves, both backends."""

from __future__ import annotations

import asyncio
from datetime import date

from aragora_db import Database
from aragora_repos.tools.slugs import slug_base, with_suffix


def test_slug_base_forms() -> None:
    day = date(2024, 1, 15)
    assert slug_base("Rate limiter", day) == "rate-limiter-2024-01-15"
    assert slug_base("  Über café: design?! ", day) == "uber-cafe-design-2024-01-15"
    assert slug_base("日本語", day) == "debate-2024-01-15"
    long = slug_base("word " * 30, day)
    assert long.endswith("-2024-01-15") and len(long) <= 60 + 11
    assert not long.removesuffix("-2024-01-15").endswith("-")
    assert with_suffix("x-2024-01-15", 0) == "x-2024-01-15"
    assert with_suffix("x-2024-01-15", 2) == "x-2024-01-15-3"


async def _save(db: Database, i: int, task: str) -> str:
    base = slug_base(task, date(2024, 1, 15))
    async with db.transaction():
        reserved = await db.debates.reserve_slug_suffix(base=base)
        assert reserved is not None
        debate = await db.debates.insert_debate(
            id=f"d{i}",
            slug=with_suffix(base, reserved),
            task=task,
            agents=["claude", "gpt"],
            final_answer=None,
            consensus_reached=False,
            confidence=None,
            rounds_used=None,
            duration_seconds=None,
            grounded_verdict=None,
        )
    assert debate is not None
    return debate.slug


async def test_concurrent_saves_get_distinct_suffixes(db: Database) -> None:
    slugs = await asyncio.gather(*(_save(db, i, "Rate limiter") for i in range(20)))
    base = "rate-limiter-2024-01-15"
    assert sorted(slugs) == sorted([base] + [f"{base}-{n}" for n in range(2, 21)])
    found = await db.debates.get_debate_by_slug(slug=f"{base}-7")
    assert found is not None and found.task == "Rate limiter"
    assert await db.debates.increment_debate_views(slug=base) == 1
    assert await db.debates.increment_debate_views(slug=base) == 2
