"""SQLite DDL for the schema IR: STRICT tables, columns, keys, FTS5 indexes, quoting.

The schema analysis (:mod:`codegen.analysis.schema`) writes each migration's SQLite
statements with these, and the renderer the schema snapshots.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Callable, Container

from sqlglot import exp

from ..model import types
from ..model.ir import Column, ForeignKey, PgType, Table
from .sqlite import Untranslatable

_RESERVED_DEFAULT = re.compile(r"^[-+]?\d+(\.\d+)?$")


def quote(name: str) -> str:
    """``name`` as a SQLite identifier: bare when SQLite reads it back as that very name
    (lowercase, and not a word its parser takes as a keyword there), quoted otherwise."""
    if _BARE.match(name) and _bare_ok(name):
        return name
    return exp.to_identifier(name, quoted=True).sql("sqlite")


_BARE = re.compile(r"[a-z_][a-z0-9_]*\Z")


@functools.lru_cache(maxsize=4096)
def _bare_ok(name: str) -> bool:
    """SQLite itself decides: a keyword such as ``order`` is refused as a bare column or
    table name, a fallback keyword such as ``action`` taken."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"CREATE TABLE {name} ({name} INTEGER)")
        db.execute(f"SELECT {name} FROM {name} WHERE {name} = 1 ORDER BY {name}")
    except sqlite3.Error:
        return False
    finally:
        db.close()
    return True


def is_literal(sql: str) -> bool:
    """A number or a single string literal: a constant DEFAULT on SQLite."""
    if _RESERVED_DEFAULT.match(sql):
        return True
    return sql.startswith("'") and sql.endswith("'") and "'" not in sql[1:-1].replace("''", "")


def column_sql(col: Column, table: Table, enum_values: dict[str, tuple[str, ...]]) -> str:
    """One column definition of a STRICT table (sqlite.org/stricttables.html)."""
    name = quote(col.name)
    pk_single = table.primary_key == (col.name,)
    storage = "BLOB" if col.encrypted else storage_of(col.type, enum_values)
    if col.identity:
        if not pk_single or storage != "INTEGER":
            kind = col.pg_type_sql or "serial"
            plain = {"bigserial": "BIGINT", "smallserial": "SMALLINT"}.get(kind, "INTEGER")
            raise Untranslatable(
                f"identity column {col.name}",
                "only a single-column integer primary key can auto-increment on sqlite "
                "(a sequence has no sqlite equivalent); write either "
                f"'{col.name} {kind.upper()} PRIMARY KEY' (and key the table by it), or "
                f"'{col.name} {plain} NOT NULL' and give each row its value in the INSERT",
            )
        # AUTOINCREMENT: ids are never reused, as with a PostgreSQL sequence (autoinc.html).
        return f"{name} INTEGER PRIMARY KEY AUTOINCREMENT"
    parts = [name, storage]
    if col.not_null or col.name in table.primary_key:
        parts.append("NOT NULL")  # a non-INTEGER primary key would accept NULL otherwise
    if pk_single:
        parts.append("PRIMARY KEY")
    if col.default_sqlite is not None:
        default = col.default_sqlite
        # An expression DEFAULT must be parenthesised (lang_createtable.html §3.2).
        parts.append(f"DEFAULT {default}" if is_literal(default) else f"DEFAULT ({default})")
    checks = []
    if col.encrypted:
        pass  # ciphertext: no check can read it
    elif col.type.array_dims or col.type.name in ("json", "jsonb"):
        # json_valid(NULL) is 0 before SQLite 3.45, so a nullable column says so itself.
        checks.append(
            f"json_valid({name})" if col.not_null else f"{name} IS NULL OR json_valid({name})"
        )
    elif col.type.name == "bool":
        checks.append(f"{name} IN (0, 1)")
    elif col.type.name in enum_values:
        values = ", ".join(exp.Literal.string(v).sql("sqlite") for v in enum_values[col.type.name])
        checks.append(f"{name} IN ({values})")
    parts.extend(f"CHECK ({c})" for c in checks)
    bounds = INT_RANGES.get(col.type.name)
    if bounds is not None and not col.type.array_dims and not col.identity:
        # SQLite integers are 64-bit: arithmetic that leaves the PostgreSQL type's range
        # (count + 1 at 2^31 - 1) must fail as it does there. The named constraint is
        # mapped to DataError 22003 by aragora_repos.errors.
        low, high = bounds
        parts.append(f"CONSTRAINT {col.type.name}_range CHECK ({name} BETWEEN {low} AND {high})")
    return " ".join(parts)


