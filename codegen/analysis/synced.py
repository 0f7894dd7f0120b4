"""Synced tables: every committed change is captured for the background sync to a cloud
PostgreSQL (``aragora_repos.sync``).

A migration marks a table with a comment line in its up (or down) section::

    -- aragora:synced debates
    -- aragora:not-synced debates

and the generator writes SQLite triggers (after INSERT, UPDATE and DELETE) that append
each change to ``sync_outbox`` in the writing transaction itself: a change is in the
outbox if and only if its transaction committed, whatever wrote it (a generated method,
raw SQL, another SQLite tool). A change is its table, its primary key (a JSON array) and
``U`` (inserted or updated: upsert the row) or ``D`` (deleted); an update that changes the
primary key captures the old key's delete first. The row's values are read when the
change is delivered, in the same read transaction as the outbox, so the capture writes
as little as it can (a whole-row copy cost the insert about twice as much again) and
values keep SQLite's own types. PostgreSQL gets nothing: it is the sync's target, never its
source.

Capture is off in a transaction that holds the ``sync_local`` row ``capture_paused`` (the
data tools write it while copying a database, and delete it before committing).

The triggers name the primary key, so they are written again after anything that
changes the table's columns (ADD, DROP, RENAME or ALTER COLUMN, a table rebuild); renaming a
synced table is refused until it is unmarked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..dialects import sqlite, sqlite_ddl
from ..model.ir import Table
from .tables import Out, State

MARKER = re.compile(
    r"^[ \t]*--[ \t]*aragora:(?P<kind>synced|not-synced)[ \t]+(?P<table>\w+)[ \t]*$",
    re.MULTILINE,
)
OUTBOX = "sync_outbox"
#: A ``sync_local`` row that turns capture off for the transaction that writes it and
#: deletes it before committing (a copy of a database: copied rows are not changes). A
#: transaction that dies with it rolls it back, so capture can never stay off.
PAUSED = "capture_paused"
#: Tables of the sync's own bookkeeping, never synced themselves.
OWN = ("sync_outbox", "sync_dead_letter", "sync_local", "sync_state", "schema_version")


@dataclass(frozen=True, slots=True)
class Mark:
    offset: int
    kind: str
    table: str


def marks(text: str, base: int) -> list[Mark]:
    return [
        Mark(base + m.start(), m.group("kind"), m.group("table")) for m in MARKER.finditer(text)
    ]


def _names(table: str) -> tuple[str, str, str]:
    return f"{table}_sync_insert", f"{table}_sync_update", f"{table}_sync_delete"


def _key(table: Table, row: str) -> str:
    columns = ", ".join(f"{row}.{sqlite_ddl.quote(k)}" for k in table.primary_key)
    return f"json_array({columns})"


def sqlite_sql(table: Table) -> list[str]:
    """The three capture triggers of ``table``."""
    insert, update, delete = _names(table.name)
    q = sqlite_ddl.quote
    name = sqlite_ddl.quote_string(table.name)
    into = f"INSERT INTO {OUTBOX} (table_name, op, row_key) VALUES"
    moved = " OR ".join(f"OLD.{q(k)} IS NOT NEW.{q(k)}" for k in table.primary_key)
    when = f"WHEN NOT EXISTS (SELECT 1 FROM sync_local WHERE name = '{PAUSED}')"
    return [
        f"CREATE TRIGGER {q(insert)} AFTER INSERT ON {q(table.name)} {when} BEGIN "
        f"{into} ({name}, 'U', {_key(table, 'NEW')}); END",
        f"CREATE TRIGGER {q(update)} AFTER UPDATE ON {q(table.name)} {when} BEGIN "
        f"INSERT INTO {OUTBOX} (table_name, op, row_key) "
        f"SELECT {name}, 'D', {_key(table, 'OLD')} WHERE {moved}; "
        f"{into} ({name}, 'U', {_key(table, 'NEW')}); END",
        f"CREATE TRIGGER {q(delete)} AFTER DELETE ON {q(table.name)} {when} BEGIN "
        f"{into} ({name}, 'D', {_key(table, 'OLD')}); END",
    ]


def drop_sql(table: str) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {sqlite_ddl.quote(n)}" for n in _names(table)]


def refresh_sql(table: Table) -> list[str]:
    """The triggers written again after the table's columns changed."""
    return [*drop_sql(table.name), *sqlite_sql(table)] if table.synced else []


def apply(mark: Mark, state: State, out: Out) -> None:
    """Mark or unmark ``mark.table``, writing SQLite's statements into ``out``."""
    table = state.tables.get(mark.table)
    construct = f"aragora:{mark.kind} {mark.table}"
    if table is None:
        raise sqlite.Refused(construct, "no such table (mark it after CREATE TABLE)")
    if mark.kind == "synced":
        if table.synced:
            raise sqlite.Refused(construct, "the table is synced already")
        if table.name in OWN:
            raise sqlite.Refused(construct, "the sync's own tables are not synced")
        if OUTBOX not in state.tables or "sync_local" not in state.tables:
            raise sqlite.Refused(
                construct,
                f"no {OUTBOX} table to capture changes into, or no sync_local (create them first)",
            )
        if not table.primary_key:
            raise sqlite.Refused(
                construct, "a synced table needs a primary key (the target upserts by it)"
            )
        table = replace(table, synced=True)
        state.tables[table.name] = table
        out.sqlite.extend(sqlite_sql(table))
        return
    if not table.synced:
        raise sqlite.Refused(construct, "the table is not synced")
    state.tables[table.name] = replace(table, synced=False)
    out.sqlite.extend(drop_sql(table.name))


def guard(table: Table, what: str) -> None:
    """Refuse renaming a synced table (the target knows it by its name)."""
    if table.synced:
        raise sqlite.Refused(
            what,
            f"{table.name} is synced: unmark it first (-- aragora:not-synced {table.name}), "
            "then mark the new name",
        )
