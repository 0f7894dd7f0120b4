"""Read the ordered migrations in ``sql/schema/`` with sqlglot.

sqlc checks queries against the schema but omits defaults, keys, foreign keys and
CHECK constraints from its output; those come from here. Each migration is applied to a
catalog in order and translated statement by statement into SQLite DDL. What SQLite's
ALTER TABLE cannot do is done with its documented table rebuild
(sqlite.org/lang_altertable.html §7: create the new table, copy, drop, rename, recreate
indexes), with foreign keys switched off by the runner and checked before commit.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import TokenType

from ..dialects import sqlite, sqlite_ddl
from ..errors import CodegenError, Problem, line_col
from ..model.ir import (
    Catalog,
    Enum,
    Location,
    Migration,
    Section,
)
from . import append_only, encrypted, synced
from .alter import apply_alter, rebuild
from .tables import Out, State, index_of, name_of, table_of

ANY_MARKER = re.compile(r"^[ \t]*--[ \t]*aragora:.*$", re.MULTILINE)
MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
UP = re.compile(r"^--\s*migrate:up\b.*$", re.MULTILINE)
DOWN = re.compile(r"^--\s*migrate:down\b.*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    offset: int


def split_statements(text: str, base: int = 0) -> list[Statement]:
    """Split on top-level semicolons using sqlglot's tokenizer (strings, dollar quotes)."""
    tokens = sqlglot.tokenize(text, read="postgres")
    out: list[Statement] = []
    start: int | None = None
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            if start is not None:
                out.append(Statement(text[start : tok.start], base + start))
            start = None
        elif start is None:
            start = tok.start
    if start is not None:
        out.append(Statement(text[start:].rstrip(), base + start))
    return out


def sections(text: str) -> tuple[int, str, int, str | None]:
    """Return (up offset, up text, down offset, down text) of a dbmate-style migration."""
    up = UP.search(text)
    down = DOWN.search(text)
    up_start = up.end() if up else 0
    if down is None:
        return up_start, text[up_start:], len(text), None
    return up_start, text[up_start : down.start()], down.end(), text[down.end() :]


def read_migrations(root: Path, schema_dir: str) -> dict[str, str]:
    """``{relative path: text}`` of the migration files (the only file reads here)."""
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted((root / schema_dir).glob("*.sql"))
    }


def load_schema(root: Path, schema_dir: str) -> tuple[Catalog, tuple[Migration, ...]]:
    return analyse_schema(read_migrations(root, schema_dir))


def analyse_schema(files: dict[str, str]) -> tuple[Catalog, tuple[Migration, ...]]:
    """Apply every migration in order; raise :class:`CodegenError` with every problem."""
    problems: list[Problem] = []
    state = State()
    migrations: list[Migration] = []
    versions: dict[int, str] = {}
    for rel, text in sorted(files.items()):
        match = MIGRATION_NAME.match(rel.rsplit("/", 1)[-1])
        if not match:
            problems.append(Problem(rel, 1, 1, "migration file name must be NNNN_<name>.sql"))
            continue
        version = int(match.group(1))
        if version in versions:
            problems.append(
                Problem(
                    rel,
                    1,
                    1,
                    f"duplicate migration version {version:04d} (also {versions[version]})",
                )
            )
            continue
        versions[version] = rel
        up_at, up_text, down_at, down_text = sections(text)
        # The down section is translated against the catalog as it is after the up
        # section, on a scratch copy: it must not change what later migrations see.
        up = _translate_section(rel, text, up_text, up_at, state, problems)
        down = None
        if down_text is not None and down_text.strip():
            down = _translate_section(rel, text, down_text, down_at, state.copy(), problems)
        migrations.append(
            Migration(
                version, match.group(2), rel, hashlib.sha256(text.encode()).hexdigest(), up, down
            )
        )
    if problems:
        raise CodegenError(sorted(problems))
    return state.catalog(), tuple(migrations)


