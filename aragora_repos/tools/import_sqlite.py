"""Adopt an existing SQLite database: write its schema as a PostgreSQL migration.

``aragora-repos import-sqlite <file.db | schema.sql>`` reads the tables, keys, foreign keys
and indexes of a SQLite schema and writes ``sql/schema/NNNN_import_<name>.sql``. Where
SQLite is loose, the PostgreSQL type is inferred from the declared type and, for a database
file, from the values the column holds: integer 0/1 columns become boolean, JSON-holding
text jsonb, timestamp text timestamptz, ``INTEGER PRIMARY KEY`` identity. Every such
decision is a *guess*: listed on the command line and at the top of the file for review.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aragora_repos.backends.sqlite import open_read_only
from aragora_repos.errors import ConfigError
from aragora_repos.migrations import create_migration

#: Rows read per column to infer a type from values.
SAMPLE = 10_000

_SIMPLE = re.compile(r"[a-z_][a-z0-9_]*\Z")
#: PostgreSQL reserved key words that appear as column names in practice.
_RESERVED = frozenset(
    [
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "constraint",
        "create",
        "current_date",
        "current_role",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "from",
        "grant",
        "group",
        "having",
        "in",
        "initially",
        "intersect",
        "into",
        "lateral",
        "leading",
        "limit",
        "localtime",
        "localtimestamp",
        "not",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "placing",
        "primary",
        "references",
        "returning",
        "select",
        "session_user",
        "some",
        "symmetric",
        "table",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "when",
        "where",
        "window",
        "with",
    ]
)
_NOW_DEFAULT = re.compile(
    r"\(?\s*(current_timestamp|datetime\s*\(\s*'now'\s*\)|strftime\s*\(.*'now'\s*\))\s*\)?\Z",
    re.IGNORECASE,
)
_FK_ACTIONS = frozenset({"NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"})
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?\Z")
_TIMESTAMP_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


#: Characters that end a line somewhere (Python's str.splitlines, editors, PostgreSQL) or
#: are invisible controls: never written as themselves into a migration file, where a
#: line break inside a name could start a line that reads as ``-- migrate:up``.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier, quoted only when it has to be.

    Raises:
        ConfigError: for a name with a line break or control character, which a migration
            file could only hold as a Unicode escape (``U&"..."``) that the generator's
            parser does not read; written as itself, a line break inside a quoted name
            could start a line that reads as ``-- migrate:up``.
    """
    if _UNSAFE.search(name):
        raise ConfigError(
            f"cannot import the name {comment_text(name)!r}: it holds a line break or "
            "control character; rename it in the source database first"
        )
    if _SIMPLE.match(name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def comment_text(text: str) -> str:
    """``text`` fit for one ``--`` comment line: line breaks and controls escaped."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def string_literal(raw: str) -> str | None:
    """A SQLite string literal (``'it''s'``) as a PostgreSQL one, or None when ``raw`` is not
    exactly one string literal or holds a line break or control character (a literal
    spanning lines could hold a line that reads as a section marker)."""
    if len(raw) < 2 or not (raw.startswith("'") and raw.endswith("'")):
        return None
    content = raw[1:-1]
    if "'" in content.replace("''", "") or _UNSAFE.search(content):
        return None
    return raw


@dataclass(slots=True)
class ImportedTable:
    name: str
    lines: list[str] = field(default_factory=list)
    indexes: list[str] = field(default_factory=list)
    parents: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ImportResult:
    path: Path | None
    sql: str
    guesses: list[str]
    tables: list[str]


def load_schema(source: Path) -> sqlite3.Connection:
    """A SQLite connection holding ``source``: the database file (read only), or a schema
    script executed statement by statement into memory (errors give file:line:col)."""
    if not source.is_file():
        raise ConfigError(f"{source}: no such file")
    if source.suffix.lower() == ".sql":
        db = sqlite3.connect(":memory:")
        statement, start, column = "", 1, 1
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if not statement.strip():
                start, column = number, len(line) - len(line.lstrip()) + 1
            statement += line + "\n"
            if sqlite3.complete_statement(statement):
                try:
                    db.execute(statement)
                except sqlite3.Error as exc:
                    db.close()
                    raise ConfigError(f"{source}:{start}:{column}: {exc}") from None
                statement = ""
        if statement.strip():
            db.close()
            raise ConfigError(f"{source}:{start}:{column}: incomplete statement (missing ';'?)")
        return db
    return open_read_only(source)


def _quote_sqlite(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Importer:
    def __init__(self, db: sqlite3.Connection, with_data: bool) -> None:
        self.db = db
        self.with_data = with_data
        self.guesses: list[str] = []

    def guess(self, where: str, what: str) -> None:
        self.guesses.append(comment_text(f"{where}: {what}"))

    def values(self, table: str, column: str) -> list[object]:
        if not self.with_data:
            return []
        rows = self.db.execute(
            f"SELECT {_quote_sqlite(column)} FROM {_quote_sqlite(table)} "
            f"WHERE {_quote_sqlite(column)} IS NOT NULL LIMIT {SAMPLE}"
        ).fetchall()
        return [r[0] for r in rows]

    def column_type(self, table: str, column: str, declared: str, rowid_key: bool) -> str:
        where = f"{table}.{column}"
        upper = declared.upper()
        values = self.values(table, column)
        seen = f"{len(values):,} value{'s' if len(values) != 1 else ''}"
        if rowid_key:
            self.guess(where, "INTEGER PRIMARY KEY (the rowid) -> bigint identity (BY DEFAULT)")
            return "BIGINT GENERATED BY DEFAULT AS IDENTITY"
        if "BOOL" in upper:
            return "BOOLEAN"
        if "INT" in upper:
            if values and all(type(v) is int and v in (0, 1) for v in values):
                self.guess(where, f"integer holding only 0/1 ({seen}) -> boolean")
                return "BOOLEAN"
            return "BIGINT"
        if any(k in upper for k in ("CHAR", "CLOB", "TEXT")) or upper == "JSON":
            if "(" in upper:
                self.guess(where, f"{declared} (length not enforced by SQLite) -> text")
            return self.text_type(where, upper, values, seen)
        if any(k in upper for k in ("REAL", "FLOA", "DOUB")):
            return "DOUBLE PRECISION"
        if "DATETIME" in upper or "TIMESTAMP" in upper:
            self.guess(where, f"declared {declared} -> timestamptz (UTC)")
            return "TIMESTAMPTZ"
        if upper == "DATE":
            return "DATE"
        if upper.startswith(("NUMERIC", "DECIMAL")):
            return "NUMERIC" + declared[declared.index("(") :] if "(" in declared else "NUMERIC"
        if "BLOB" in upper:
            return "BYTEA"
        if not upper:
            return self.untyped(where, values, seen)
        self.guess(where, f"declared {declared} (numeric affinity) -> numeric")
        return "NUMERIC"

    def text_type(self, where: str, upper: str, values: list[object], seen: str) -> str:
        texts = [v for v in values if isinstance(v, str)]
        if upper == "JSON" or (texts and len(texts) == len(values) and all(map(_is_json, texts))):
            if upper != "JSON":
                self.guess(where, f"text holding only JSON objects/arrays ({seen}) -> jsonb")
            return "JSONB"
        if texts and len(texts) == len(values):
            if all(_TIMESTAMP_TEXT.match(t) and _parses(t) for t in texts):
                self.guess(where, f"text holding only timestamps ({seen}) -> timestamptz")
                return "TIMESTAMPTZ"
            if all(_DATE_TEXT.match(t) and _parses(t) for t in texts):
                self.guess(where, f"text holding only dates ({seen}) -> date")
                return "DATE"
        return "TEXT"

    def untyped(self, where: str, values: list[object], seen: str) -> str:
        kinds = {type(v) for v in values}
        if not values:
            self.guess(where, "no declared type and no values -> text")
            return "TEXT"
        if kinds == {int}:
            self.guess(where, f"no declared type, integers ({seen}) -> bigint")
            return "BIGINT"
        if kinds <= {int, float}:
            self.guess(where, f"no declared type, numbers ({seen}) -> double precision")
            return "DOUBLE PRECISION"
        if kinds == {bytes}:
            self.guess(where, f"no declared type, blobs ({seen}) -> bytea")
            return "BYTEA"
        if kinds == {str}:
            kind = self.text_type(where, "", values, seen)
            if kind == "TEXT":
                self.guess(where, f"no declared type, text ({seen}) -> text")
            return kind
        self.guess(where, f"no declared type, mixed {sorted(k.__name__ for k in kinds)} -> text")
        return "TEXT"

    def default(self, where: str, raw: str | None, kind: str) -> str | None:
        if raw is None or raw.upper() == "NULL":
            return None
        if _NOW_DEFAULT.match(raw.strip()) and kind in ("TIMESTAMPTZ", "DATE", "TEXT"):
            if kind == "TEXT":
                self.guess(where, f"default {raw} on a text column -> now()::text")
                return "(now()::text)"
            return "CURRENT_DATE" if kind == "DATE" else "now()"
        if kind == "BOOLEAN" and raw in ("0", "1", "'0'", "'1'"):
            return "true" if raw.strip("'") == "1" else "false"
        if _NUMBER.match(raw) and kind not in ("JSONB", "BYTEA"):
            return f"'{raw}'" if kind == "TEXT" else raw
        literal = string_literal(raw)
        if literal is not None:
            return f"{literal}::jsonb" if kind == "JSONB" else literal
        self.guess(where, f"default {raw} not translated (left out)")
        return None

    def table(self, name: str) -> ImportedTable:
        sql = self.db.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()[0]
        info = self.db.execute(f"PRAGMA table_info({_quote_sqlite(name)})").fetchall()
        pk = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        out = ImportedTable(name)
        autoincrement = "AUTOINCREMENT" in sql.upper()
        for _cid, column, declared, not_null, default, key in info:
            rowid_key = len(pk) == 1 and key == 1 and declared.upper() == "INTEGER"
            if rowid_key and autoincrement:
                self.guess(f"{name}.{column}", "AUTOINCREMENT: keys never reused, as identity")
            kind = self.column_type(name, column, declared or "", rowid_key)
            parts = [f"    {ident(column)} {kind}"]
            if len(pk) == 1 and key == 1:
                parts.append("PRIMARY KEY")
            elif not_null:
                parts.append("NOT NULL")
            value = self.default(f"{name}.{column}", default, kind.split()[0])
            if value is not None:
                parts.append(f"DEFAULT {value}")
            out.lines.append(" ".join(parts))
        if len(pk) > 1:
            out.lines.append(f"    PRIMARY KEY ({', '.join(ident(c) for c in pk)})")
        self.foreign_keys(name, out)
        self.indexes(name, out)
        if re.search(r"\bCHECK\s*\(", sql, re.IGNORECASE):
            self.guess(name, "CHECK constraints are not imported (SQLite expressions); add them")
        return out

    def foreign_keys(self, name: str, out: ImportedTable) -> None:
        keys: dict[int, list[tuple[str, str | None, str, str, str]]] = {}
        for row in self.db.execute(f"PRAGMA foreign_key_list({_quote_sqlite(name)})"):
            key_id, _seq, parent, child_col, parent_col, on_update, on_delete = row[:7]
            keys.setdefault(key_id, []).append(
                (child_col, parent_col, parent, on_update, on_delete)
            )
        for parts in keys.values():
            parent = parts[0][2]
            out.parents.add(parent)
            children = ", ".join(ident(p[0]) for p in parts)
            targets = [p[1] for p in parts]
            refs = f" ({', '.join(ident(t) for t in targets if t)})" if all(targets) else ""
            line = f"    FOREIGN KEY ({children}) REFERENCES {ident(parent)}{refs}"
            for action, word in ((parts[0][4], "DELETE"), (parts[0][3], "UPDATE")):
                if action and action.upper() in _FK_ACTIONS and action.upper() != "NO ACTION":
                    line += f" ON {word} {action.upper()}"
            out.lines.append(line)

    def indexes(self, name: str, out: ImportedTable) -> None:
        for _seq, index, unique, origin, partial in self.db.execute(
            f"PRAGMA index_list({_quote_sqlite(name)})"
        ).fetchall():
            if origin == "pk":
                continue
            columns = self.db.execute(f"PRAGMA index_xinfo({_quote_sqlite(index)})").fetchall()
            keyed = [c for c in columns if c[5]]
            if any(c[1] < 0 for c in keyed):
                self.guess(f"{name}: index {index}", "on an expression: not imported")
                continue
            names = ", ".join(ident(c[2]) + (" DESC" if c[3] else "") for c in keyed)
            if origin == "u":
                out.lines.append(f"    UNIQUE ({names})")
                continue
            index_name = index
            if _UNSAFE.search(index):
                index_name = f"{name}_idx_{_seq}"
                self.guess(
                    f"{name}: index {index}",
                    f"name with a line break or control character, renamed {index_name}",
                )
            statement = (
                f"CREATE {'UNIQUE ' if unique else ''}INDEX {ident(index_name)} "
                f"ON {ident(name)} ({names})"
            )
            if partial:
                sql = self.db.execute(
                    "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?", (index,)
                ).fetchone()[0]
                predicate = sql[sql.upper().rindex(" WHERE ") + 7 :]
                if _UNSAFE.search(predicate) or any(t in predicate for t in ("--", "/*", ";")):
                    self.guess(
                        f"{name}: index {index}",
                        "partial index predicate with a line break, comment or ';': not imported",
                    )
                    continue
                statement += f" WHERE {predicate}"
                self.guess(f"{name}: index {index}", "partial index predicate copied as written")
            out.indexes.append(statement + ";")


def _is_json(text: str) -> bool:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _parses(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def import_sqlite(
    source: Path, schema_dir: Path | None = None, *, tables: Sequence[str] | None = None
) -> ImportResult:
    """Read ``source`` and, when ``schema_dir`` is given, write the next migration there."""
    from aragora_repos.tools.migrate_data import fk_order

    db = load_schema(source)
    try:
        importer = _Importer(db, with_data=source.suffix.lower() != ".sql")
        names = [
            r[0]
            for r in db.execute(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall()
            if not (r[1] or "").upper().startswith("CREATE VIRTUAL TABLE")
        ]
        virtual = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_schema WHERE sql LIKE 'CREATE VIRTUAL TABLE%'"
            ).fetchall()
        ]
        for v in virtual:
            importer.guess(v, "virtual table (full-text index?) not imported")
        names = [n for n in names if not any(n.startswith(v + "_") for v in virtual)]
        if tables:
            unknown = sorted(set(tables) - set(names))
            if unknown:
                raise ConfigError(f"{source}: no table {', '.join(unknown)}")
            names = [n for n in names if n in tables]
        imported = {n: importer.table(n) for n in names}
    finally:
        db.close()
    order = fk_order(names, [(n, p) for n, t in imported.items() for p in t.parents])
    body = []
    for name in order:
        table = imported[name]
        body.append(f"CREATE TABLE {ident(name)} (\n" + ",\n".join(table.lines) + "\n);")
        body.extend(table.indexes)
    review = "".join(f"-- review: {g}\n" for g in importer.guesses)
    sql = (
        f"-- Imported from {comment_text(source.name)} by aragora-repos import-sqlite.\n"
        f"{review}"
        "-- migrate:up\n"
        + "\n\n".join(body)
        + "\n\n-- migrate:down\n"
        + "".join(f"DROP TABLE {ident(n)};\n" for n in reversed(order))
    )
    path = None
    if schema_dir is not None:
        path = create_migration(schema_dir, f"import {source.stem}", text=sql)
    return ImportResult(path, sql, importer.guesses, order)
