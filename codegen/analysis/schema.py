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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import TokenType

from codegen.dialects import sqlite
from codegen.errors import CodegenError, Problem, line_col
from codegen.model import types
from codegen.model.ir import (
    Catalog,
    Check,
    Column,
    Enum,
    ForeignKey,
    Index,
    Location,
    Migration,
    Section,
    Table,
)

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

    def copy(self) -> _State:
        return _State(dict(self.tables), dict(self.indexes), dict(self.enums))

    def catalog(self) -> Catalog:
        return Catalog(
            tuple(self.tables.values()), tuple(self.indexes.values()), tuple(self.enums.values())
        )


@dataclass
class _Out:
    """What one section produces while its statements are applied."""

    postgres: list[str] = field(default_factory=list)
    sqlite: list[str] = field(default_factory=list)
    transactional: bool = True
    rebuild: bool = False
    renames: list[str] = field(default_factory=list)
    last_rebuild: tuple[str, int, frozenset[str], int] | None = None
    """(table, first statement, columns copied, end) of the latest rebuild."""

    def section(self) -> Section:
        return Section(
            tuple(self.postgres),
            tuple(self.sqlite),
            self.transactional,
            self.rebuild,
            tuple(self.renames),
        )


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
    state = _State()
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
    rel: str, whole: str, text: str, base: int, state: _State, problems: list[Problem]
) -> Section:
    out = _Out()
    try:
        statements = split_statements(text, base)
    except TokenError as exc:
        line, col = line_col(whole, base)
        problems.append(Problem(rel, line, col, f"cannot tokenize: {exc}"))
        return out.section()
    for stmt in statements:
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


def _name(node: exp.Expr | None) -> str:
    assert node is not None
    return node.name


def _apply(tree: exp.Expr, state: _State, loc: Location, out: _Out) -> None:
    """Apply one statement to the catalog and append its SQLite statements to ``out``."""
    if isinstance(tree, exp.Create):
        kind = (tree.args.get("kind") or "").upper()
        if kind == "TABLE":
            table = _table(tree, state, loc)
            state.tables[table.name] = table
            out.sqlite.append(sqlite.create_table_sql(table, state.enum_values()))
            return
        if kind == "INDEX":
            index = _index(tree, state)
            state.indexes[index.name] = index
            if index.concurrently:
                out.transactional = False  # 25001 inside a transaction block
            out.sqlite.append(index.sqlite_sql)
            out.sqlite.extend(index.sqlite_triggers)
            return
        if kind == "TYPE":
            dt = tree.args.get("expression")
            if isinstance(dt, exp.DataType) and dt.is_type(exp.DType.ENUM):
                name = _name(tree.this)
                state.enums[name] = Enum(name, tuple(str(v.this) for v in dt.expressions))
                return  # enum columns become TEXT with a CHECK on SQLite
        raise sqlite.Untranslatable(f"CREATE {kind}", "not supported in migrations")
    if isinstance(tree, exp.Drop):
        _drop(tree, state, out)
        return
    if isinstance(tree, exp.Alter) and (tree.args.get("kind") or "").upper() == "TABLE":
        _alter(tree, state, out)
        return
    if isinstance(tree, exp.Comment):
        return  # documentation in PostgreSQL; SQLite has no COMMENT ON
    raise sqlite.Untranslatable(tree.key.upper(), "not supported in migrations")


def _drop(tree: exp.Drop, state: _State, out: _Out) -> None:
    kind = (tree.args.get("kind") or "").upper()
    names = [_name(t) for t in tree.args.get("tables") or []]
    exists = " IF EXISTS" if tree.args.get("exists") else ""
    if tree.args.get("concurrently"):
        out.transactional = False
    if kind == "TABLE":
        for n in names:
            state.tables.pop(n, None)
            # A full-text index is a table of its own on SQLite: it goes with its table.
            out.sqlite.extend(
                f"DROP TABLE {sqlite.quote(v.name)}"
                for v in state.indexes.values()
                if v.table == n and v.sqlite_triggers
            )
            state.indexes = {k: v for k, v in state.indexes.items() if v.table != n}
            out.sqlite.append(f"DROP TABLE{exists} {sqlite.quote(n)}")
    elif kind == "INDEX":
        for n in names:
            dropped = state.indexes.pop(n, None)
            if dropped is not None and dropped.sqlite_triggers:
                out.sqlite.extend(sqlite.fts_drop_sql(n))
            else:
                out.sqlite.append(f"DROP INDEX{exists} {sqlite.quote(n)}")
    elif kind == "TYPE":
        for n in names:
            state.enums.pop(n, None)
    else:
        raise sqlite.Untranslatable(f"DROP {kind}", "not supported in migrations")


