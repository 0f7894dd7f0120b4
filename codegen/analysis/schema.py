"""Read the ordered migrations in ``sql/schema/`` with sqlglot.

sqlc checks queries against the schema but omits defaults, keys, foreign keys and
CHECK constraints from its output; those come from here. Each migration is also
translated statement by statement into SQLite DDL.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import TokenType

from codegen.dialects import sqlite
from codegen.errors import CodegenError, Problem, line_col
from codegen.model import types
from codegen.model.ir import Catalog, Column, Enum, ForeignKey, Index, Location, Migration, Table

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
UP = re.compile(r"^--\s*migrate:up\b.*$", re.MULTILINE)
DOWN = re.compile(r"^--\s*migrate:down\b.*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    offset: int


@dataclass
class _State:
    """The catalog as migrations are applied in order (mutable only inside this module)."""

    tables: dict[str, Table] = field(default_factory=dict)
    indexes: dict[str, Index] = field(default_factory=dict)
    enums: dict[str, Enum] = field(default_factory=dict)

    def enum_values(self) -> dict[str, tuple[str, ...]]:
        return {name: e.values for name, e in self.enums.items()}


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
            # Comments attached to the first token belong to no statement.
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


def load_schema(root: Path, schema_dir: str) -> tuple[Catalog, tuple[Migration, ...]]:
    problems: list[Problem] = []
    state = _State()
    migrations: list[Migration] = []
    versions: dict[int, str] = {}
    for path in sorted((root / schema_dir).glob("*.sql")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        match = MIGRATION_NAME.match(path.name)
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
        up_sql = _translate_section(rel, text, up_text, up_at, state, problems)
        down_sql = None
        if down_text is not None and down_text.strip():
            # Down sections are translated against a scratch copy: they must not change
            # the catalog that later migrations see.
            scratch = _State(dict(state.tables), dict(state.indexes), dict(state.enums))
            down_sql = _translate_section(rel, text, down_text, down_at, scratch, problems)
        migrations.append(
            Migration(
                version=version,
                name=match.group(2),
                path=rel,
                checksum=hashlib.sha256(text.encode()).hexdigest(),
                postgres_up=_strip_section(up_text),
                postgres_down=_strip_section(down_text)
                if down_text and down_text.strip()
                else None,
                sqlite_up=up_sql,
                sqlite_down=down_sql,
            )
        )
    if problems:
        raise CodegenError(sorted(problems))
    catalog = Catalog(
        tuple(state.tables.values()), tuple(state.indexes.values()), tuple(state.enums.values())
    )
    return catalog, tuple(migrations)


def _strip_section(text: str | None) -> str:
    return (text or "").strip() + "\n"


def _translate_section(
    rel: str, whole: str, text: str, base: int, state: _State, problems: list[Problem]
) -> str:
    out: list[str] = []
    try:
        statements = split_statements(text, base)
    except TokenError as exc:
        line, col = line_col(whole, base)
        problems.append(Problem(rel, line, col, f"cannot tokenize: {exc}"))
        return ""
    for stmt in statements:
        line, col = line_col(whole, stmt.offset)
        loc = Location(rel, line, col)
        try:
            tree = sqlglot.parse_one(stmt.sql, read="postgres")
            out.extend(_apply(tree, state, loc))
        except ParseError as exc:
            problems.append(
                Problem(
                    rel,
                    line,
                    col,
                    "cannot parse statement: " + _parse_message(exc),
                )
            )
        except sqlite.Untranslatable as exc:
            where = _find(whole, stmt, exc.construct)
            problems.append(Problem(rel, *line_col(whole, where), str(exc)))
    return "".join(s + ";\n" for s in out)


def _parse_message(exc: ParseError) -> str:
    return str(exc.errors[0]["description"]) if exc.errors else str(exc)


def _find(whole: str, stmt: Statement, construct: str) -> int:
    """Best position of ``construct`` inside the statement, else the statement start."""
    for needle in (construct, construct.split()[-1] if construct.split() else construct):
        idx = stmt.sql.lower().find(needle.lower().strip("'"))
        if idx >= 0 and needle:
            return stmt.offset + idx
    return stmt.offset


def _name(node: exp.Expr | None) -> str:
    assert node is not None
    return node.name


def _apply(tree: exp.Expr, state: _State, loc: Location) -> list[str]:
    """Apply one statement to the catalog; return its SQLite statements."""
    if isinstance(tree, exp.Create):
        kind = (tree.args.get("kind") or "").upper()
        if kind == "TABLE":
            table = _table(tree, state, loc)
            state.tables[table.name] = table
            return [sqlite.create_table_sql(table, state.enum_values())]
        if kind == "INDEX":
            index = _index(tree)
            state.indexes[index.name] = index
            return [index.sqlite_sql]
        if kind == "TYPE":
            dt = tree.args.get("expression")
            if isinstance(dt, exp.DataType) and dt.is_type(exp.DType.ENUM):
                name = _name(tree.this)
                state.enums[name] = Enum(name, tuple(str(v.this) for v in dt.expressions))
                return []  # enum columns become TEXT with a CHECK on SQLite
        raise sqlite.Untranslatable(f"CREATE {kind}", "not supported in migrations")
    if isinstance(tree, exp.Drop):
        kind = (tree.args.get("kind") or "").upper()
        names = [_name(t) for t in tree.args.get("tables") or []]
        exists = " IF EXISTS" if tree.args.get("exists") else ""
        if kind == "TABLE":
            for n in names:
                state.tables.pop(n, None)
                state.indexes = {k: v for k, v in state.indexes.items() if v.table != n}
            return [f"DROP TABLE{exists} {sqlite.quote(n)}" for n in names]
        if kind == "INDEX":
            for n in names:
                state.indexes.pop(n, None)
            return [f"DROP INDEX{exists} {sqlite.quote(n)}" for n in names]
        if kind == "TYPE":
            for n in names:
                state.enums.pop(n, None)
            return []
        raise sqlite.Untranslatable(f"DROP {kind}", "not supported in migrations")
    if isinstance(tree, exp.Alter) and (tree.args.get("kind") or "").upper() == "TABLE":
        return _alter(tree, state)
    if isinstance(tree, exp.Comment):
        return []  # comments are documentation in PostgreSQL; SQLite has no COMMENT ON
    raise sqlite.Untranslatable(tree.key.upper(), "not supported in migrations")


def _column(
    cdef: exp.ColumnDef,
    table_name: str,
    pk: list[str],
    uniques: list[tuple[str, ...]],
    fks: list[ForeignKey],
    checks: list[str],
) -> Column:
    kind = cdef.args.get("kind")
    if not isinstance(kind, exp.DataType):
        raise sqlite.Untranslatable(f"column {cdef.name}", "a column needs a type")
    pg_type = sqlite.type_of(kind)
    raw_type = kind.sql("postgres").lower()
    identity = raw_type in types.SERIAL_NAMES
    not_null = identity
    default_pg: str | None = None
    default_sqlite: str | None = None
    for constraint in cdef.constraints:
        ck = constraint.args.get("kind")
        if isinstance(ck, exp.NotNullColumnConstraint):
            not_null = not ck.args.get("allow_null")
        elif isinstance(ck, exp.PrimaryKeyColumnConstraint):
            pk.append(cdef.name)
            not_null = True
        elif isinstance(ck, exp.GeneratedAsIdentityColumnConstraint):
            identity = True
            not_null = True
        elif isinstance(ck, exp.UniqueColumnConstraint):
            uniques.append((cdef.name,))
        elif isinstance(ck, exp.DefaultColumnConstraint):
            default_pg = ck.this.sql("postgres")
            default_sqlite = sqlite.translate_expression(ck.this)
        elif isinstance(ck, exp.CheckColumnConstraint):
            checks.append(sqlite.translate_expression(ck.this))
        elif isinstance(ck, exp.Reference):
            fks.append(_reference((cdef.name,), ck))
        else:
            raise sqlite.Untranslatable(constraint.sql("postgres"), "unsupported column constraint")
    return Column(cdef.name, pg_type, not_null, default_pg, default_sqlite, identity)


def _reference(columns: tuple[str, ...], ref: exp.Reference) -> ForeignKey:
    schema = ref.this
    ref_table = _name(schema.this if isinstance(schema, exp.Schema) else schema)
    ref_cols = tuple(i.name for i in schema.expressions) if isinstance(schema, exp.Schema) else ()
    on_delete = on_update = None
    for option in ref.args.get("options") or []:
        text = str(option).upper()
        if text.startswith("ON DELETE "):
            on_delete = text.removeprefix("ON DELETE ")
        elif text.startswith("ON UPDATE "):
            on_update = text.removeprefix("ON UPDATE ")
    return ForeignKey(columns, ref_table, ref_cols, on_delete, on_update)


def _table(tree: exp.Create, state: _State, loc: Location) -> Table:
    schema = tree.this
    assert isinstance(schema, exp.Schema)
    name = _name(schema.this)
    pk: list[str] = []
    uniques: list[tuple[str, ...]] = []
    fks: list[ForeignKey] = []
    checks: list[str] = []
    columns: list[Column] = []
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            columns.append(_column(item, name, pk, uniques, fks, checks))
            continue
        node = item
        if isinstance(node, exp.Constraint):  # CONSTRAINT <name> <kind>
            node = node.expressions[0]
        if isinstance(node, exp.PrimaryKey):
            pk.extend(_name(e) for e in node.expressions)
        elif isinstance(node, exp.UniqueColumnConstraint) and isinstance(node.this, exp.Schema):
            uniques.append(tuple(_name(e) for e in node.this.expressions))
        elif isinstance(node, exp.ForeignKey):
            ref = node.args.get("reference")
            assert isinstance(ref, exp.Reference)
            fks.append(_reference(tuple(_name(e) for e in node.expressions), ref))
        elif isinstance(node, exp.CheckColumnConstraint):
            checks.append(sqlite.translate_expression(node.this))
        else:
            raise sqlite.Untranslatable(item.sql("postgres"), "unsupported table constraint")
    columns = [replace(c, not_null=True) if c.name in pk else c for c in columns]
    known = {c.name for c in columns}
    for fk in fks:
        if fk.ref_table not in state.tables and fk.ref_table != name:
            raise sqlite.Untranslatable(
                f"REFERENCES {fk.ref_table}", f"table {fk.ref_table} does not exist"
            )
    for col_name in pk:
        if col_name not in known:
            raise sqlite.Untranslatable(f"PRIMARY KEY ({col_name})", "no such column")
    for c in columns:
        if c.type.name not in types.BUILTIN and c.type.name not in state.enums:
            raise sqlite.Untranslatable(c.type.name, f"unknown type for column {c.name}")
    return Table(name, tuple(columns), tuple(pk), tuple(uniques), tuple(fks), tuple(checks), loc)


def _index(tree: exp.Create) -> Index:
    index = tree.this
    assert isinstance(index, exp.Index)
    if tree.args.get("concurrently"):
        pass  # CONCURRENTLY only changes locking on PostgreSQL; SQLite builds it the same way
    table = _name(index.args.get("table"))
    params = index.args.get("params")
    assert isinstance(params, exp.IndexParameters)
    if params.args.get("using") is not None:
        raise sqlite.Untranslatable("USING", "index methods other than btree")
    cols = [sqlite.translate_expression(c) for c in params.args.get("columns") or []]
    where = params.args.get("where")
    unique = bool(tree.args.get("unique"))
    exists = " IF NOT EXISTS" if tree.args.get("exists") else ""
    sql = (
        f"CREATE {'UNIQUE ' if unique else ''}INDEX{exists} {sqlite.quote(index.name)} "
        f"ON {sqlite.quote(table)} ({', '.join(cols)})"
    )
    if where is not None:
        sql += f" WHERE {sqlite.translate_expression(where.this)}"
    return Index(index.name, table, unique, sql)


def _alter(tree: exp.Alter, state: _State) -> list[str]:
    table_name = _name(tree.this)
    table = state.tables.get(table_name)
    if table is None:
        raise sqlite.Untranslatable(f"ALTER TABLE {table_name}", "no such table")
    out: list[str] = []
    for action in tree.args.get("actions") or []:
        if isinstance(action, exp.ColumnDef):
            pk: list[str] = []
            uniques: list[tuple[str, ...]] = []
            fks: list[ForeignKey] = []
            checks: list[str] = []
            col = _column(action, table_name, pk, uniques, fks, checks)
            if pk or uniques or col.identity:
                raise sqlite.Untranslatable(
                    "ADD COLUMN", "sqlite cannot add a key column (lang_altertable.html §5)"
                )
            if col.default_sqlite and not (
                col.default_sqlite.startswith("'") or col.default_sqlite.lstrip("-").isdigit()
            ):
                raise sqlite.Untranslatable(
                    "DEFAULT",
                    "sqlite cannot add a column with a "
                    "non-constant default (lang_altertable.html §5)",
                )
            table = replace(
                table,
                columns=(*table.columns, col),
                foreign_keys=(*table.foreign_keys, *fks),
                checks_sqlite=table.checks_sqlite,
            )
            coldef = sqlite.column_sql(col, table, state.enum_values())
            coldef += "".join(f" CHECK ({c})" for c in checks)
            if fks:
                fk = fks[0]
                coldef += (
                    f" REFERENCES {sqlite.quote(fk.ref_table)} "
                    f"({', '.join(sqlite.quote(c) for c in fk.ref_columns)})"
                )
                if fk.on_delete:
                    coldef += f" ON DELETE {fk.on_delete}"
            out.append(f"ALTER TABLE {sqlite.quote(table_name)} ADD COLUMN {coldef}")
        else:
            raise sqlite.Untranslatable(
                f"ALTER TABLE {table_name} {action.sql('postgres')}",
                "only ADD COLUMN is translated so far",
            )
    state.tables[table_name] = table
    return out
