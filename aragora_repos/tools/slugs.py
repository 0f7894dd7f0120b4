"""Debate slugs: ``rate-limiter-2024-01-15``, then ``...-2``, ``...-3`` on collision.

The number comes from the ``ReserveSlugSuffix`` query, an upsert on one counter row per
base: concurrent saves serialize on that row (PostgreSQL row lock, SQLite's single
writer), so each gets its own number. Run it in the same transaction as the insert::

    base = slug_base(task, day)
    async with db.transaction():
        n = await db.debates.reserve_slug_suffix(base=base)
        await db.debates.insert_debate(id=..., slug=with_suffix(base, n or 0), ...)
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

MAX_WORDS_LENGTH = 60
_NON_WORD = re.compile(r"[^a-z0-9]+")


def slug_base(task: str, day: date) -> str:
    """Lower-case ASCII words of the task (accents folded), at most 60 characters cut at a
    word boundary, then the ISO date; ``debate`` when the task has no usable word."""
    folded = unicodedata.normalize("NFKD", task).encode("ascii", "ignore").decode()
    words = _NON_WORD.sub("-", folded.lower()).strip("-")
    if len(words) > MAX_WORDS_LENGTH:
        cut = words[: MAX_WORDS_LENGTH + 1]
        words = cut[: cut.rfind("-")] if "-" in cut else cut[:MAX_WORDS_LENGTH]
    return f"{words or 'debate'}-{day.isoformat()}"


def with_suffix(base: str, reserved: int) -> str:
    """The first save of a base (reserved 0) keeps it; later ones get -2, -3, ..."""
    return base if reserved == 0 else f"{base}-{reserved + 1}"
