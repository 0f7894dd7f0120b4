"""Type aliases and small value types shared by the runtime and generated code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

JSON: TypeAlias = dict[str, "JSON"] | list["JSON"] | str | int | float | bool | None
"""A JSON value as :func:`json.loads` returns it (json and jsonb columns)."""


class DbRow(Protocol):
    """A result row as a driver returns it (asyncpg Record, sqlite3 tuple): read by
    position by the generated decoders."""

    def __getitem__(self, index: int, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What an ``:execresult`` query returns."""

    rows_affected: int
