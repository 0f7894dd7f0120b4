"""Encrypted columns: a migration marks them with a comment line in a section::

    -- aragora:encrypted webhooks (secret)
    -- aragora:encrypted integrations (config) by (org_id, provider)
    -- aragora:not-encrypted webhooks (secret)

A marked column is stored as bytes on both backends (``bytea``; ``BLOB`` in a STRICT
table) and keeps its declared type in the generated code, which seals each value with
AES-256-GCM bound to its table, column and row key (``aragora_repos.keyring``). The row
key is the primary key unless ``by (...)`` names a unique key instead: an upsert whose
conflict target is that key then updates a row whose key is the one the value was
sealed with.

Marking converts the stored values in the same migration: the column becomes bytes
holding the text's UTF-8, then a data step the runtime runs before the next statement
seals every value (it needs the key only when the table has rows). Unmarking opens them
first, then converts back. A marked column cannot be compared, ordered, grouped,
indexed or searched (its values are ciphertext); the queries' side of that is checked in
:mod:`codegen.model.encryption`, the schema's here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlglot import exp

from ..dialects import sqlite
from ..model.encryption import KINDS
from ..model.ir import Crypt, Encrypted, Table
from .tables import Out, State

_NAMES = r"[ \t]*\((?P<{0}>[ \t]*\w+(?:[ \t]*,[ \t]*\w+)*[ \t]*)\)"
MARKER = re.compile(
    r"^[ \t]*--[ \t]*aragora:(?P<kind>encrypted|not-encrypted)[ \t]+(?P<table>\w+)"
    + _NAMES.format("columns")
    + r"(?:[ \t]+by"
    + _NAMES.format("key")
    + r")?(?:[ \t]+(?P<deterministic>deterministic))?[ \t]*$",
    re.MULTILINE,
)
RebuildFn = Callable[[Table, dict[str, str], State], list[str]]
"""SQLite's table rebuild with a cast per converted column (``codegen.analysis.alter``)."""

VALUE_TYPES = KINDS
"""Declared types an encrypted column may have: what seals as text, JSON or bytes."""
#: Row key types whose values read back the same on both backends.
KEY_TYPES = ("text", "varchar", "int2", "int4", "int8", "uuid")


@dataclass(frozen=True, slots=True)
class Mark:
    offset: int
    kind: str
    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    deterministic: bool = False


Refused = sqlite.Refused
"""An encrypted-column marker or a use of an encrypted column that is refused."""


def _split(names: str | None) -> tuple[str, ...]:
    return tuple(n.strip() for n in names.split(",")) if names else ()


def marks(text: str, base: int) -> list[Mark]:
    return [
        Mark(
            base + m.start(),
            m.group("kind"),
            m.group("table"),
            _split(m.group("columns")),
            _split(m.group("key")),
            bool(m.group("deterministic")),
        )
        for m in MARKER.finditer(text)
    ]


def _row_key(table: Table, mark: Mark, construct: str) -> tuple[str, ...]:
    if mark.deterministic:
        if mark.key:
            raise Refused(
                construct,
                "a deterministic column is bound to its table and column only: drop by (...)",
            )
        if not table.primary_key:
            raise Refused(construct, f"{table.name} has no primary key to find its rows by")
        return table.primary_key
    key = mark.key or table.primary_key
    if not key:
        raise Refused(
            construct,
            f"{table.name} has no primary key: name a unique key the values are bound to "
            f"(-- aragora:encrypted {table.name} (...) by (<columns>))",
        )
    for name in key:
        col = table.column(name)
        if col is None:
            raise Refused(construct, f"row key column {name}: no such column")
        if not col.not_null or col.type.name not in KEY_TYPES or col.type.array_dims:
            raise Refused(
                construct,
                f"row key column {name} must be NOT NULL text, an integer or a uuid "
                f"(it is {col.pg_type_sql}{'' if col.not_null else ', nullable'})",
            )
        if col.encrypted:
            raise Refused(construct, f"row key column {name} is encrypted")
    if set(key) != set(table.primary_key) and set(key) not in [set(u) for u in table.uniques]:
        raise Refused(
            construct, f"the row key ({', '.join(key)}) is neither the primary key nor unique"
        )
    return key


def _unique_alone(table: Table, name: str, state: State) -> bool:
    """Whether no two rows of ``table`` can hold the same ``name``."""
    return (
        table.primary_key == (name,)
        or (name,) in table.uniques
        or any(
            i.table == table.name and i.unique and i.leading == (name,) and i.columns == (name,)
            for i in state.indexes.values()
        )
    )


def _refuse_constrained(
    table: Table, name: str, state: State, construct: str, deterministic: bool
) -> None:
    why = ""
    if not deterministic and (name in table.primary_key or any(name in u for u in table.uniques)):
        why = "it is part of a key (mark it deterministic to keep it one)"
    elif any(name in fk.columns for fk in table.foreign_keys) or any(
        fk.ref_table == table.name and name in fk.ref_columns
        for t in state.tables.values()
        for fk in t.foreign_keys
    ):
        why = "it is part of a foreign key"
    elif any(re.search(rf"\b{re.escape(name)}\b", c.postgres) for c in table.checks):
        why = "a CHECK constraint reads it"
    elif not deterministic and any(
        i.table == table.name and name in i.columns for i in state.indexes.values()
    ):
        why = "an index covers it (mark it deterministic to keep it indexed)"
    if why:
        raise Refused(
            construct,
            f"{table.name}.{name}: {why}, and its values would be ciphertext "
            "(an encrypted column cannot be compared, ordered, grouped, indexed or searched)",
        )


