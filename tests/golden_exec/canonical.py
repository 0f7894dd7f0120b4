"""The canonical form the golden roundtrip scripts print (JSON-able, timestamps left out)."""

from __future__ import annotations

from datetime import date
from uuid import UUID


def canonical(value: object) -> object:
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        fields = value.__dataclass_fields__
        return {f: canonical(getattr(value, f)) for f in fields if f != "created_at"}
    if isinstance(value, bytes | UUID | date):
        return f"{type(value).__name__}:{value!s}"
    return value
