"""Full-text search of consensus topics: tsvector/ts_rank on PostgreSQL, FTS5/bm25 on
SQLite (the SQLite variant of FindSimilarConsensus)."""

from __future__ import annotations

from aragora_db import Database

CORPUS = [
    "rate limiter design notes",
    "Rate limiter, rate limiter",
    "cache invalidation",
    "designing a distributed cache",
    "limiter",
    "RATE-limited queues",
    "Über rate limiter docs",
]


async def _store(db: Database) -> dict[int, str]:
    ids = {}
    for topic in CORPUS:
        row = await db.consensus.store_consensus(
            topic=topic,
            topic_hash=topic.lower(),
            conclusion="",
            strength="strong",
            confidence=0.9,
            participating_agents=["a"],
            agreeing_agents=["a"],
            domain="general",
            debate_id=None,
            metadata={},
            data={},
        )
        assert row is not None
        ids[row.id] = topic
    return ids


async def test_phrase_search_matches_and_ranks_alike(db: Database) -> None:
    ids = await _store(db)
    found = await db.consensus.find_similar_consensus(query="rate limiter", lim=10)
    topics = [ids[r.id] for r in found]
    # Case-insensitive, phrase (adjacent words in order), no stemming: the same rows on both.
    assert sorted(topics) == sorted(
        [
            "rate limiter design notes",
            "Rate limiter, rate limiter",
            "Über rate limiter docs",
        ]
    )
    # Among topics of equal length, the one with the phrase twice ranks first on both
    # (ts_rank with length normalisation 1 / bm25); the two functions weigh length
    # differently, so longer and shorter documents may order differently.
    assert topics[0] == "Rate limiter, rate limiter"
    assert [ids[r.id] for r in await db.consensus.find_similar_consensus(query="cache", lim=1)]
    assert await db.consensus.find_similar_consensus(query="", lim=10) == []
    assert await db.consensus.find_similar_consensus(query='"quoted" AND', lim=10) == []


async def test_index_follows_updates_and_deletes(db: Database) -> None:
    ids = await _store(db)
    first = next(i for i, t in ids.items() if t == "cache invalidation")
    await db.consensus.update_consensus_conclusion(id=first, conclusion="x", confidence=0.1)
    assert len(await db.consensus.find_similar_consensus(query="cache", lim=10)) == 2
