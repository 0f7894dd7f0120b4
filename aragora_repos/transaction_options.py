"""Options of one transaction block (kept apart so abc.py and transaction.py share it)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Isolation(StrEnum):
    """PostgreSQL isolation levels (transaction-iso.html). SQLite has only SERIALIZABLE."""

    READ_COMMITTED = "read_committed"
    REPEATABLE_READ = "repeatable_read"
    SERIALIZABLE = "serializable"

    @property
    def sql(self) -> str:
        return self.value.replace("_", " ").upper()


@dataclass(frozen=True, slots=True)
class TxOptions:
    isolation: Isolation | None = None
    readonly: bool = False
    deferrable: bool = False
    timeout: float | None = None
