"""Aragora data directories as the seed documents' stores left them, built by the tests:
the legacy layout (one file per store) and the consolidated one (core.db, memory.db, ...),
with the shapes this project's schema does not take as they are: consensus rows keyed by
text, debates without a slug, critiques without a severity, audit entries without a
resource type, JSON in text columns, 0/1 flags, text timestamps, epoch counters."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

USERS = """
CREATE TABLE users (
    id TEXT PRIMARY KEY, email TEXT UNIQUE NOT NULL, password_hash TEXT NOT NULL,
    password_salt TEXT NOT NULL, name TEXT DEFAULT '', org_id TEXT, role TEXT DEFAULT 'member',
    created_at TEXT DEFAULT CURRENT_TIMESTAMP, updated_at TEXT DEFAULT CURRENT_TIMESTAMP,
    last_login_at TEXT, is_active INTEGER DEFAULT 1, email_verified INTEGER DEFAULT 0,
    avatar_url TEXT, preferences TEXT DEFAULT '{}', locked_until TEXT,
    failed_login_count INTEGER DEFAULT 0, lockout_reason TEXT, last_activity_at TEXT,
    last_debate_at TEXT
);
CREATE TABLE organizations (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, slug TEXT UNIQUE NOT NULL, tier TEXT DEFAULT 'free',
    owner_id TEXT REFERENCES users(id), stripe_customer_id TEXT, stripe_subscription_id TEXT,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP, updated_at TEXT DEFAULT CURRENT_TIMESTAMP,
    settings TEXT DEFAULT '{}'
);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL, user_id TEXT, org_id TEXT,
    action TEXT NOT NULL, resource_type TEXT, resource_id TEXT, details TEXT DEFAULT '{}',
    ip_address TEXT, user_agent TEXT
);
CREATE TABLE usage_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, org_id TEXT NOT NULL REFERENCES organizations(id),
    event_type TEXT NOT NULL, count INTEGER DEFAULT 1, metadata TEXT DEFAULT '{}',
    timestamp TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE schema_version (version INTEGER);