def _translate_section(
    rel: str, whole: str, text: str, base: int, state: State, problems: list[Problem]
) -> Section:
    out = Out()
    try:
        statements = split_statements(text, base)
    except TokenError as exc:
        line, col = line_col(whole, base)
        problems.append(Problem(rel, line, col, f"cannot tokenize: {exc}"))
        return out.section()
    pending: list[append_only.Mark | encrypted.Mark | synced.Mark] = sorted(
        [
            *append_only.marks(text, base),
            *encrypted.marks(text, base),
            *synced.marks(text, base),
        ],
        key=lambda m: m.offset,
    )
    known = {m.offset for m in pending}
    for m in ANY_MARKER.finditer(text):
        if base + m.start() not in known:
            problems.append(
                Problem(
                    rel,
                    *line_col(whole, base + m.start()),
                    f"not a marker this generator knows: {m.group(0).strip()!r} (expected "
                    "-- aragora:append-only t (col), -- aragora:not-append-only t, "
                    "-- aragora:encrypted t (col, ...) [by (key, ...) | deterministic], "
                    "-- aragora:not-encrypted t (col, ...), -- aragora:synced t or "
                    "-- aragora:not-synced t)",
                )
            )
    for stmt in [*statements, None]:
        upto = stmt.offset if stmt is not None else len(whole)
        while pending and pending[0].offset < upto:
            mark = pending.pop(0)
            try:
                if isinstance(mark, encrypted.Mark):
                    encrypted.apply(mark, state, out, rebuild)
                elif isinstance(mark, synced.Mark):
                    synced.apply(mark, state, out)
                else:
                    append_only.apply(mark, state, out)
            except sqlite.Untranslatable as exc:
                problems.append(Problem(rel, *line_col(whole, mark.offset), str(exc)))
        if stmt is None:
            break
        line, col = line_col(whole, stmt.offset)
        try:
            tree = sqlglot.parse_one(stmt.sql, read="postgres")
            out.postgres.append(stmt.sql.strip())
            _apply(tree, state, Location(rel, line, col), out)
        except ParseError as exc:
            message = str(exc.errors[0]["description"]) if exc.errors else str(exc)
            problems.append(Problem(rel, line, col, f"cannot parse statement: {message}"))
        except sqlite.Untranslatable as exc:
            problems.append(Problem(rel, *line_col(whole, _find(stmt, exc.construct)), str(exc)))
    return out.section()


def _find(stmt: Statement, construct: str) -> int:
    """Best position of ``construct`` inside the statement, else the statement start."""
    words = construct.split()
    for needle in (construct, words[-1] if words else ""):
        idx = stmt.sql.lower().find(needle.lower().strip("'")) if needle else -1
        if idx >= 0:
            return stmt.offset + idx
    return stmt.offset


def _apply(tree: exp.Expr, state: State, loc: Location, out: Out) -> None:
    """Apply one statement to the catalog and append its SQLite statements to ``out``."""
    if isinstance(tree, exp.Create):
        kind = (tree.args.get("kind") or "").upper()
        if kind == "TABLE":
            table = table_of(tree, state, loc)
            state.tables[table.name] = table
            out.sqlite.append(sqlite_ddl.create_table_sql(table, state.enum_values()))
            return
        if kind == "INDEX":
            index = index_of(tree, state)
            encrypted.refuse_in(
                tree.this, [state.tables[index.table]], f"index {index.name}", index=True
            )
            state.indexes[index.name] = index
            if index.concurrently:
                out.transactional = False  # 25001 inside a transaction block
            out.sqlite.append(index.sqlite_sql)
            out.sqlite.extend(index.sqlite_triggers)
            return
        if kind == "TYPE":
            dt = tree.args.get("expression")
            if isinstance(dt, exp.DataType) and dt.is_type(exp.DType.ENUM):
                name = name_of(tree.this)
                state.enums[name] = Enum(name, tuple(str(v.this) for v in dt.expressions))
                return  # enum columns become TEXT with a CHECK on SQLite
        if kind == "VIEW":
            _create_view(tree, state, out)
            return
        if kind in ("FUNCTION", "PROCEDURE"):
            target = tree.this
            if isinstance(target, exp.UserDefinedFunction):
                target = target.this
            raise sqlite.Untranslatable(
                f"CREATE {kind} {name_of(target)}", _COMMAND_REASONS[f"CREATE {kind}"]
            )
        if kind == "TRIGGER":
            raise sqlite.Untranslatable(
                "CREATE TRIGGER", "PL/pgSQL triggers have no sqlite form; do the work in a query"
            )
        raise sqlite.Untranslatable(f"CREATE {kind}", "not supported in migrations")
    if isinstance(tree, exp.Drop):
        _drop(tree, state, out)
        return
    if isinstance(tree, exp.Alter) and (tree.args.get("kind") or "").upper() == "TABLE":
        apply_alter(tree, state, out)
        return
    if isinstance(tree, exp.Comment):
        _comment(tree, state)  # documentation: the models' docstrings; SQLite has none
        return
    if isinstance(tree, exp.Grant | exp.Revoke):
        return  # privileges: PostgreSQL's alone; SQLite has no roles, nothing to do there
    if isinstance(tree, exp.Command):
        rest = tree.expression
        text = f"{tree.name} {rest if isinstance(rest, str) else getattr(rest, 'name', '')}"
        words = text.split()
        statement = " ".join(words[:3]).rstrip("(").split("(")[0]
        kind = " ".join(words[:2]).upper()
        reason = _COMMAND_REASONS.get(kind, "not supported in migrations")
        raise sqlite.Untranslatable(statement, reason)
    raise sqlite.Untranslatable(tree.key.upper(), "not supported in migrations")


