"""sqlc's request as typed records: its JSON is parsed here, at the boundary, and no
later stage sees a ``dict``. Fields sqlc leaves out get their empty value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SqlcColumn:
    """A parameter's or result column's description in sqlc's request."""

    name: str
    type_name: str
    not_null: bool
    array_dims: int
    is_sqlc_slice: bool
    table: str | None
    original_name: str

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> SqlcColumn:
        table = raw.get("table") or {}
        dims = int(raw.get("array_dims") or (1 if raw.get("is_array") else 0))
        return cls(
            name=str(raw.get("name") or ""),
            type_name=str((raw.get("type") or {}).get("name") or ""),
            not_null=bool(raw.get("not_null")),
            array_dims=dims,
            is_sqlc_slice=bool(raw.get("is_sqlc_slice")),
            table=str(table["name"]) if table.get("name") else None,
            original_name=str(raw.get("original_name") or raw.get("name") or ""),
        )


@dataclass(frozen=True, slots=True)
class SqlcParam:
    number: int
    column: SqlcColumn


@dataclass(frozen=True, slots=True)
class SqlcQuery:
    """One annotated query as sqlc analysed it."""

    name: str
    cmd: str
    filename: str
    text: str
    params: tuple[SqlcParam, ...]
    columns: tuple[SqlcColumn, ...]
    comments: tuple[str, ...]
    insert_into_table: str | None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> SqlcQuery:
        insert = raw.get("insert_into_table") or {}
        params = (
            SqlcParam(int(p["number"]), SqlcColumn.parse(p.get("column") or {}))
            for p in raw.get("params") or []
        )
        return cls(
            name=str(raw["name"]),
            cmd=str(raw["cmd"]),
            filename=str(raw["filename"]),
            text=str(raw["text"]),
            params=tuple(sorted(params, key=lambda p: p.number)),
            columns=tuple(SqlcColumn.parse(c) for c in raw.get("columns") or []),
            comments=tuple(str(c).strip() for c in raw.get("comments") or []),
            insert_into_table=str(insert["name"]) if insert.get("name") else None,
        )


@dataclass(frozen=True, slots=True)
class SqlcRequest:
    """sqlc's analysis of every query, parsed from its JSON at this boundary: the later
    stages never see a ``dict``."""

    sqlc_version: str
    queries: tuple[SqlcQuery, ...]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> SqlcRequest:
        return cls(
            sqlc_version=str(raw.get("sqlc_version") or ""),
            queries=tuple(SqlcQuery.parse(q) for q in raw.get("queries") or []),
        )
