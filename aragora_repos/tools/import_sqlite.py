"""Adopt an existing SQLite database: write its schema as a PostgreSQL migration.

``aragora-repos import-sqlite <file.db | schema.sql>`` reads the tables, keys, foreign keys,
CHECK constraints, defaults and indexes of a SQLite schema and writes
``sql/schema/NNNN_import_<name>.sql``.

- Types come from the declared type and, for a database file, from every value of the
  column (:mod:`aragora_repos.tools.infer`); a column is never narrowed beyond what its
  declared type says unless the evidence covers every value, and each such decision is a
  *guess*, listed on the command line and at the top of the file for review.
- A foreign-key column takes its referenced column's type. Foreign keys are added after
  every table exists (``ALTER TABLE ... ADD CONSTRAINT``), so cycles and references to
  tables of earlier migrations work.
- Defaults and CHECK constraints are translated; partial-index predicates and CHECKs are
  rewritten for columns that became boolean (``verified = 0`` -> ``verified = false``).
  One the generator cannot take is left out and listed, never written broken.
- Tables the project's schema already has are mapped onto, not recreated: source columns
  they lack are added (listed). Migration runners' bookkeeping tables are not imported.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aragora_repos.backends.sqlite import open_read_only
from aragora_repos.errors import ConfigError
from aragora_repos.migrations import create_migration
from aragora_repos.tools.infer import IDENTITY, Decision, Facts, decide, scan
from aragora_repos.tools.migrate_data.state import RUNNER_TABLES, quote

if TYPE_CHECKING:
    from sqlglot import exp

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
    r"(current_timestamp|datetime\s*\(\s*'now'\s*\)|strftime\s*\(.*'now'\s*\)"
    r"|unixepoch\s*\(\s*\))\Z",
    re.IGNORECASE,
)
_FK_ACTIONS = frozenset({"NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"})
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?\Z")


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
class ImportResult:
    path: Path | None
    """The migration written, or None (``--print``, or nothing to import)."""
    sql: str
    guesses: list[str]
    tables: list[str]
    """Tables created, parents first."""
    mapped: list[str] = field(default_factory=list)
    """Tables the project already has, mapped onto."""


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


@dataclass(slots=True)
class _Column:
    name: str
    declared: str
    not_null: bool
    default: str | None
    decision: Decision
    facts: Facts

    @property
    def kind(self) -> str:
        return self.decision.kind


@dataclass(slots=True)
class _ForeignKey:
    columns: list[str]
    parent: str
    parent_columns: list[str] | None
    on_update: str
    on_delete: str


@dataclass(slots=True)
class _Table:
    name: str
    columns: list[_Column]
    pk: list[str]
    uniques: list[list[str]]
    foreign_keys: list[_ForeignKey]
    checks: list[tuple[str | None, exp.Expression]]
    """(constraint name, expression) of every CHECK, column CHECKs included."""
    indexes: list[tuple[str, bool, list[str], exp.Expression | None]]
    """(name, unique, ``column [DESC]`` items, partial predicate)."""
    keys: list[list[str]] = field(default_factory=list)
    """Column lists some unique constraint or unique index covers (foreign keys may
    reference them)."""

    def column(self, name: str) -> _Column | None:
        folded = name.casefold()
        return next((c for c in self.columns if c.name.casefold() == folded), None)


class _Project:
    """The tables the project's migrations already create: name -> {column: type}, and
    their unique keys (foreign keys may point at them)."""

    def __init__(self, schema_dir: Path | None) -> None:
        self.types: dict[str, dict[str, str]] = {}
        self.keys: dict[str, list[list[str]]] = {}
        self.files: dict[str, str] = {}
        if schema_dir is None or not any(schema_dir.glob("[0-9][0-9][0-9][0-9]_*.sql")):
            return
        try:
            from codegen.analysis.schema import analyse_schema
            from codegen.errors import CodegenError
        except ImportError:
            raise ConfigError(
                f"{schema_dir} holds migrations: reading them needs the generator "
                "(pip install 'aragora-repos[codegen]')"
            ) from None
        self.files = files = {
            p.name: p.read_text(encoding="utf-8")
            for p in sorted(schema_dir.glob("[0-9][0-9][0-9][0-9]_*.sql"))
        }
        try:
            catalog, _ = analyse_schema(files)
        except CodegenError as exc:
            raise ConfigError(
                f"{schema_dir}: the existing schema does not analyse:\n{exc}"
            ) from None
        for table in catalog.tables:
            self.types[table.name] = {
                c.name: _SERIAL.get(c.pg_type_sql.lower(), c.pg_type_sql.upper())
                for c in table.columns
            }
            self.keys[table.name] = [list(table.primary_key), *(list(u) for u in table.uniques)]
            self.keys[table.name] += [
                list(i.columns) for i in catalog.indexes if i.table == table.name and i.unique
            ]


_SERIAL = {"bigserial": "BIGINT", "serial": "INTEGER", "smallserial": "SMALLINT"}


class _Importer:
    def __init__(self, db: sqlite3.Connection, with_data: bool, project: _Project) -> None:
        self.db = db
        self.with_data = with_data
        self.project = project
        self.guesses: list[str] = []

    def guess(self, where: str, what: str) -> None:
        self.guesses.append(comment_text(f"{where}: {what}"))

    def read(self, name: str) -> _Table:
        import sqlglot
        from sqlglot import exp as e

        sql = self.db.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()[0]
        info = self.db.execute(f"PRAGMA table_xinfo({quote(name)})").fetchall()
        for row in info:
            if row[6] in (2, 3):
                self.guess(f"{name}.{row[1]}", "generated column: not imported (computed)")
        info = [r for r in info if r[6] not in (1, 2, 3)]
        pk = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        try:
            tree = sqlglot.parse_one(sql, read="sqlite")
        except sqlglot.errors.ParseError:
            tree = None
            if re.search(r"\bCHECK\s*\(", sql, re.IGNORECASE):
                self.guess(name, "CHECK constraints not read (the table's SQL does not parse)")
        checks: list[tuple[str | None, e.Expression]] = []
        if tree is not None:
            for node in tree.find_all(e.CheckColumnConstraint):
                cname = node.parent.name or None if isinstance(node.parent, e.Constraint) else None
                checks.append((cname, node.this))
        flags = {c for _, check in checks for c in _zero_one_columns(check)}
        columns = []
        for _cid, column, declared, not_null, default, key, _hidden in info:
            rowid_key = len(pk) == 1 and key == 1 and (declared or "").upper() == "INTEGER"
            facts = scan(self.db, name, column) if self.with_data else Facts()
            decision = decide(
                column,
                declared or "",
                facts,
                rowid_key=rowid_key,
                flag_check=column.casefold() in flags,
            )
            now_default = default is not None and _NOW_DEFAULT.match(_unwrap(default))
            if decision.kind == "TEXT" and now_default and facts.timestamps and facts.utf8:
                decision = Decision(
                    "TIMESTAMPTZ",
                    f"text with DEFAULT {default}, "
                    + (f"every value a timestamp ({facts.seen})" if facts.values else "empty")
                    + " -> timestamptz",
                )
            if decision.guess:
                self.guess(f"{name}.{column}", decision.guess)
            if rowid_key and "AUTOINCREMENT" in sql.upper():
                self.guess(f"{name}.{column}", "AUTOINCREMENT: keys never reused, as identity")
            if not facts.utf8:
                self.guess(
                    f"{name}.{column}", "holds text that is not UTF-8 (those rows will be rejected)"
                )
            columns.append(
                _Column(column, declared or "", bool(not_null), default, decision, facts)
            )
        table = _Table(name, columns, pk, [], self.foreign_keys(name), checks, [])
        self.indexes(table)
        return table

    def foreign_keys(self, name: str) -> list[_ForeignKey]:
        keys: dict[int, _ForeignKey] = {}
        for row in self.db.execute(f"PRAGMA foreign_key_list({quote(name)})"):
            key_id, _seq, parent, child_col, parent_col, on_update, on_delete = row[:7]
            key = keys.setdefault(key_id, _ForeignKey([], parent, [], on_update, on_delete))
            key.columns.append(child_col)
            if key.parent_columns is not None:
                if parent_col is None:
                    key.parent_columns = None
                else:
                    key.parent_columns.append(parent_col)
        return list(keys.values())

    def indexes(self, table: _Table) -> None:
        import sqlglot
        from sqlglot import exp as e

        for seq, index, unique, origin, partial in self.db.execute(
            f"PRAGMA index_list({quote(table.name)})"
        ).fetchall():
            if origin == "pk":
                continue
            columns = self.db.execute(f"PRAGMA index_xinfo({quote(index)})").fetchall()
            keyed = [c for c in columns if c[5]]
            where = f"{table.name}: index {index}"
            if any(c[1] < 0 for c in keyed):
                self.guess(where, "on an expression: not imported")
                continue
            if unique and not partial:
                table.keys.append([c[2] for c in keyed])
            if origin == "u":
                table.uniques.append([c[2] for c in keyed])
                continue
            items = [ident(c[2]) + (" DESC" if c[3] else "") for c in keyed]
            predicate = None
            if partial:
                sql = self.db.execute(
                    "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?", (index,)
                ).fetchone()[0]
                try:
                    found = sqlglot.parse_one(sql, read="sqlite").find(e.Where)
                except sqlglot.errors.ParseError:
                    found = None
                if found is None:
                    self.guess(where, "partial index predicate does not parse: not imported")
                    continue
                predicate = found.this
            name = index
            if _UNSAFE.search(index):
                name = f"{table.name}_idx_{seq}"
                self.guess(where, f"name with a line break or control character, renamed {name}")
            table.indexes.append((name, bool(unique), items, predicate))


def _zero_one(node: Any) -> bool:
    from sqlglot import exp as e

    return isinstance(node, e.Literal) and not node.is_string and node.this in ("0", "1")


def _zero_one_columns(check: exp.Expression) -> set[str]:
    """Columns a CHECK holds to 0 and 1: ``x IN (0, 1)``, ``x BETWEEN 0 AND 1``."""
    from sqlglot import exp as e

    found: set[str] = set()
    for node in check.find_all(e.In, e.Between):
        if not isinstance(node.this, e.Column):
            continue
        if isinstance(node, e.In):
            values = node.expressions
            if values and all(_zero_one(v) for v in values):
                found.add(node.this.name.casefold())
        elif _zero_one(node.args.get("low")) and _zero_one(node.args.get("high")):
            found.add(node.this.name.casefold())
    return found


def _rewrite(node: exp.Expression, table: _Table) -> exp.Expression:
    """``node`` for PostgreSQL: column references spelled as the columns are (SQLite
    matches names case-insensitively) and 0/1 compared with a boolean column as false/true."""
    from sqlglot import exp as e

    booleans = {c.name.casefold() for c in table.columns if c.kind == "BOOLEAN"}

    def as_bool(value: Any) -> Any:
        return e.Boolean(this=value.this == "1") if _zero_one(value) else value

    def fix(n: exp.Expression) -> exp.Expression:
        if isinstance(n, e.Column) and not n.table:
            column = table.column(n.name)
            if column is not None:
                quoted = ident(column.name) != column.name
                return e.Column(this=e.Identifier(this=column.name, quoted=quoted))
        if isinstance(n, e.EQ | e.NEQ):
            left, right = n.this, n.expression
            if isinstance(left, e.Column) and left.name.casefold() in booleans:
                n.set("expression", as_bool(right))
            elif isinstance(right, e.Column) and right.name.casefold() in booleans:
                n.set("this", as_bool(left))
        if (
            isinstance(n, e.In)
            and isinstance(n.this, e.Column)
            and n.this.name.casefold() in booleans
        ):
            n.set("expressions", [as_bool(v) for v in n.expressions])
        return n

    return node.copy().transform(fix)


def _fk_name(child: str, columns: list[str], taken: set[str]) -> str:
    base = f"{child}_{'_'.join(columns)}_fkey"
    name, n = base.encode()[:63].decode("utf-8", "ignore"), 1
    while name in taken:
        n += 1
        suffix = f"_{n}"
        name = base.encode()[: 63 - len(suffix)].decode("utf-8", "ignore") + suffix
    taken.add(name)
    return name


class _Writer:
    """Renders the imported tables as one migration, checking each CHECK and partial
    predicate against the generator (when installed) so nothing is written it refuses."""

    def __init__(self, importer: _Importer, tables: dict[str, _Table]) -> None:
        self.importer = importer
        self.tables = tables
        self.project = importer.project
        self.folded = {n.casefold(): n for n in tables}
        try:
            from codegen.analysis.schema import analyse_schema
            from codegen.errors import CodegenError

            def accepts(sql: str) -> bool:
                try:
                    analyse_schema({"0001_trial.sql": "-- migrate:up\n" + sql + "\n"})
                except CodegenError:
                    return False
                return True

            self.accepts: Any = accepts
        except ImportError:
            self.accepts = None

    def guess(self, where: str, what: str) -> None:
        self.importer.guess(where, what)

    def parent(self, name: str) -> tuple[str, dict[str, str], list[list[str]]] | None:
        """(name, {column: type}, unique keys) of a referenced table, imported or the
        project's."""
        if name in self.project.types:
            return name, self.project.types[name], self.project.keys[name]
        found = self.folded.get(name.casefold())
        if found is None:
            return None
        table = self.tables[found]
        kinds = {c.name: "BIGINT" if c.kind == IDENTITY else c.kind for c in table.columns}
        return found, kinds, [table.pk, *table.keys]

    def resolve_foreign_keys(self) -> list[tuple[str, str]]:
        """Give each foreign-key column its parent's type; drop keys PostgreSQL would refuse
        (no such table, or parent columns without a unique key), listed. Returns the
        (child, parent) edges kept."""
        edges = []
        for table in self.tables.values():
            kept = []
            for fk in table.foreign_keys:
                where = f"{table.name}: foreign key ({', '.join(fk.columns)})"
                parent = self.parent(fk.parent)
                if parent is None:
                    self.guess(
                        where,
                        f"references {fk.parent}, neither imported nor in the project: left out",
                    )
                    continue
                pname, kinds, keys = parent
                pcols = fk.parent_columns
                if not pcols:
                    pcols = keys[0] if keys and keys[0] else None
                if pcols is None or len(pcols) != len(fk.columns):
                    self.guess(
                        where, f"references {pname} without a key of the same width: not imported"
                    )
                    continue
                spelled = {k.casefold(): k for k in kinds}
                pcols = [spelled.get(c.casefold(), c) for c in pcols]
                if not any(
                    [c.casefold() for c in key] == [c.casefold() for c in pcols] for key in keys
                ):
                    self.guess(
                        where,
                        f"{pname} ({', '.join(pcols)}) is not a primary key or unique "
                        "(PostgreSQL requires one): not imported",
                    )
                    continue
                for child, parent_col in zip(fk.columns, pcols, strict=True):
                    column = table.column(child)
                    want = kinds.get(parent_col)
                    if column is None or want is None or column.kind == IDENTITY:
                        continue
                    if column.kind != want:
                        self.guess(
                            f"{table.name}.{column.name}",
                            f"foreign key to {pname}.{parent_col}: typed as it ({want}), "
                            f"not {column.kind}",
                        )
                        column.decision = Decision(want)
                fk.parent, fk.parent_columns = pname, pcols
                kept.append(fk)
                edges.append((table.name, pname))
            table.foreign_keys = kept
        return edges

    def default(self, table: str, column: _Column) -> str | None:
        raw, kind = column.default, column.kind.split("(")[0].split()[0]
        where = f"{table}.{column.name}"
        if raw is None:
            return None
        text = _unwrap(raw)
        upper = text.upper()
        if upper == "NULL":
            return None
        if _NOW_DEFAULT.match(text):
            if kind == "TIMESTAMPTZ":
                return "now()"
            if kind == "DATE":
                return "CURRENT_DATE"
            self.guess(
                where,
                f"default {raw} on a {kind.lower()} column: no PostgreSQL default writes "
                "SQLite's text form; left out",
            )
            return None
        if upper in ("TRUE", "FALSE"):
            text = "1" if upper == "TRUE" else "0"
        if kind == "BOOLEAN" and text.strip("'") in ("0", "1"):
            return "true" if text.strip("'") == "1" else "false"
        literal = string_literal(text)
        if _NUMBER.match(text) and kind in ("BIGINT", "INTEGER", "SMALLINT", "DOUBLE", "NUMERIC"):
            return text
        if _NUMBER.match(text) and kind == "TEXT":
            return f"'{text}'"
        if literal is not None:
            value = literal[1:-1].replace("''", "'")
            if kind == "JSONB":
                if _json(value):
                    return f"{literal}::jsonb"
            elif kind in ("TIMESTAMPTZ", "DATE"):
                if _iso(value):
                    return literal
            elif kind in ("BIGINT", "INTEGER", "SMALLINT", "DOUBLE", "NUMERIC"):
                if _NUMBER.match(value):
                    return value
            elif kind == "TEXT":
                return literal
        self.guess(where, f"default {raw} not translated to {kind.lower()}: left out")
        return None

    def checks(self, table: _Table, plain: str) -> list[str]:
        from sqlglot import exp as e

        lines = []
        for name, check in table.checks:
            where = f"{table.name}: CHECK ({check.sql('sqlite')})"
            held = _zero_one_columns(check)
            whole = isinstance(check, e.In | e.Between) and len(held) == 1
            column = table.column(next(iter(held))) if whole else None
            if column is not None and column.kind == "BOOLEAN":
                self.guess(where, "kept by the boolean type")
                continue
            expression = _rewrite(check, table).sql("postgres")
            line = f"CHECK ({expression})"
            if name:
                line = f"CONSTRAINT {ident(name)} {line}"
            if _UNSAFE.search(line) or "--" in line or "/*" in line:
                self.guess(where, "holds a line break or comment: not imported")
                continue
            if self.accepts is not None and not self.accepts(
                plain.replace("\n);", f",\n    {line}\n);")
            ):
                self.guess(where, "not translatable by the generator: not imported; add it by hand")
                continue
            lines.append("    " + line)
        return lines

    def create(self, table: _Table) -> list[str]:
        lines, plain_lines = [], []
        single_pk = len(table.pk) == 1
        for column in table.columns:
            parts = [f"    {ident(column.name)} {column.kind}"]
            if single_pk and table.pk[0] == column.name:
                parts.append("PRIMARY KEY")
            elif column.not_null:
                parts.append("NOT NULL")
            plain_lines.append(" ".join(parts))
            value = self.default(table.name, column)
            if value is not None:
                parts.append(f"DEFAULT {value}")
            lines.append(" ".join(parts))
        if len(table.pk) > 1:
            lines.append(f"    PRIMARY KEY ({', '.join(ident(c) for c in table.pk)})")
        plain = f"CREATE TABLE {ident(table.name)} (\n" + ",\n".join(plain_lines) + "\n);"
        for unique in table.uniques:
            if unique != table.pk:
                lines.append(f"    UNIQUE ({', '.join(ident(c) for c in unique)})")
        lines.extend(self.checks(table, plain))
        out = [f"CREATE TABLE {ident(table.name)} (\n" + ",\n".join(lines) + "\n);"]
        for name, unique_index, items, predicate in table.indexes:
            statement = (
                f"CREATE {'UNIQUE ' if unique_index else ''}INDEX {ident(name)} "
                f"ON {ident(table.name)} ({', '.join(items)})"
            )
            if predicate is not None:
                where = f"{table.name}: index {name}"
                text = _rewrite(predicate, table).sql("postgres")
                if _UNSAFE.search(text) or any(t in text for t in ("--", "/*", ";")):
                    self.guess(
                        where,
                        "partial index predicate with a line break, comment or ';': not imported",
                    )
                    continue
                if text != predicate.sql("sqlite"):
                    self.guess(where, f"partial index predicate rewritten: {text}")
                statement += f" WHERE {text}"
                if self.accepts is not None and not self.accepts(plain + "\n" + statement + ";"):
                    self.guess(
                        where,
                        "partial index predicate not translatable by the generator: not imported",
                    )
                    continue
            out.append(statement + ";")
        return out

    def add_columns(self, table: _Table) -> tuple[list[str], list[str]]:
        """Columns of a table the project has that it lacks: (up, down) statements."""
        have = {c.casefold() for c in self.project.types[table.name]}
        up, down = [], []
        for column in table.columns:
            if column.name.casefold() in have:
                continue
            kind = "BIGINT" if column.kind == IDENTITY else column.kind
            line = f"ALTER TABLE {ident(table.name)} ADD COLUMN {ident(column.name)} {kind}"
            value = self.default(table.name, column)
            if value is not None:
                line += f" DEFAULT {value}"
            self.guess(
                f"{table.name}.{column.name}",
                f"not in the project's {table.name}: added as a nullable {kind.lower()} column",
            )
            up.append(line + ";")
            down.append(f"ALTER TABLE {ident(table.name)} DROP COLUMN {ident(column.name)};")
        return up, down

    def foreign_key_sql(self, table: _Table, taken: set[str]) -> list[str]:
        out = []
        for fk in table.foreign_keys:
            assert fk.parent_columns is not None
            name = _fk_name(table.name, fk.columns, taken)
            line = (
                f"ALTER TABLE {ident(table.name)} ADD CONSTRAINT {ident(name)} FOREIGN KEY "
                f"({', '.join(ident(c) for c in fk.columns)}) REFERENCES {ident(fk.parent)} "
                f"({', '.join(ident(c) for c in fk.parent_columns)})"
            )
            for action, word in ((fk.on_delete, "DELETE"), (fk.on_update, "UPDATE")):
                if action and action.upper() in _FK_ACTIONS and action.upper() != "NO ACTION":
                    line += f" ON {word} {action.upper()}"
            out.append(line + ";")
        return out


