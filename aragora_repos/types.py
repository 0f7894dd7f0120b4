"""Type aliases and small value types shared by the runtime and generated code."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import TypeAlias

JSON: TypeAlias = dict[str, "JSON"] | list["JSON"] | str | int | float | bool | None
"""A JSON value as :func:`json.loads` returns it (json and jsonb columns)."""

TransactionContext: TypeAlias = AbstractAsyncContextManager[None]
SyncTransactionContext: TypeAlias = AbstractContextManager[None]


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What an ``:execresult`` query returns."""

    rows_affected: int