"""

MEMORY = """
CREATE TABLE debates (
    id TEXT PRIMARY KEY, task TEXT NOT NULL, final_answer TEXT,
    consensus_reached INTEGER DEFAULT 0, confidence REAL, rounds_used INTEGER,
    duration_seconds REAL, grounded_verdict TEXT, created_at TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE critiques (
    id INTEGER PRIMARY KEY AUTOINCREMENT, debate_id TEXT REFERENCES debates(id),
    agent TEXT NOT NULL, target_agent TEXT, issues TEXT DEFAULT '[]',
    suggestions TEXT DEFAULT '[]', severity REAL, reasoning TEXT,
    led_to_improvement INTEGER DEFAULT 0, expected_usefulness REAL DEFAULT 0.5,
    actual_usefulness REAL, prediction_error REAL, created_at TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE patterns (
    id TEXT PRIMARY KEY, issue_type TEXT NOT NULL, issue_text TEXT NOT NULL,
    suggestion_text TEXT, success_count INTEGER DEFAULT 0, failure_count INTEGER DEFAULT 0,
    avg_severity REAL DEFAULT 0.5, surprise_score REAL DEFAULT 0.0, base_rate REAL DEFAULT 0.5,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP, updated_at TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE agent_reputation (
    agent_name TEXT PRIMARY KEY, proposals_made INTEGER DEFAULT 0,
    proposals_accepted INTEGER DEFAULT 0, critiques_given INTEGER DEFAULT 0,
    critiques_valuable INTEGER DEFAULT 0, calibration_score REAL DEFAULT 0.5,
    updated_at TEXT DEFAULT CURRENT_TIMESTAMP
);
"""

CONSENSUS = """
CREATE TABLE consensus (
    id TEXT PRIMARY KEY, topic TEXT NOT NULL, topic_hash TEXT NOT NULL, conclusion TEXT NOT NULL,
    strength TEXT DEFAULT 'moderate', confidence REAL DEFAULT 0.5,
    participating_agents TEXT DEFAULT '[]', agreeing_agents TEXT DEFAULT '[]', domain TEXT,
    debate_id TEXT, metadata TEXT DEFAULT '{}', data TEXT,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP, updated_at TEXT DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE dissent (
    id TEXT PRIMARY KEY, consensus_id TEXT REFERENCES consensus(id), debate_id TEXT NOT NULL,
    agent_id TEXT NOT NULL, dissent_type TEXT NOT NULL, content TEXT, reasoning TEXT,
    confidence REAL, acknowledged INTEGER DEFAULT 0, data TEXT, created_at TEXT
);
"""


def _users(n: int) -> list[tuple[object, ...]]:
    return [
        (
            f"u{i}",
            f"u{i}@example.com",
            "hash",
            "salt",
            f"User {i}",
            "o1" if i % 2 else None,
            "admin" if i == 0 else "member",
            f"2024-01-{i % 28 + 1:02d} 10:00:00",
            "2024-02-01 10:00:00",
            None,
            i % 2,
            1 - i % 2,
            None,
            json.dumps({"theme": "dark", "n": i}),
            None,
            i % 3,
            None,
            None,
            None,
        )
        for i in range(n)
    ]


def fill_users(db: sqlite3.Connection, n: int) -> None:
    db.executescript(USERS)
    db.executemany(f"INSERT INTO users VALUES ({', '.join('?' * 19)})", _users(n))
    db.execute(
        "INSERT INTO organizations (id, name, slug, owner_id, created_at, updated_at, settings) "
        "VALUES ('o1', 'Acme', 'acme', 'u0', '2024-01-01 00:00:00', '2024-01-01 00:00:00', "
        '\'{"plan": "x", "plan": "y"}\')'
    )
    db.executemany(
        "INSERT INTO audit_log (timestamp, user_id, org_id, action, resource_type, resource_id, "
        "details) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                f"2024-03-01T10:00:{i % 60:02d}",
                f"u{i % n}",
                "o1",
                "login" if i % 2 else "debate.create",
                None if i % 3 == 0 else "debate",
                str(i),
                "{}",
            )
            for i in range(3 * n)
        ],
    )
    db.executemany(
        "INSERT INTO usage_events (org_id, event_type, count, metadata, timestamp) "
        "VALUES ('o1', ?, ?, '{}', ?)",
        [("debate", i % 4 + 1, f"2024-03-{i % 28 + 1:02d} 12:00:00") for i in range(n)],
    )
    db.execute("INSERT INTO schema_version VALUES (2)")


def fill_memory(db: sqlite3.Connection, n: int) -> None:
    db.executescript(MEMORY)
    db.executemany(
        "INSERT INTO debates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                f"d{i}",
                "Design a rate limiter" if i % 3 == 0 else f"Topic number {i}",
                "Use a token bucket",
                i % 2,
                0.5 + (i % 5) / 10,
                3,
                12.5,
                json.dumps({"verdict": "ok"}) if i % 2 else None,
                "2024-01-15 09:00:00" if i % 3 == 0 else f"2024-02-{i % 28 + 1:02d} 09:00:00",
            )
            for i in range(n)
        ],
    )
    db.executemany(
        "INSERT INTO critiques (debate_id, agent, target_agent, issues, suggestions, severity, "
        "reasoning, led_to_improvement, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                f"d{i % n}",
                "claude",
                "gpt",
                json.dumps(["too slow"]),
                "[]",
                None if i % 4 == 0 else 0.25 * (i % 4),
                "because",
                i % 2,
                "2024-02-01 10:00:00",
            )
            for i in range(2 * n)
        ],
    )
    db.executemany(
        "INSERT INTO patterns (id, issue_type, issue_text, success_count, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (f"p{i}", "perf", f"issue {i}", i, "2024-01-01 00:00:00", "2024-01-02 00:00:00")
            for i in range(5)
        ],
    )
    db.executemany(
        "INSERT INTO agent_reputation (agent_name, proposals_made, updated_at) VALUES (?, ?, ?)",
        [("claude", 3, "2024-01-01 00:00:00"), ("gpt", 1, "2024-01-01 00:00:00")],
    )


def fill_consensus(db: sqlite3.Connection, n: int) -> None:
    db.executescript(CONSENSUS)
    db.executemany(
        "INSERT INTO consensus VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                f"cons-{i:04d}",
                f"Topic {i}",
                f"h{i}",
                "Agreed",
                "strong",
                0.9,
                json.dumps(["claude", "gpt"]),
                json.dumps(["claude"]),
                None if i % 2 else "security",
                f"d{i % n}",
                "{}",
                None,
                "2024-02-01 10:00:00",
                "2024-02-01 10:00:00",
            )
            for i in range(n)
        ],
    )
    db.executemany(
        "INSERT INTO dissent VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                f"x{i}",
                f"cons-{i % n:04d}",
                f"d{i % n}",
                "gpt",
                "risk",
                "no",
                None,
                0.4,
                i % 2,
                "{}",
                "2024-02-02 10:00:00",
            )
            for i in range(n)
        ],
    )


def _write(path: Path, fills: Iterable[object], n: int) -> None:
    db = sqlite3.connect(path)
    try:
        for fill in fills:
            fill(db, n)  # type: ignore[operator]
        db.commit()
    finally:
        db.close()


def legacy_layout(directory: Path, n: int = 20) -> Path:
    """users.db, agora_memory.db (critique store) and consensus_memory.db."""
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "users.db", [fill_users], n)
    _write(directory / "agora_memory.db", [fill_memory], n)
    _write(directory / "consensus_memory.db", [fill_consensus], n)
    return directory


def consolidated_layout(directory: Path, n: int = 20) -> Path:
    """core.db (users, debates) and memory.db (the memory stores)."""
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "core.db", [fill_users], n)
    _write(directory / "memory.db", [fill_memory, fill_consensus], n)
    return directory


def source_rows(directory: Path) -> int:
    """Rows of every data table (not ``schema_version``) of every file."""
    total = 0
    for path in sorted(directory.glob("*.db")):
        db = sqlite3.connect(path)
        try:
            for (name,) in db.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "AND name != 'schema_version'"
            ).fetchall():
                total += db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        finally:
            db.close()
    return total
