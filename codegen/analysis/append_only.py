"""Append-only tables: rows are never updated or deleted, except by retention.

A migration marks a table with a comment line in its up (or down) section::

    -- aragora:append-only audit_log (timestamp)
    -- aragora:not-append-only audit_log

and the generator writes the triggers for both dialects. UPDATE, DELETE and (on
PostgreSQL) TRUNCATE are refused with SQLSTATE 23001 (restrict_violation) on PostgreSQL
and SQLite's constraint error, both an ``IntegrityError``; the one way rows leave is a
DELETE of rows whose retention column is older than the cutoff a retention transaction
has set (``aragora_repos.retention``): ``set_config('aragora.retention_cutoff', ...,
true)`` on PostgreSQL, ``aragora_set_retention_cutoff(...)`` on SQLite, both for the
current transaction only. On SQLite the check calls a function only the runtime
registers, so another tool cannot delete rows at all. A table rebuild on SQLite (which
drops triggers) writes them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..dialects import sqlite, sqlite_ddl
from ..model.ir import Table
from .tables import Out, State

MARKER = re.compile(
    r"^[ \t]*--[ \t]*aragora:(?P<kind>append-only|not-append-only)[ \t]+(?P<table>\w+)"
    r"(?:[ \t]*\([ \t]*(?P<column>\w+)[ \t]*\))?[ \t]*$",
    re.MULTILINE,
)
TIME_TYPES = ("timestamptz", "timestamp", "date")

FUNCTION = """CREATE OR REPLACE FUNCTION aragora_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    cutoff text := current_setting('aragora.retention_cutoff', true);
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(cutoff, '') <> '' THEN
        IF (to_jsonb(OLD) ->> TG_ARGV[0])::timestamptz < cutoff::timestamptz THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$"""


@dataclass(frozen=True, slots=True)
class Mark:
    offset: int
    kind: str
    table: str
    column: str | None


def marks(text: str, base: int) -> list[Mark]:
    return [
        Mark(base + m.start(), m.group("kind"), m.group("table"), m.group("column"))
        for m in MARKER.finditer(text)
    ]


def _names(table: str) -> tuple[str, str, str]:
    return f"{table}_append_only", f"{table}_no_truncate", f"{table}_append_only_delete"


def postgres_sql(table: str, column: str) -> list[str]:
    row, truncate, _ = _names(table)
    literal = "'" + column.replace("'", "''") + "'"
    return [
        FUNCTION,
        f"CREATE TRIGGER {row} BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW "
        f"EXECUTE FUNCTION aragora_append_only({literal})",
        f"CREATE TRIGGER {truncate} BEFORE TRUNCATE ON {table} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION aragora_append_only({literal})",
    ]


def sqlite_sql(table: str, column: str) -> list[str]:
    update, _, delete = _names(table)
    q = sqlite_ddl.quote
    return [
        f"CREATE TRIGGER {q(update)} BEFORE UPDATE ON {q(table)} BEGIN "
        f"SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END",
        f"CREATE TRIGGER {q(delete)} BEFORE DELETE ON {q(table)} "
        f"WHEN NOT aragora_retention_allows(OLD.{q(column)}) BEGIN "
        f"SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END",
    ]


def apply(mark: Mark, state: State, out: Out) -> None:
    """Mark or unmark ``mark.table``, writing each dialect's statements into ``out``."""
    table = state.tables.get(mark.table)
    construct = f"aragora:{mark.kind} {mark.table}"
    if table is None:
        raise sqlite.Untranslatable(construct, "no such table (mark it after CREATE TABLE)")
    if mark.kind == "append-only":
        if table.append_only is not None:
            raise sqlite.Untranslatable(construct, "the table is append-only already")
        column = table.column(mark.column or "")
        if column is None or column.type.name not in TIME_TYPES or column.type.array_dims:
            raise sqlite.Untranslatable(
                construct,
                "name the time column retention deletes by: "
                f"-- aragora:append-only {mark.table} (<timestamptz column>)",
            )
        state.tables[table.name] = replace(table, append_only=column.name)
        out.postgres.extend(postgres_sql(table.name, column.name))
        out.sqlite.extend(sqlite_sql(table.name, column.name))
        return
    if table.append_only is None:
        raise sqlite.Untranslatable(construct, "the table is not append-only")
    state.tables[table.name] = replace(table, append_only=None)
    row, truncate, delete = _names(table.name)
    out.postgres.extend(
        [f"DROP TRIGGER {truncate} ON {table.name}", f"DROP TRIGGER {row} ON {table.name}"]
    )
    q = sqlite_ddl.quote
    out.sqlite.extend([f"DROP TRIGGER {q(delete)}", f"DROP TRIGGER {q(row)}"])


def guard(table: Table, what: str, column: str | None = None) -> None:
    """Refuse what would leave an append-only table's triggers stale: renaming the table,
    or dropping, renaming or retyping its retention column."""
    if table.append_only is None or (column is not None and column != table.append_only):
        return
    raise sqlite.Untranslatable(
        what,
        f"{table.name} is append-only (by {table.append_only}): unmark it first "
        f"(-- aragora:not-append-only {table.name}), then mark it again",
    )