def apply(mark: Mark, state: State, out: Out, rebuild: RebuildFn) -> None:
    """Mark or unmark columns of ``mark.table``, writing each dialect's statements and the
    data steps into ``out``."""
    table = state.tables.get(mark.table)
    construct = (
        f"cannot encrypt columns of {mark.table}"
        if mark.kind == "encrypted"
        else f"cannot unmark columns of {mark.table}"
    )
    if table is None:
        raise Refused(construct, "no such table (mark it after CREATE TABLE)")
    if mark.kind == "not-encrypted":
        if mark.key:
            raise Refused(construct, "by (...) belongs to the encrypted marker")
        casts = {}
        for name in mark.columns:
            found = table.encryption(name)
            col = table.column(name)
            if found is None or col is None:
                raise Refused(construct, f"{table.name}.{name} is not encrypted")
            # Open the values first: the conversion back needs plaintext.
            out.crypts.append(
                Crypt(
                    table.name,
                    name,
                    table.primary_key if found.deterministic else found.row_key,
                    False,
                    len(out.postgres),
                    len(out.sqlite),
                    found.deterministic,
                )
            )
            using = f"convert_from({name}, 'UTF8')"
            declared = col.type.name
            if VALUE_TYPES[declared] == "json":
                using += f"::{declared}"
            elif VALUE_TYPES[declared] == "bytes":
                using = name
            out.postgres.append(
                f"ALTER TABLE {table.name} ALTER COLUMN {name} TYPE {_declared_sql(col.type.name)}"
                f" USING {using}"
            )
            casts[name] = "BLOB" if VALUE_TYPES[declared] == "bytes" else "TEXT"
            table = replace(
                table,
                columns=tuple(
                    replace(c, encrypted=False, pg_type_sql=_declared_sql(c.type.name))
                    if c.name == name
                    else c
                    for c in table.columns
                ),
                encrypted=tuple(e for e in table.encrypted if e.column != name),
            )
        state.tables[table.name] = table
        out.sqlite.extend(rebuild(table, casts, state))
        out.rebuild = True
        out.last_rebuild = None
        return
    key = _row_key(table, mark, construct)
    columns = list(table.columns)
    added: list[Encrypted] = []
    for name in mark.columns:
        at = next((i for i, c in enumerate(columns) if c.name == name), None)
        if at is None:
            raise Refused(construct, f"column {name}: no such column")
        col = columns[at]
        if col.encrypted:
            raise Refused(construct, f"{table.name}.{name} is encrypted already")
        if col.type.name not in VALUE_TYPES or col.type.array_dims:
            raise Refused(
                construct,
                f"{table.name}.{name} is {col.pg_type_sql}: an encrypted column "
                "holds text, json, jsonb or bytea",
            )
        if name in key and not mark.deterministic:
            raise Refused(construct, f"{name} is the row key; it stays plain")
        if mark.deterministic and not _unique_alone(table, name, state):
            # A lookup tries the ring's keys in turn and stops at the first that finds a
            # row: exact only when no two rows hold the value (each is under one key).
            raise Refused(
                construct,
                f"{table.name}.{name} is not unique: a deterministic column is found by its "
                "value, so it must be the primary key or UNIQUE on its own",
            )
        _refuse_constrained(table, name, state, construct, mark.deterministic)
        if col.default_pg is not None:
            out.postgres.append(f"ALTER TABLE {table.name} ALTER COLUMN {name} DROP DEFAULT")
        using = (
            name if VALUE_TYPES[col.type.name] == "bytes" else f"convert_to({name}::text, 'UTF8')"
        )
        out.postgres.append(
            f"ALTER TABLE {table.name} ALTER COLUMN {name} TYPE bytea USING {using}"
        )
        columns[at] = replace(
            col, encrypted=True, pg_type_sql="bytea", default_pg=None, default_sqlite=None
        )
        added.append(Encrypted(name, () if mark.deterministic else key, mark.deterministic))
    table = replace(table, columns=tuple(columns), encrypted=table.encrypted + tuple(added))
    state.tables[table.name] = table
    out.sqlite.extend(rebuild(table, {e.column: "BLOB" for e in added}, state))
    out.rebuild = True
    out.last_rebuild = None
    # The values are bytes of plaintext now; seal them before the next statement.
    out.crypts.extend(
        Crypt(
            table.name,
            e.column,
            key,
            True,
            len(out.postgres),
            len(out.sqlite),
            e.deterministic,
        )
        for e in added
    )


def _declared_sql(type_name: str) -> str:
    return {"bpchar": "char"}.get(type_name, type_name)


def guard(table: Table, what: str, column: str | None = None) -> None:
    """Refuse what would strand sealed values: renaming the table (its name is bound into
    every value), or dropping, renaming or retyping an encrypted or row key column."""
    if not table.encrypted:
        return
    if column is None or column in table.row_key_columns() or table.encryption(column):
        names = ", ".join(e.column for e in table.encrypted)
        raise Refused(
            f"cannot {what}",
            f"{table.name} has encrypted columns ({names}) bound to its name and row key: "
            f"unmark them first (-- aragora:not-encrypted {table.name} ({names}))",
        )


def refuse_in(node: exp.Expr, tables: list[Table], what: str, *, index: bool = False) -> None:
    """Refuse an index, view or constraint expression that reads an encrypted column of
    ``tables``; an ``index`` may list a deterministic column itself (equal values seal
    alike, so the index serves lookups by value)."""
    for col in node.find_all(exp.Column):
        for table in tables:
            found = table.encryption(col.name)
            if found is None or (col.table and col.table != table.name):
                continue
            if index and found.deterministic and isinstance(col.parent, exp.Ordered):
                continue
            raise Refused(
                f"cannot create {what}",
                f"it reads {table.name}.{col.name}, which is encrypted (its values "
                "are ciphertext: it cannot be compared, ordered, grouped, indexed or searched)",
            )