def _check_with_generator(project: _Project, sql: str) -> None:
    """The generator takes the migration after the project's own, or nothing is written."""
    try:
        from codegen.analysis.schema import analyse_schema
        from codegen.errors import CodegenError
    except ImportError:
        return
    last = max((int(name[:4]) for name in project.files), default=0)
    try:
        analyse_schema({**project.files, f"{last + 1:04d}_import.sql": sql})
    except CodegenError as exc:
        raise ConfigError(
            f"the imported schema is not one the generator takes; nothing written:\n{exc}"
        ) from None


def _unwrap(raw: str) -> str:
    """A default's text without the parentheses around it."""
    text = raw.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if depth < 0:
            return False
    return depth == 0


def _json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def import_sqlite(
    source: Path,
    schema_dir: Path | None = None,
    *,
    tables: Sequence[str] | None = None,
    write: bool = True,
) -> ImportResult:
    """Read ``source`` and write the next migration into ``schema_dir`` (unless ``write``
    is false); tables the migrations already in ``schema_dir`` create are mapped onto."""
    from aragora_repos.tools.migrate_data import fk_order

    project = _Project(schema_dir)
    db = load_schema(source)
    try:
        importer = _Importer(db, source.suffix.lower() != ".sql", project)
        rows = db.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        virtual = [n for n, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL TABLE")]
        for v in virtual:
            importer.guess(v, "virtual table (full-text index?) not imported")
        names = [n for n, _ in rows if not any(n == v or n.startswith(v + "_") for v in virtual)]
        for n in [n for n in names if n.casefold() in RUNNER_TABLES]:
            importer.guess(n, "a migration runner's bookkeeping table: not imported")
        names = [n for n in names if n.casefold() not in RUNNER_TABLES]
        if tables:
            unknown = sorted(set(tables) - set(names))
            if unknown:
                raise ConfigError(f"{source}: no table {', '.join(unknown)}")
            names = [n for n in names if n in tables]
        read = {n: importer.read(n) for n in names}
    finally:
        db.close()
    writer = _Writer(importer, read)
    mapped = [n for n in names if n in project.types]
    for n in mapped:
        importer.guess(n, "the project already has this table: mapped onto it, not recreated")
    edges = writer.resolve_foreign_keys()
    created = [n for n in names if n not in project.types]
    order = fk_order(created, edges)
    body: list[str] = []
    down: list[str] = []
    for name in order:
        body.extend(writer.create(read[name]))
    for name in mapped:
        up, undo = writer.add_columns(read[name])
        body.extend(up)
        down[:0] = undo
        if read[name].foreign_keys or read[name].checks or read[name].indexes:
            importer.guess(
                name, "its constraints and indexes are the project's: source ones not added"
            )
    taken: set[str] = set()
    for name in order:
        body.extend(writer.foreign_key_sql(read[name], taken))
    if order:
        down.insert(0, f"DROP TABLE {', '.join(ident(n) for n in reversed(order))};")
    review = "".join(f"-- review: {g}\n" for g in importer.guesses)
    sql = (
        f"-- Imported from {comment_text(source.name)} by aragora-repos import-sqlite.\n"
        f"{review}"
        "-- migrate:up\n"
        + "\n\n".join(body)
        + "\n\n-- migrate:down\n"
        + "".join(f"{d}\n" for d in down)
    )
    if body:
        _check_with_generator(project, sql)
    path = None
    if schema_dir is not None and write and body:
        path = create_migration(schema_dir, f"import {source.stem}", text=sql)
    return ImportResult(path, sql, importer.guesses, order, mapped)