def _type_sql(kind: exp.DataType) -> str:
    return kind.sql("postgres").lower()


def _column(
    cdef: exp.ColumnDef,
    pk: list[str],
    uniques: list[tuple[str, ...]],
    fks: list[ForeignKey],
    checks: list[Check],
) -> Column:
    kind = cdef.args.get("kind")
    if not isinstance(kind, exp.DataType):
        raise sqlite.Untranslatable(f"column {cdef.name}", "a column needs a type")
    raw_type = _type_sql(kind)
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
            if kind.is_type(exp.DType.ARRAY):
                # An array default ('{}') is JSON text on SQLite: '[]'.
                literal = sqlite._strip_casts(ck.this)
                if not (isinstance(literal, exp.Literal) and literal.is_string):
                    raise sqlite.Untranslatable(default_pg, "array defaults must be literals")
                default_sqlite = sqlite.quote_string(sqlite.array_literal(literal.this))
        elif isinstance(ck, exp.CheckColumnConstraint):
            checks.append(_check(ck.this))
        elif isinstance(ck, exp.Reference):
            fks.append(_reference((cdef.name,), ck))
        else:
            raise sqlite.Untranslatable(constraint.sql("postgres"), "unsupported column constraint")
    return Column(
        cdef.name, sqlite.type_of(kind), not_null, raw_type, default_pg, default_sqlite, identity
    )


def _check(node: exp.Expr) -> Check:
    return Check(node.sql("postgres"), sqlite.translate_expression(node))


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


def _constraint(
    node: exp.Expr,
    pk: list[str],
    uniques: list[tuple[str, ...]],
    fks: list[ForeignKey],
    checks: list[Check],
) -> None:
    """A table-level constraint (CREATE TABLE or ALTER TABLE ... ADD CONSTRAINT)."""
    original = node
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
        checks.append(_check(node.this))
    else:
        raise sqlite.Untranslatable(original.sql("postgres"), "unsupported table constraint")


def _table(tree: exp.Create, state: _State, loc: Location) -> Table:
    schema = tree.this
    assert isinstance(schema, exp.Schema)
    name = _name(schema.this)
    pk: list[str] = []
    uniques: list[tuple[str, ...]] = []
    fks: list[ForeignKey] = []
    checks: list[Check] = []
    columns: list[Column] = []
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            columns.append(_column(item, pk, uniques, fks, checks))
        else:
            _constraint(item, pk, uniques, fks, checks)
    columns = [replace(c, not_null=True) if c.name in pk else c for c in columns]
    table = Table(name, tuple(columns), tuple(pk), tuple(uniques), tuple(fks), tuple(checks), loc)
    _validate(table, state)
    return table


def _validate(table: Table, state: _State) -> None:
    known = {c.name for c in table.columns}
    for fk in table.foreign_keys:
        if fk.ref_table not in state.tables and fk.ref_table != table.name:
            raise sqlite.Untranslatable(
                f"REFERENCES {fk.ref_table}", f"table {fk.ref_table} does not exist"
            )
    for col_name in table.primary_key:
        if col_name not in known:
            raise sqlite.Untranslatable(f"PRIMARY KEY ({col_name})", "no such column")
    for c in table.columns:
        if c.type.name not in types.BUILTIN and c.type.name not in state.enums:
            raise sqlite.Untranslatable(c.type.name, f"unknown type for column {c.name}")


def _index(tree: exp.Create, state: _State) -> Index:
    index = tree.this
    assert isinstance(index, exp.Index)
    table = _name(index.args.get("table"))
    if table not in state.tables:
        raise sqlite.Untranslatable(f"ON {table}", f"table {table} does not exist")
    params = index.args.get("params")
    assert isinstance(params, exp.IndexParameters)
    terms = params.args.get("columns") or []
    using = params.args.get("using")
    if using is not None and using.name.lower() == "gin":
        return _fts_index(tree, index.name, state.tables[table], terms)
    if using is not None:
        raise sqlite.Untranslatable("USING", "index methods other than btree and gin (full text)")
    cols = [sqlite.translate_expression(c) for c in terms]
    covered = {col.name for t in terms for col in t.find_all(exp.Column)}
    where = params.args.get("where")
    unique = bool(tree.args.get("unique"))
    exists = " IF NOT EXISTS" if tree.args.get("exists") else ""
    # CONCURRENTLY only changes locking on PostgreSQL; SQLite builds the index the same way.
    sql = (
        f"CREATE {'UNIQUE ' if unique else ''}INDEX{exists} {sqlite.quote(index.name)} "
        f"ON {sqlite.quote(table)} ({', '.join(cols)})"
    )
    if where is not None:
        sql += f" WHERE {sqlite.translate_expression(where.this)}"
        covered |= {col.name for col in where.find_all(exp.Column)}
    pg = tree.copy()
    pg.set("concurrently", False)  # the snapshot describes the result, not how it was built
    pg.set("exists", False)
    return Index(
        index.name,
        table,
        unique,
        pg.sql("postgres"),
        sql,
        bool(tree.args.get("concurrently")),
        tuple(sorted(covered)),
    )


