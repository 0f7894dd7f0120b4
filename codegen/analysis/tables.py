"""The schema analysis's state and its CREATE statements: tables, columns, constraints,
indexes (full-text ones as FTS5 tables), each with its SQLite form."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlglot import exp

from ..dialects import sqlite, sqlite_ddl
from ..model import types
from ..model.ir import (
    Catalog,
    Check,
    Column,
    Crypt,
    Enum,
    ForeignKey,
    Index,
    Location,
    Section,
    Table,
)


@dataclass
class State:
    """The catalog as migrations are applied in order (mutable only inside this module)."""

    tables: dict[str, Table] = field(default_factory=dict)
    indexes: dict[str, Index] = field(default_factory=dict)
    enums: dict[str, Enum] = field(default_factory=dict)
    views: dict[str, str] = field(default_factory=dict)
    """View name -> its SQLite SELECT."""

    def enum_values(self) -> dict[str, tuple[str, ...]]:
        return {name: e.values for name, e in self.enums.items()}

    def copy(self) -> State:
        return State(dict(self.tables), dict(self.indexes), dict(self.enums), dict(self.views))

    def catalog(self) -> Catalog:
        return Catalog(
            tuple(self.tables.values()), tuple(self.indexes.values()), tuple(self.enums.values())
        )


@dataclass
class Out:
    """What one section produces while its statements are applied."""

    postgres: list[str] = field(default_factory=list)
    sqlite: list[str] = field(default_factory=list)
    transactional: bool = True
    rebuild: bool = False
    renames: list[str] = field(default_factory=list)
    last_rebuild: tuple[str, int, frozenset[str], int] | None = None
    """(table, first statement, columns copied, end) of the latest rebuild."""

    crypts: list[Crypt] = field(default_factory=list)

    def section(self) -> Section:
        return Section(
            tuple(self.postgres),
            tuple(self.sqlite),
            self.transactional,
            self.rebuild,
            tuple(self.renames),
            tuple(self.crypts),
        )


def name_of(node: exp.Expr | None) -> str:
    assert node is not None
    return node.name


def type_sql(kind: exp.DataType) -> str:
    return kind.sql("postgres").lower()


def column_of(
    cdef: exp.ColumnDef,
    pk: list[str],
    uniques: list[tuple[str, ...]],
    fks: list[ForeignKey],
    checks: list[Check],
) -> Column:
    kind = cdef.args.get("kind")
    if not isinstance(kind, exp.DataType):
        raise sqlite.Untranslatable(f"column {cdef.name}", "a column needs a type")
    raw_type = type_sql(kind)
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
            column_type = "" if kind.is_type(exp.DType.ARRAY) else sqlite.type_of(kind).name
            default_sqlite = sqlite.translate_expression(
                sqlite.portable_default(ck.this, column_type)
            )
            if kind.is_type(exp.DType.ARRAY):
                # An array default ('{}') is JSON text on SQLite: '[]'.
                literal = sqlite._strip_casts(ck.this)
                if not (isinstance(literal, exp.Literal) and literal.is_string):
                    raise sqlite.Untranslatable(default_pg, "array defaults must be literals")
                default_sqlite = sqlite_ddl.quote_string(sqlite.array_literal(literal.this))
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
    ref_table = name_of(schema.this if isinstance(schema, exp.Schema) else schema)
    ref_cols = tuple(i.name for i in schema.expressions) if isinstance(schema, exp.Schema) else ()
    on_delete = on_update = None
    for option in ref.args.get("options") or []:
        text = str(option).upper()
        if text.startswith("ON DELETE "):
            on_delete = text.removeprefix("ON DELETE ")
        elif text.startswith("ON UPDATE "):
            on_update = text.removeprefix("ON UPDATE ")
    return ForeignKey(columns, ref_table, ref_cols, on_delete, on_update)


def add_constraint(
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
        pk.extend(name_of(e) for e in node.expressions)
    elif isinstance(node, exp.UniqueColumnConstraint) and isinstance(node.this, exp.Schema):
        uniques.append(tuple(name_of(e) for e in node.this.expressions))
    elif isinstance(node, exp.ForeignKey):
        ref = node.args.get("reference")
        assert isinstance(ref, exp.Reference)
        fks.append(_reference(tuple(name_of(e) for e in node.expressions), ref))
    elif isinstance(node, exp.CheckColumnConstraint):
        checks.append(_check(node.this))
    else:
        raise sqlite.Untranslatable(original.sql("postgres"), "unsupported table constraint")


def table_of(tree: exp.Create, state: State, loc: Location) -> Table:
    schema = tree.this
    assert isinstance(schema, exp.Schema)
    name = name_of(schema.this)
    pk: list[str] = []
    uniques: list[tuple[str, ...]] = []
    fks: list[ForeignKey] = []
    checks: list[Check] = []
    columns: list[Column] = []
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            columns.append(column_of(item, pk, uniques, fks, checks))
        else:
            add_constraint(item, pk, uniques, fks, checks)
    columns = [replace(c, not_null=True) if c.name in pk else c for c in columns]
    table = Table(name, tuple(columns), tuple(pk), tuple(uniques), tuple(fks), tuple(checks), loc)
    validate_table(table, state)
    return table


def validate_table(table: Table, state: State) -> None:
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


def index_of(tree: exp.Create, state: State) -> Index:
    index = tree.this
    assert isinstance(index, exp.Index)
    table = name_of(index.args.get("table"))
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
        f"CREATE {'UNIQUE ' if unique else ''}INDEX{exists} {sqlite_ddl.quote(index.name)} "
        f"ON {sqlite_ddl.quote(table)} ({', '.join(cols)})"
    )
    if where is not None:
        sql += f" WHERE {sqlite.translate_expression(where.this)}"
        covered |= {col.name for col in where.find_all(exp.Column)}
    pg = tree.copy()
    pg.set("concurrently", False)  # the snapshot describes the result, not how it was built
    pg.set("exists", False)
    leading: list[str] = []
    for term in terms if where is None else []:
        column = term.this if isinstance(term, exp.Ordered) else term
        if not isinstance(column, exp.Column):
            break
        leading.append(column.name)
    return Index(
        index.name,
        table,
        unique,
        pg.sql("postgres"),
        sql,
        bool(tree.args.get("concurrently")),
        tuple(sorted(covered)),
        leading=tuple(leading),
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
    create, triggers = sqlite_ddl.fts_index_sql(name, table.name, key_col.name, column)
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
