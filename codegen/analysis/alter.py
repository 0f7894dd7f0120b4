"""ALTER TABLE in migrations: what SQLite does in place, and a table rebuild for the
rest (sqlite.org/lang_altertable.html §7), with renames recorded for review."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import sqlglot
from sqlglot import exp

from ..dialects import sqlite, sqlite_ddl
from ..model.ir import (
    Check,
    ForeignKey,
    Table,
)
from . import append_only, encrypted, synced
from .tables import (
    Out,
    State,
    add_constraint,
    column_of,
    name_of,
    type_sql,
    validate_table,
)


def apply_alter(tree: exp.Alter, state: State, out: Out) -> None:
    table_name = name_of(tree.this)
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
                append_only.guard(table, f"DROP COLUMN {col.name}", col.name)
                encrypted.guard(table, f"DROP COLUMN {col.name}", col.name)
                if table.column(col.name) is None:
                    if action.args.get("exists"):
                        continue
                    raise sqlite.Untranslatable(f"DROP COLUMN {col.name}", "no such column")
                table = _without_column(table, col.name, state)
                rebuild = True
        elif isinstance(action, exp.AlterColumn):
            append_only.guard(table, f"ALTER COLUMN {name_of(action.this)}", name_of(action.this))
            encrypted.guard(table, f"ALTER COLUMN {name_of(action.this)}", name_of(action.this))
            table = _alter_column(table, action)
            rebuild = True
        elif isinstance(action, exp.RenameColumn):
            old, new = name_of(action.this), name_of(action.args.get("to"))
            append_only.guard(table, f"RENAME COLUMN {old}", old)
            encrypted.guard(table, f"RENAME COLUMN {old}", old)
            table = _rename_column(table, old, new, state)
            copied = {new if c == old else c for c in copied}
            out.renames.append(f"column {table_name}.{old} -> {new}")
            out.sqlite.append(
                f"ALTER TABLE {sqlite_ddl.quote(table_name)} RENAME COLUMN "
                f"{sqlite_ddl.quote(old)} TO {sqlite_ddl.quote(new)}"
            )
        elif isinstance(action, exp.AlterRename):
            new = name_of(action.this)
            append_only.guard(table, f"RENAME TO {new}")
            synced.guard(table, f"RENAME TO {new}")
            encrypted.guard(table, f"RENAME TO {new}")
            state.tables.pop(table_name)
            state.indexes = {
                k: replace(v, table=new) if v.table == table_name else v
                for k, v in state.indexes.items()
            }
            out.renames.append(f"table {table_name} -> {new}")
            out.sqlite.append(
                f"ALTER TABLE {sqlite_ddl.quote(table_name)} RENAME TO {sqlite_ddl.quote(new)}"
            )
            table_name, table = new, replace(table, name=new)
        elif isinstance(action, exp.AddConstraint):
            pk, uniques = list(table.primary_key), list(table.uniques)
            fks, checks = list(table.foreign_keys), list(table.checks)
            for constraint in action.expressions:
                encrypted.refuse_in(constraint, [table], "the constraint")
                add_constraint(constraint, pk, uniques, fks, checks)
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
    validate_table(table, state)
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
    elif table.synced:
        # Added or renamed columns: the capture triggers name every column.
        out.sqlite.extend(synced.refresh_sql(table))


def _add_column(table: Table, cdef: exp.ColumnDef, state: State) -> tuple[Table, str | None]:
    """Add a column; return the new table and the native SQLite statement, or None when
    SQLite's ADD COLUMN cannot express it (lang_altertable.html §5) and a rebuild is due."""
    pk: list[str] = []
    uniques: list[tuple[str, ...]] = []
    fks: list[ForeignKey] = []
    checks: list[Check] = []
    col = column_of(cdef, pk, uniques, fks, checks)
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
    constant_default = col.default_sqlite is None or sqlite_ddl.is_literal(col.default_sqlite)
    if (
        pk
        or uniques
        or col.identity
        or not constant_default
        or (col.not_null and col.default_sqlite is None)
    ):
        return new, None
    coldef = sqlite_ddl.column_sql(col, new, state.enum_values())
    coldef += "".join(f" CHECK ({c.sqlite})" for c in checks)
    for fk in fks:
        coldef += (
            f" REFERENCES {sqlite_ddl.quote(fk.ref_table)} "
            f"({', '.join(sqlite_ddl.quote(c) for c in fk.ref_columns)})"
        )
        if fk.on_delete:
            coldef += f" ON DELETE {fk.on_delete}"
    return new, f"ALTER TABLE {sqlite_ddl.quote(table.name)} ADD COLUMN {coldef}"


def _without_column(table: Table, name: str, state: State) -> Table:
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
    name = name_of(action.this)
    col = table.column(name)
    if col is None:
        raise sqlite.Untranslatable(f"ALTER COLUMN {name}", "no such column")
    dtype = action.args.get("dtype")
    if isinstance(dtype, exp.DataType):
        if action.args.get("using"):
            raise sqlite.Untranslatable("USING", "ALTER COLUMN ... USING has no sqlite form")
        col = replace(col, type=sqlite.type_of(dtype), pg_type_sql=type_sql(dtype))
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


def _rename_column(table: Table, old: str, new: str, state: State) -> Table:
    if table.column(old) is None:
        raise sqlite.Untranslatable(f"RENAME COLUMN {old}", "no such column")
    for key, index in list(state.indexes.items()):
        if index.table == table.name and old in index.columns:
            state.indexes[key] = replace(
                index,
                postgres_sql=_rename_in(index.postgres_sql, old, new, "postgres"),
                sqlite_sql=_rename_in(index.sqlite_sql, old, new, "sqlite"),
                columns=tuple(sorted(new if c == old else c for c in index.columns)),
                leading=tuple(new if c == old else c for c in index.leading),
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


def rebuild(table: Table, casts: dict[str, str], state: State) -> list[str]:
    """A rebuild that keeps every column, converting ``casts`` (column -> SQLite type)."""
    return _rebuild(table, {c.name for c in table.columns}, state, casts)


def _rebuild(
    table: Table, old_columns: set[str], state: State, casts: dict[str, str] | None = None
) -> list[str]:
    """SQLite's table rebuild (lang_altertable.html §7, steps 4-10)."""
    temp = replace(table, name=f"{table.name}__rebuild")
    kept = [c for c in table.columns if c.name in old_columns]
    q = sqlite_ddl.quote
    cols = ", ".join(q(c.name) for c in kept)
    values = ", ".join(
        f"CAST({q(c.name)} AS {casts[c.name]})" if casts and c.name in casts else q(c.name)
        for c in kept
    )
    return [
        sqlite_ddl.create_table_sql(temp, state.enum_values()),
        f"INSERT INTO {q(temp.name)} ({cols}) SELECT {values} FROM {q(table.name)}",
        f"DROP TABLE {sqlite_ddl.quote(table.name)}",
        f"ALTER TABLE {sqlite_ddl.quote(temp.name)} RENAME TO {sqlite_ddl.quote(table.name)}",
        *(
            sql
            for i in state.indexes.values()
            if i.table == table.name
            for sql in (i.sqlite_triggers or (i.sqlite_sql,))
        ),
        # The rebuild dropped the append-only and capture triggers with the old table.
        *(
            append_only.sqlite_sql(table.name, table.append_only)
            if table.append_only is not None
            else ()
        ),
        *(synced.sqlite_sql(table) if table.synced else ()),
    ]
