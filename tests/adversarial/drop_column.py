"""Two migrations: a table with a secret column, then one that drops the column."""

from __future__ import annotations

from aragora_repos.migrations import Migration, Section

CREATE = Migration(
    1,
    "items",
    "d1",
    Section(
        ("CREATE TABLE items (id INTEGER PRIMARY KEY, secret TEXT NOT NULL)",),
        ("CREATE TABLE items (id INTEGER PRIMARY KEY, secret TEXT NOT NULL) STRICT",),
    ),
)
DROP = Migration(
    2,
    "drop_secret",
    "d2",
    Section(
        ("ALTER TABLE items DROP COLUMN secret",),
        ("ALTER TABLE items DROP COLUMN secret",),
    ),
)
MIGRATIONS = (CREATE, DROP)
ROWS = 100