def _fts_index(tree: exp.Create, name: str, table: Table, terms: list[exp.Expr]) -> Index:
    """``CREATE INDEX n ON t USING gin (to_tsvector('simple', col))`` -> an FTS5 table.

    The FTS5 table is an external-content index over ``t`` keyed by its integer primary
    key, kept in step by triggers (fts5.html §4.4.3). Only the ``simple`` configuration is
    translated: it lower-cases without stemming or stop words, as FTS5's unicode61 tokenizer
    does with diacritics kept; stemming configurations have no equivalent tokenizer.
    """
    call = _unwrap_ordered(terms[0]) if len(terms) == 1 else None
    if not (isinstance(call, exp.Anonymous) and call.name.lower() == "to_tsvector"):
        raise sqlite.Untranslatable("USING gin", "gin indexes only on to_tsvector('simple', col)")
    args = list(call.expressions)
    if len(args) != 2 or not isinstance(args[1], exp.Column) or not args[0].is_string:
        raise sqlite.Untranslatable(
            "to_tsvector", "index to_tsvector('<configuration>', <column>) over one column"
        )
    config, column = args[0].name, args[1].name
    if config != "simple":
        raise sqlite.Untranslatable(
            f"'{config}'",
            "only the 'simple' text search configuration has an FTS5 equivalent (unicode61)",
        )
    key = table.primary_key
    key_col = table.column(key[0]) if len(key) == 1 else None
    key_info = types.BUILTIN.get(key_col.type.name) if key_col is not None else None
    if key_col is None or key_info is None or key_info.py != "int":
        raise sqlite.Untranslatable(
            "USING gin", f"full-text indexing needs an integer primary key on {table.name}"
        )
    if table.column(column) is None:
        raise sqlite.Untranslatable(column, f"no column {column} in {table.name}")
    create, triggers = sqlite.fts_index_sql(name, table.name, key_col.name, column)
    pg = tree.copy()
    pg.set("concurrently", False)
    pg.set("exists", False)
    return Index(
        name,
        table.name,
        False,
        pg.sql("postgres"),
        create,
        bool(tree.args.get("concurrently")),
        (column,),
        triggers,
    )


def _unwrap_ordered(node: exp.Expr) -> exp.Expr:
    return node.this if isinstance(node, exp.Ordered) else node


def _alter(tree: exp.Alter, state: _State, out: _Out) -> None:
    table_name = _name(tree.this)
    table = state.tables.get(table_name)
    if table is None:
        raise sqlite.Untranslatable(f"ALTER TABLE {table_name}", "no such table")
    rebuild = False
    copied = {c.name for c in table.columns}  # columns the rebuild copies, after renames
    for action in tree.args.get("actions") or []:
        if isinstance(action, exp.ColumnDef):
            table, native = _add_column(table, action, state)
            if native is None:
                rebuild = True
            else:
                out.sqlite.append(native)
        elif isinstance(action, exp.Drop) and (action.args.get("kind") or "").upper() == "COLUMN":
            for col in action.args.get("tables") or []:
                if table.column(col.name) is None:
                    if action.args.get("exists"):
                        continue
                    raise sqlite.Untranslatable(f"DROP COLUMN {col.name}", "no such column")
                table = _without_column(table, col.name, state)
                rebuild = True
        elif isinstance(action, exp.AlterColumn):
            table = _alter_column(table, action)
            rebuild = True
        elif isinstance(action, exp.RenameColumn):
            old, new = _name(action.this), _name(action.args.get("to"))
            table = _rename_column(table, old, new, state)
            copied = {new if c == old else c for c in copied}
            out.renames.append(f"column {table_name}.{old} -> {new}")
            out.sqlite.append(
                f"ALTER TABLE {sqlite.quote(table_name)} RENAME COLUMN "
                f"{sqlite.quote(old)} TO {sqlite.quote(new)}"
            )
        elif isinstance(action, exp.AlterRename):
            new = _name(action.this)
            state.tables.pop(table_name)
            state.indexes = {
                k: replace(v, table=new) if v.table == table_name else v
                for k, v in state.indexes.items()
            }
            out.renames.append(f"table {table_name} -> {new}")
            out.sqlite.append(
                f"ALTER TABLE {sqlite.quote(table_name)} RENAME TO {sqlite.quote(new)}"
            )
            table_name, table = new, replace(table, name=new)
        elif isinstance(action, exp.AddConstraint):
            pk, uniques = list(table.primary_key), list(table.uniques)
            fks, checks = list(table.foreign_keys), list(table.checks)
            for constraint in action.expressions:
                _constraint(constraint, pk, uniques, fks, checks)
            table = replace(
                table,
                primary_key=tuple(pk),
                uniques=tuple(uniques),
                foreign_keys=tuple(fks),
                checks=tuple(checks),
            )
            rebuild = True
        else:
            raise sqlite.Untranslatable(
                f"ALTER TABLE {table_name} {action.sql('postgres')}", "not supported in migrations"
            )
    _validate(table, state)
    state.tables[table_name] = table
    if rebuild:
        start, last = len(out.sqlite), out.last_rebuild
        if last is not None and last[0] == table_name and last[3] == start:
            # The previous statement rebuilt this table too: rebuild once, copying only
            # the columns both steps keep.
            start, copied = last[1], copied & last[2]
            del out.sqlite[start:]
        out.sqlite.extend(_rebuild(table, copied, state))
        out.last_rebuild = (table_name, start, frozenset(copied), len(out.sqlite))
        out.rebuild = True


