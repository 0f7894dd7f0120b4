"""SQLite databases shaped as people's existing data is, built by the tests themselves:
each case holds one thing import and copy have got wrong (small values first in index
order, counters holding only 0/1, quoted and mixed-case names, a foreign-key cycle,
partial indexes on flags, CHECKs and defaults, epoch numbers and decimal text, JSON with
repeated keys). Every case uses its own table names, so all can go into one project."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path


def index_order(db: sqlite3.Connection) -> None:
    """A child table whose foreign-key columns hold only 0 and 1 in their first 10,000
    rows of index order (larger values come later): a sample of the first values would
    take them for booleans and the foreign keys would fail."""
    db.executescript(
        """
        CREATE TABLE owners (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE kinds (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE);
        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            owner_id INTEGER NOT NULL REFERENCES owners (id),
            kind_id INTEGER REFERENCES kinds (id),
            title TEXT NOT NULL
        );
        CREATE INDEX items_owner ON items (owner_id);
        CREATE INDEX items_kind ON items (kind_id);
        """
    )
    db.executemany("INSERT INTO owners VALUES (?, ?)", [(i, f"o{i}") for i in range(0, 50)])
    db.executemany("INSERT INTO kinds VALUES (?, ?)", [(i, f"k{i}") for i in range(0, 9)])
    rows = [
        (
            i,
            0 if i <= 6000 else 1 if i <= 12000 else i % 50,
            i % 2 if i <= 12000 else i % 9,
            f"t{i}",
        )
        for i in range(1, 15001)
    ]
    db.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", rows)


def counters(db: sqlite3.Connection) -> None:
    """Integer columns holding only 0 and 1 that are counts, beside real flags."""
    db.executescript(
        """
        CREATE TABLE standings (
            agent TEXT PRIMARY KEY,
            wins INTEGER NOT NULL DEFAULT 0,
            "Quantity" INTEGER,
            is_active INTEGER NOT NULL DEFAULT 1,
            reviewed INTEGER NOT NULL DEFAULT 0 CHECK (reviewed IN (0, 1))
        );
        """
    )
    db.executemany(
        "INSERT INTO standings VALUES (?, ?, ?, ?, ?)",
        [(f"a{i}", i % 2, 1 - i % 2, i % 2, 1 - i % 2) for i in range(40)],
    )


def quoted_names(db: sqlite3.Connection) -> None:
    """Names that need quoting: mixed case, a space, a quote, a reserved word."""
    db.executescript(
        """
        CREATE TABLE "InvoiceLine" (
            "InvoiceLineId" INTEGER PRIMARY KEY,
            "UnitPrice" NUMERIC(10, 2) NOT NULL,
            "Quantity" INTEGER NOT NULL,
            "Line Note" TEXT,
            "order" INTEGER,
            "it""s" TEXT
        );
        CREATE TABLE "Track Plays" (
            "TrackId" INTEGER NOT NULL,
            "InvoiceLineId" INTEGER REFERENCES "InvoiceLine" ("InvoiceLineId"),
            "PlayedAt" TEXT,
            PRIMARY KEY ("TrackId", "PlayedAt")
        );
        CREATE INDEX "IX Track Plays" ON "Track Plays" ("InvoiceLineId");
        """
    )
    db.executemany(
        'INSERT INTO "InvoiceLine" VALUES (?, ?, ?, ?, ?, ?)',
        [(i, f"{i}.99", i % 3, "note 'q'" if i % 2 else None, i, 'say "hi"') for i in range(1, 30)],
    )
    db.executemany(
        'INSERT INTO "Track Plays" VALUES (?, ?, ?)',
        [(i % 7, i, f"2024-03-{i % 28 + 1:02d} 10:{i:02d}:00") for i in range(1, 30)],
    )


def fk_cycle(db: sqlite3.Connection) -> None:
    """Members and teams referring to each other (users <-> organizations)."""
    db.executescript(
        """
        CREATE TABLE members (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            team_id TEXT REFERENCES teams (id)
        );
        CREATE TABLE teams (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            owner_id TEXT REFERENCES members (id) ON DELETE SET NULL
        );
        """
    )
    db.executemany(
        "INSERT INTO teams VALUES (?, ?, ?)", [(f"t{i}", f"team {i}", None) for i in range(5)]
    )
    db.executemany(
        "INSERT INTO members VALUES (?, ?, ?)",
        [(f"m{i}", f"m{i}@x", f"t{i % 5}") for i in range(20)],
    )
    db.executemany(
        "UPDATE teams SET owner_id = ? WHERE id = ?", [(f"m{i}", f"t{i}") for i in range(5)]
    )


def flags_and_defaults(db: sqlite3.Connection) -> None:
    """A partial index on a flag, CHECKs, and boolean, timestamp and other defaults."""
    db.executescript(
        """
        CREATE TABLE signups (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            email TEXT NOT NULL,
            email_verified INTEGER NOT NULL DEFAULT 0,
            is_admin BOOLEAN DEFAULT FALSE,
            has_paid INTEGER DEFAULT (1),
            ratio REAL DEFAULT 0.5,
            status TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'done')),
            created TEXT DEFAULT CURRENT_TIMESTAMP,
            joined_on TEXT DEFAULT (datetime('now')),
            CONSTRAINT email_has_at CHECK (instr(email, '@') > 0)
        );
        CREATE INDEX signups_unverified ON signups (email) WHERE email_verified = 0;
        CREATE UNIQUE INDEX signups_email ON signups (email);
        """
    )
    db.executemany(
        "INSERT INTO signups (email, email_verified, is_admin, status, created) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            (f"s{i}@x", i % 2, 0, "new" if i % 3 else "done", f"2024-01-{i + 1:02d} 09:00:00")
            for i in range(20)
        ],
    )


def epochs_and_decimals(db: sqlite3.Connection) -> None:
    """Times kept as epoch seconds (real) and milliseconds (integer), and prices as text."""
    db.executescript(
        """
        CREATE TABLE readings (
            id INTEGER PRIMARY KEY,
            created_at REAL NOT NULL,
            sampled_ts INTEGER,
            price TEXT,
            zip TEXT,
            count_seen INTEGER
        );
        """
    )
    db.executemany(
        "INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                1_700_000_000.25 + i * 3600,
                1_700_000_000_000 + i,
                f"{i}.{i % 10}9",
                f"0{i:04d}",
                1_700_000_000 + i,
            )
            for i in range(1, 25)
        ],
    )


def json_documents(db: sqlite3.Connection) -> None:
    """JSON text with repeated keys, keys out of jsonb's order and compact spacing."""
    db.executescript("CREATE TABLE documents (id INTEGER PRIMARY KEY, body TEXT NOT NULL);")
    db.executemany(
        "INSERT INTO documents VALUES (?, ?)",
        [
            (1, '{"a": 1, "a": 2}'),
            (2, '{"zz": 1, "b": [1, 2]}'),
            (3, json.dumps({"k": "v"})),
            (4, '[{"x":1}]'),
        ],
    )


CASES: dict[str, Callable[[sqlite3.Connection], None]] = {
    "index_order": index_order,
    "counters": counters,
    "quoted_names": quoted_names,
    "fk_cycle": fk_cycle,
    "flags_and_defaults": flags_and_defaults,
    "epochs_and_decimals": epochs_and_decimals,
    "json_documents": json_documents,
}


def build(directory: Path, name: str) -> Path:
    path = directory / f"{name}.db"
    db = sqlite3.connect(path)
    try:
        CASES[name](db)
        db.commit()
    finally:
        db.close()
    return path


def row_counts(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            n: db.execute(f'SELECT count(*) FROM "{n.replace(chr(34), chr(34) * 2)}"').fetchone()[0]
            for n in names
        }
    finally:
        db.close()