#: Ranges of the PostgreSQL integer types narrower than SQLite's 64-bit INTEGER.
INT_RANGES = {"int2": (-32768, 32767), "int4": (-2147483648, 2147483647)}


def storage_of(t: PgType, enums: Container[str]) -> str:
    """The STRICT storage class of a column: arrays and enums are TEXT (JSON text and a
    CHECKed label), everything else as in the type table."""
    if t.array_dims or t.name in enums:
        return "TEXT"
    info = types.BUILTIN.get(t.name)
    if info is None:
        raise Untranslatable(f"type {t.name}", "no sqlite storage is defined for it")
    return info.sqlite_storage


def foreign_key_sql(fk: ForeignKey, name: Callable[[str], str]) -> str:
    """``FOREIGN KEY (...) REFERENCES t (...) [ON DELETE ...]``, names rendered by ``name``."""
    clause = (
        f"FOREIGN KEY ({', '.join(name(c) for c in fk.columns)}) REFERENCES "
        f"{name(fk.ref_table)} ({', '.join(name(c) for c in fk.ref_columns)})"
    )
    if fk.on_delete:
        clause += f" ON DELETE {fk.on_delete}"
    if fk.on_update:
        clause += f" ON UPDATE {fk.on_update}"
    return clause


def create_table_sql(table: Table, enum_values: dict[str, tuple[str, ...]]) -> str:
    lines = [column_sql(c, table, enum_values) for c in table.columns]
    if len(table.primary_key) > 1:
        lines.append(f"PRIMARY KEY ({', '.join(quote(c) for c in table.primary_key)})")
    lines.extend(f"UNIQUE ({', '.join(quote(c) for c in u)})" for u in table.uniques)
    lines.extend(f"CHECK ({c.sqlite})" for c in table.checks)
    lines.extend(foreign_key_sql(fk, quote) for fk in table.foreign_keys)
    body = ",\n    ".join(lines)
    return f"CREATE TABLE {quote(table.name)} (\n    {body}\n) STRICT"


def fts_index_sql(name: str, table: str, key: str, column: str) -> tuple[str, tuple[str, ...]]:
    """An FTS5 external-content table over ``table.column`` and the statements that keep
    it current: insert/delete/update triggers, then a rebuild from the table's rows."""
    q, t, k, c = quote(name), quote(table), quote(key), quote(column)
    create = (
        f"CREATE VIRTUAL TABLE {q} USING fts5({c}, content={quote_string(table)}, "
        f"content_rowid={quote_string(key)}, tokenize='unicode61 remove_diacritics 0')"
    )
    delete = f"INSERT INTO {q} ({q}, rowid, {c}) VALUES ('delete', old.{k}, old.{c});"
    insert = f"INSERT INTO {q} (rowid, {c}) VALUES (new.{k}, new.{c});"
    triggers = (
        f"CREATE TRIGGER {quote(name + '_ai')} AFTER INSERT ON {t} BEGIN {insert} END",
        f"CREATE TRIGGER {quote(name + '_ad')} AFTER DELETE ON {t} BEGIN {delete} END",
        f"CREATE TRIGGER {quote(name + '_au')} AFTER UPDATE OF {k}, {c} ON {t} "
        f"BEGIN {delete} {insert} END",
        f"INSERT INTO {q} ({q}) VALUES ('rebuild')",
    )
    return create, triggers


def fts_drop_sql(name: str) -> tuple[str, ...]:
    return (
        *(f"DROP TRIGGER IF EXISTS {quote(name + s)}" for s in ("_ai", "_ad", "_au")),
        f"DROP TABLE {quote(name)}",
    )


def quote_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