#: Why statements sqlglot reads only as text have no SQLite form.
_COMMAND_REASONS = {
    "CREATE FUNCTION": "functions (PL/pgSQL or SQL) have no sqlite form; do the work in the "
    "application, or in a query",
    "CREATE OR": "functions and procedures have no sqlite form; do the work in the application",
    "CREATE PROCEDURE": "procedures have no sqlite form; do the work in the application",
    "CREATE EXTENSION": "extensions add functions and types sqlite does not have",
    "DO": "anonymous code blocks (DO $$ ... $$) have no sqlite form",
}


def _create_view(tree: exp.Create, state: State, out: Out) -> None:
    """``CREATE [OR REPLACE] VIEW v [(cols)] AS <select>``: the select translated as a query
    is (the same rules), so the view answers as on PostgreSQL."""
    target = tree.this
    columns = ""
    if isinstance(target, exp.Schema):
        columns = " (" + ", ".join(sqlite_ddl.quote(c.name) for c in target.expressions) + ")"
        target = target.this
    name = name_of(target)
    select = tree.expression
    if not isinstance(select, exp.Query):
        raise sqlite.Untranslatable(f"CREATE VIEW {name}", "expected AS SELECT ...")
    if any(True for _ in select.find_all(exp.Parameter, exp.Placeholder)):
        raise sqlite.Untranslatable(f"CREATE VIEW {name}", "a view cannot take parameters")
    read = [t for t in state.tables.values() if t.encrypted]
    encrypted.refuse_in(select, read, f"view {name}")
    body = sqlite.translate_expression(select)
    if tree.args.get("replace") or name in state.views:
        out.sqlite.append(f"DROP VIEW IF EXISTS {sqlite_ddl.quote(name)}")
    out.sqlite.append(f"CREATE VIEW {sqlite_ddl.quote(name)}{columns} AS {body}")
    state.views[name] = body


def _comment(tree: exp.Comment, state: State) -> None:
    kind = (tree.args.get("kind") or "").upper()
    text = tree.expression.name if isinstance(tree.expression, exp.Literal) else None
    target = tree.this
    if kind == "TABLE" and isinstance(target, exp.Table):
        table = state.tables.get(target.name)
        if table is None:
            raise sqlite.Untranslatable(f"COMMENT ON TABLE {target.name}", "no such table")
        state.tables[table.name] = replace(table, comment=text or None)
    elif kind == "COLUMN" and isinstance(target, exp.Column):
        table = state.tables.get(target.table)
        if table is None or table.column(target.name) is None:
            raise sqlite.Untranslatable(
                f"COMMENT ON COLUMN {target.table}.{target.name}", "no such column"
            )
        kept = tuple((c, t) for c, t in table.column_comments if c != target.name)
        if text:
            kept += ((target.name, text),)
        state.tables[table.name] = replace(table, column_comments=kept)


def _drop(tree: exp.Drop, state: State, out: Out) -> None:
    kind = (tree.args.get("kind") or "").upper()
    names = [name_of(t) for t in tree.args.get("tables") or []]
    exists = " IF EXISTS" if tree.args.get("exists") else ""
    if tree.args.get("concurrently"):
        out.transactional = False
    if kind == "TABLE":
        for n in names:
            state.tables.pop(n, None)
            # A full-text index is a table of its own on SQLite: it goes with its table.
            out.sqlite.extend(
                f"DROP TABLE {sqlite_ddl.quote(v.name)}"
                for v in state.indexes.values()
                if v.table == n and v.sqlite_triggers
            )
            state.indexes = {k: v for k, v in state.indexes.items() if v.table != n}
            out.sqlite.append(f"DROP TABLE{exists} {sqlite_ddl.quote(n)}")
    elif kind == "VIEW":
        for n in names:
            state.views.pop(n, None)
            out.sqlite.append(f"DROP VIEW{exists} {sqlite_ddl.quote(n)}")
    elif kind == "INDEX":
        for n in names:
            dropped = state.indexes.pop(n, None)
            if dropped is not None and dropped.sqlite_triggers:
                out.sqlite.extend(sqlite_ddl.fts_drop_sql(n))
            else:
                out.sqlite.append(f"DROP INDEX{exists} {sqlite_ddl.quote(n)}")
    elif kind == "TYPE":
        for n in names:
            state.enums.pop(n, None)
    else:
        raise sqlite.Untranslatable(f"DROP {kind}", "not supported in migrations")
