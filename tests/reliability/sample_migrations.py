"""Migrations with side effects, to count how often each one runs."""

from __future__ import annotations

from aragora_repos.migrations import Migration, Section

MIGRATIONS = (
    Migration(
        1,
        "runs",
        "s1",
        Section(
            ("CREATE TABLE runs (migration INTEGER NOT NULL)",),
            ("CREATE TABLE runs (migration INTEGER NOT NULL) STRICT",),
        ),
    ),
    Migration(
        2,
        "count_two",
        "s2",
        Section(("INSERT INTO runs VALUES (2)",), ("INSERT INTO runs VALUES (2)",)),
    ),
    # CONCURRENTLY cannot run in a transaction: the PostgreSQL step is non-transactional,
    # and waiters must poll for the lock (a blocked pg_advisory_lock waiter would be
    # killed by the deadlock detector while the index builds).
    Migration(
        3,
        "index",
        "s3",
        Section(
            ("CREATE INDEX CONCURRENTLY idx_runs ON runs (migration)",),
            ("CREATE INDEX idx_runs ON runs (migration)",),
            transactional=False,
        ),
    ),
    Migration(
        4,
        "count_four",
        "s4",
        Section(("INSERT INTO runs VALUES (4)",), ("INSERT INTO runs VALUES (4)",)),
    ),
)