def _add_column(table: Table, cdef: exp.ColumnDef, state: _State) -> tuple[Table, str | None]:
    """Add a column; return the new table and the native SQLite statement, or None when
    SQLite's ADD COLUMN cannot express it (lang_altertable.html §5) and a rebuild is due."""
    pk: list[str] = []
    uniques: list[tuple[str, ...]] = []
    fks: list[ForeignKey] = []
    checks: list[Check] = []
    col = _column(cdef, pk, uniques, fks, checks)
    if table.column(col.name) is not None:
        raise sqlite.Untranslatable(f"ADD COLUMN {col.name}", "column already exists")
    new = replace(
        table,
        columns=(*table.columns, col),
        primary_key=table.primary_key + tuple(pk),
        uniques=table.uniques + tuple(uniques),
        foreign_keys=table.foreign_keys + tuple(fks),
        checks=table.checks + tuple(checks),
    )
    constant_default = col.default_sqlite is None or sqlite.is_literal(col.default_sqlite)
    if (
        pk
        or uniques
        or col.identity
        or not constant_default
        or (col.not_null and col.default_sqlite is None)
    ):
        return new, None
    coldef = sqlite.column_sql(col, new, state.enum_values())
    coldef += "".join(f" CHECK ({c.sqlite})" for c in checks)
    for fk in fks:
        coldef += (
            f" REFERENCES {sqlite.quote(fk.ref_table)} "
            f"({', '.join(sqlite.quote(c) for c in fk.ref_columns)})"
        )
        if fk.on_delete:
            coldef += f" ON DELETE {fk.on_delete}"
    return new, f"ALTER TABLE {sqlite.quote(table.name)} ADD COLUMN {coldef}"


def _without_column(table: Table, name: str, state: _State) -> Table:
    """Drop a column; indexes over it go too, as in PostgreSQL (sql-altertable.html)."""
    if name in table.primary_key:
        raise sqlite.Untranslatable(f"DROP COLUMN {name}", "cannot drop a primary key column")
    state.indexes = {
        k: v for k, v in state.indexes.items() if not (v.table == table.name and name in v.columns)
    }
    return replace(
        table,
        columns=tuple(c for c in table.columns if c.name != name),
        uniques=tuple(u for u in table.uniques if name not in u),
        foreign_keys=tuple(f for f in table.foreign_keys if name not in f.columns),
        checks=tuple(c for c in table.checks if not _mentions(c.postgres, name)),
    )


def _mentions(sql: str, column: str) -> bool:
    return any(
        c.name == column for c in sqlglot.parse_one(sql, read="postgres").find_all(exp.Column)
    )


