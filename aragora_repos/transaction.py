"""Transaction options shared by both backends."""

from __future__ import annotations

from enum import StrEnum


class Isolation(StrEnum):
    """PostgreSQL isolation levels (transaction-iso.html). SQLite has only SERIALIZABLE."""

    READ_COMMITTED = "read_committed"
    REPEATABLE_READ = "repeatable_read"
    SERIALIZABLE = "serializable"