def _alter_column(table: Table, action: exp.AlterColumn) -> Table:
    name = _name(action.this)
    col = table.column(name)
    if col is None:
        raise sqlite.Untranslatable(f"ALTER COLUMN {name}", "no such column")
    dtype = action.args.get("dtype")
    if isinstance(dtype, exp.DataType):
        if action.args.get("using"):
            raise sqlite.Untranslatable("USING", "ALTER COLUMN ... USING has no sqlite form")
        col = replace(col, type=sqlite.type_of(dtype), pg_type_sql=_type_sql(dtype))
    elif "default" in action.args and action.args.get("default") is not None:
        default = action.args["default"]
        col = replace(
            col,
            default_pg=default.sql("postgres"),
            default_sqlite=sqlite.translate_expression(default),
        )
    elif action.args.get("allow_null") is not None:
        col = replace(col, not_null=not action.args["allow_null"])
    elif action.args.get("drop"):
        col = replace(col, default_pg=None, default_sqlite=None)
    else:
        raise sqlite.Untranslatable(f"ALTER COLUMN {name}", "unsupported column change")
    return replace(table, columns=tuple(col if c.name == name else c for c in table.columns))


def _rename_in(sql: str, old: str, new: str, dialect: str) -> str:
    tree = sqlglot.parse_one(sql, read=dialect)

    def fix(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and node.name == old:
            return exp.column(new)
        return node

    return tree.transform(fix).sql(dialect)


def _rename_column(table: Table, old: str, new: str, state: _State) -> Table:
    if table.column(old) is None:
        raise sqlite.Untranslatable(f"RENAME COLUMN {old}", "no such column")
    for key, index in list(state.indexes.items()):
        if index.table == table.name and old in index.columns:
            state.indexes[key] = replace(
                index,
                postgres_sql=_rename_in(index.postgres_sql, old, new, "postgres"),
                sqlite_sql=_rename_in(index.sqlite_sql, old, new, "sqlite"),
                columns=tuple(sorted(new if c == old else c for c in index.columns)),
            )
    rename: Callable[[tuple[str, ...]], tuple[str, ...]] = lambda cols: tuple(  # noqa: E731
        new if c == old else c for c in cols
    )
    return replace(
        table,
        columns=tuple(replace(c, name=new) if c.name == old else c for c in table.columns),
        primary_key=rename(table.primary_key),
        uniques=tuple(rename(u) for u in table.uniques),
        foreign_keys=tuple(replace(f, columns=rename(f.columns)) for f in table.foreign_keys),
        checks=tuple(
            Check(
                _rename_in(c.postgres, old, new, "postgres"),
                _rename_in(c.sqlite, old, new, "sqlite"),
            )
            for c in table.checks
        ),
    )


def _rebuild(table: Table, old_columns: set[str], state: _State) -> list[str]:
    """SQLite's table rebuild (lang_altertable.html §7, steps 4-10)."""
    temp = replace(table, name=f"{table.name}__rebuild")
    kept = [c for c in table.columns if c.name in old_columns]
    cols = ", ".join(sqlite.quote(c.name) for c in kept)
    return [
        sqlite.create_table_sql(temp, state.enum_values()),
        f"INSERT INTO {sqlite.quote(temp.name)} ({cols}) SELECT {cols} "
        f"FROM {sqlite.quote(table.name)}",
        f"DROP TABLE {sqlite.quote(table.name)}",
        f"ALTER TABLE {sqlite.quote(temp.name)} RENAME TO {sqlite.quote(table.name)}",
        *(
            sql
            for i in state.indexes.values()
            if i.table == table.name
            for sql in (i.sqlite_triggers or (i.sqlite_sql,))
        ),
    ]


def postgres_schema(catalog: Catalog) -> str:
    """The resulting PostgreSQL schema, deterministic, for review in pull requests."""
    parts: list[str] = []
    for enum in sorted(catalog.enums, key=lambda e: e.name):
        values = ", ".join(exp.Literal.string(v).sql("postgres") for v in enum.values)
        parts.append(f"CREATE TYPE {enum.name} AS ENUM ({values});")
    for table in sorted(catalog.tables, key=lambda t: t.name):
        lines = []
        for c in table.columns:
            line = f"{c.name} {c.pg_type_sql}"
            if c.not_null and not c.identity:
                line += " NOT NULL"
            if c.default_pg is not None:
                line += f" DEFAULT {c.default_pg}"
            lines.append(line)
        if table.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
        lines.extend(f"UNIQUE ({', '.join(u)})" for u in table.uniques)
        lines.extend(f"CHECK ({c.postgres})" for c in table.checks)
        lines.extend(sqlite.foreign_key_sql(fk, str) for fk in table.foreign_keys)
        body = ",\n    ".join(lines)
        parts.append(f"CREATE TABLE {table.name} (\n    {body}\n);")
    parts.extend(f"{i.postgres_sql};" for i in sorted(catalog.indexes, key=lambda i: i.name))
    return "\n\n".join(parts) + "\n"
