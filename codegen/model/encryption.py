"""Which parameters a query seals and which result columns it opens, and the refusal of
every other use of an encrypted column (``-- aragora:encrypted``, see
``codegen.analysis.encrypted`` and ``aragora_repos.keyring``).

A sealed value is ciphertext under a random nonce: two seals of the same text differ,
so nothing but storing and returning it is meaningful. A query may name an encrypted
column only

* as a plain result column of the statement itself (its select list or RETURNING),
  together with the row key columns it is bound to;
* as an INSERT column whose value is a parameter, the row key's values parameters of
  the same row;
* as an UPDATE ``SET`` target whose value is a parameter, the row picked by
  ``key = $n`` for every row key column in the WHERE clause; or in ``ON CONFLICT ...
  DO UPDATE SET c = EXCLUDED.c`` when the conflict target is the row key.

Anything else (a comparison, ORDER BY, GROUP BY, DISTINCT, a function, a subquery, a
view) is refused with the column's place, as no answer it gave could be right.

A ``deterministic`` column (AES-SIV: equal values seal alike under one key) may also be a
conflict target, be ordered by (in sealed order), and be looked up by ``col = $n`` among
the AND-ed conditions of the statement's own WHERE: the parameter is then a lookup,
sealed under each key of the ring in turn by the generated method, which runs the
statement until a try finds or changes a row (``LOOKUP_COMMANDS`` only; one lookup per
statement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sqlglot import exp

from .ir import Catalog, Opened, Sealed, Table
from .nodes import param_number
from .sqlc import SqlcQuery

#: How a declared type is sealed: as text, JSON or bytes.
KINDS = {
    "text": "text",
    "varchar": "text",
    "bpchar": "text",
    "json": "json",
    "jsonb": "json",
    "bytea": "bytes",
}

Report = Callable[[str, str | None], None]

_WHY = (
    "its values are ciphertext, so it cannot be compared, ordered, grouped, indexed or "
    "searched; select it as a plain result column, test it with IS NULL, or write it from "
    "a parameter"
)
_WHY_DETERMINISTIC = (
    "it is deterministic, so a statement may look it up by `{col} = $n` among the AND-ed "
    "conditions of its own WHERE, order by it (in sealed order) or write it from a "
    "parameter; it cannot be compared otherwise, grouped or searched"
)


def encryption(
    raw: SqlcQuery, tree: exp.Expr, catalog: Catalog, report: Report
) -> tuple[tuple[Sealed, ...], tuple[Opened, ...]]:
    """The query's sealed parameters and opened result columns; problems to ``report``."""
    guarded = {t.name: t for t in catalog.tables if t.encrypted}
    if not guarded:
        return (), ()
    aliases: dict[str, str] = {}
    for node in tree.find_all(exp.Table):
        aliases[node.alias_or_name] = node.name
    if not set(aliases.values()) & guarded.keys():
        return (), ()
    problems = len(_walk(tree, aliases, guarded, catalog, report))
    sealed = _sealed(tree, aliases, guarded, catalog, raw.cmd, report)
    opened = _opened(raw, tree, aliases, guarded, report)
    if problems:
        return (), ()
    return sealed, opened


def _resolve(col: exp.Column, aliases: dict[str, str], catalog: Catalog) -> Table | None:
    """The table a column reference reads, when it is one of the statement's tables."""
    if col.table:
        return catalog.table(aliases.get(col.table, col.table))
    for name in dict.fromkeys(aliases.values()):
        table = catalog.table(name)
        if table is not None and table.encryption(col.name):
            return table
    return None


def _lookup_param(eq: exp.Expr, col: exp.Column) -> int | None:
    """The parameter ``col`` is compared with in ``col = $n`` (either side), if so."""
    if not isinstance(eq, exp.EQ):
        return None
    other = eq.expression if eq.this is col else eq.this if eq.expression is col else None
    return _params_of(other) if other is not None else None


def _in_where(node: exp.Expr, tree: exp.Expr) -> bool:
    """Whether ``node`` is a condition every row of the statement meets: in its own WHERE
    clause, through AND and parentheses only. (A lookup runs once per key until a try
    finds a row; under OR, NOT or a subquery a try could find rows the others would not
    have, and the answer would depend on which key sealed the row.)"""
    parent = node.parent
    while isinstance(parent, exp.And | exp.Paren):
        parent = parent.parent
    return isinstance(parent, exp.Where) and parent.parent is tree


def _allowed(col: exp.Column, tree: exp.Expr, deterministic: bool = False) -> bool:
    node: exp.Expr = col
    parent = node.parent
    if deterministic:
        # Equal values seal alike: a lookup by a parameter sealed the same way finds them,
        # and ORDER BY orders by the sealed bytes (stable, alike on both backends).
        looked_up = parent is not None and _lookup_param(parent, col) is not None
        if looked_up and parent is not None and _in_where(parent, tree):
            return True
        if isinstance(parent, exp.Ordered) and isinstance(parent.parent, exp.Order):
            return True
        if isinstance(parent, exp.Ordered) and isinstance(parent.parent, exp.OnConflict):
            return True  # a conflict target: equal values are equal bytes under one key
    if isinstance(parent, exp.Alias):
        node, parent = parent, parent.parent
    if node.arg_key == "expressions" and (
        (parent is tree and isinstance(tree, exp.Select) and not tree.args.get("distinct"))
        or (isinstance(parent, exp.Returning) and parent.parent is tree)
    ):
        return True
    if (
        isinstance(parent, exp.Is)
        and node is parent.this
        and isinstance(parent.expression, exp.Null)
    ):
        return True  # NULL stays NULL when sealed
    if isinstance(parent, exp.EQ) and parent.arg_key == "expressions":
        holder = parent.parent
        target = parent.this
        if isinstance(holder, exp.Update) and holder is tree and col.arg_key == "this":
            return True
        if isinstance(holder, exp.OnConflict) and isinstance(target, exp.Column):
            value = parent.expression
            if col is target:
                return True
            return col is value and col.table.lower() == "excluded" and col.name == target.name
    return False


def _walk(
    tree: exp.Expr,
    aliases: dict[str, str],
    guarded: dict[str, Table],
    catalog: Catalog,
    report: Report,
) -> list[str]:
    problems = []
    scoped = dict(aliases)
    if isinstance(tree, exp.Insert) and isinstance(tree.this, exp.Schema):
        scoped["excluded"] = scoped["EXCLUDED"] = tree.this.this.name
    for col in tree.find_all(exp.Column):
        table = _resolve(col, scoped, catalog)
        found = table.encryption(col.name) if table is not None else None
        if table is None or table.name not in guarded or found is None:
            continue
        if not _allowed(col, tree, found.deterministic):
            why = _WHY_DETERMINISTIC.format(col=col.name) if found.deterministic else _WHY
            message = f"cannot use encrypted column {table.name}.{col.name} here: {why}"
            problems.append(message)
            report(message, col.name)
    return problems


def _params_of(node: exp.Expr | None) -> int | None:
    return None if node is None else param_number(node)


def _sealed(
    tree: exp.Expr,
    aliases: dict[str, str],
    guarded: dict[str, Table],
    catalog: Catalog,
    cmd: str,
    report: Report,
) -> tuple[Sealed, ...]:
    out: list[Sealed] = []
    uses: dict[int, int] = {}
    for node in tree.find_all(exp.Parameter):
        n = param_number(node)
        if n is not None:
            uses[n] = uses.get(n, 0) + 1
    if isinstance(tree, exp.Insert) and isinstance(tree.this, exp.Schema):
        table = guarded.get(tree.this.this.name)
        if table is not None:
            out.extend(_insert(tree, table, report))
    elif isinstance(tree, exp.Update):
        table = guarded.get(tree.this.name) if isinstance(tree.this, exp.Table) else None
        if table is not None:
            out.extend(_update(tree, table, report))
    out.extend(_lookups(tree, aliases, guarded, catalog, cmd, report))
    for s in out:
        if uses.get(s.param, 0) > 1:
            report(
                f"parameter ${s.param} is written to encrypted column {s.table}.{s.column} "
                "and used elsewhere in the statement; give each use its own parameter",
                s.column,
            )
    return tuple(out)


#: Commands whose statement can run once per key until it finds or changes a row.
LOOKUP_COMMANDS = (":one", ":many", ":exec", ":execrows")


def _lookups(
    tree: exp.Expr,
    aliases: dict[str, str],
    guarded: dict[str, Table],
    catalog: Catalog,
    cmd: str,
    report: Report,
) -> list[Sealed]:
    """``col = $n`` on a deterministic column: ``$n`` sealed under each key in turn."""
    out: list[Sealed] = []
    for col in tree.find_all(exp.Column):
        table = _resolve(col, aliases, catalog)
        found = table.encryption(col.name) if table is not None else None
        if table is None or table.name not in guarded or found is None:
            continue
        if not found.deterministic:
            continue
        n = _lookup_param(col.parent, col) if col.parent is not None else None
        if n is None or col.parent is None or not _in_where(col.parent, tree):
            continue
        if cmd not in LOOKUP_COMMANDS:
            report(
                f"a lookup by encrypted column {table.name}.{col.name} runs once per key of "
                f"the ring until it finds a row: a {cmd} query cannot (use "
                f"{', '.join(LOOKUP_COMMANDS)})",
                col.name,
            )
            continue
        out.append(replace(_seal(n, table, col.name, ()), deterministic=True, lookup=True))
    if len(out) > 1:
        report(
            "a statement may look up one deterministic encrypted column by one parameter "
            f"(this one compares {len(out)})",
            out[1].column,
        )
        return out[:1]
    return out


def _insert(tree: exp.Insert, table: Table, report: Report) -> list[Sealed]:
    schema = tree.this
    names = [i.name for i in schema.expressions]
    missing = [
        e.column
        for e in table.encrypted
        if e.column not in names and (c := table.column(e.column)) is not None and c.not_null
    ]
    if missing:
        report(
            f"INSERT INTO {table.name} must give encrypted column(s) {', '.join(missing)} a "
            "value (an encrypted column has no default)",
            table.name,
        )
    wanted = [e for e in table.encrypted if e.column in names]
    if not wanted:
        _check_conflict(tree, table, report)
        return []
    values = tree.expression
    if not isinstance(values, exp.Values):
        report(
            f"INSERT INTO {table.name} ... SELECT cannot seal {wanted[0].column}: give the "
            "values as parameters (VALUES ($1, ...))",
            wanted[0].column,
        )
        return []
    out: list[Sealed] = []
    for row in values.expressions:
        cells = dict(zip(names, row.expressions, strict=False))
        for e in wanted:
            value = cells.get(e.column)
            if isinstance(value, exp.Null):
                continue
            n = _params_of(value)
            keys = [_params_of(cells.get(k)) for k in e.row_key]
            if n is None:
                report(
                    f"the value of encrypted column {table.name}.{e.column} must be a "
                    "parameter (the application's value is sealed before it is sent)",
                    e.column,
                )
                continue
            if None in keys:
                report(
                    f"the row key ({', '.join(e.row_key)}) of {table.name} must be given as "
                    f"parameters to seal {e.column} (its values are bound to the row key)",
                    e.column,
                )
                continue
            out.append(_seal(n, table, e.column, tuple(k for k in keys if k is not None)))
    out.extend(_check_conflict(tree, table, report, out))
    return out


def _seal(n: int, table: Table, column: str, keys: tuple[int, ...]) -> Sealed:
    col = table.column(column)
    found = table.encryption(column)
    assert col is not None and found is not None
    return Sealed(n, table.name, column, KINDS[col.type.name], keys, found.deterministic)


def _check_conflict(
    tree: exp.Insert, table: Table, report: Report, sealed: list[Sealed] | None = None
) -> list[Sealed]:
    conflict = tree.args.get("conflict")
    if not isinstance(conflict, exp.OnConflict):
        return []
    target = {
        c.name for k in conflict.args.get("conflict_keys") or [] for c in k.find_all(exp.Column)
    }
    out: list[Sealed] = []
    for eq in conflict.expressions:
        if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Column):
            continue
        name = eq.this.name
        if name in table.row_key_columns():
            report(
                f"ON CONFLICT ... SET {name}: {name} is the row key of encrypted columns of "
                f"{table.name}; changing it would strand their values",
                name,
            )
        found = table.encryption(name)
        if found is None:
            continue
        if not found.deterministic and target != set(found.row_key):
            report(
                f"ON CONFLICT ... SET {name}: the conflict target must be the row key "
                f"({', '.join(found.row_key)}) its values are bound to",
                name,
            )
            continue
        n = _params_of(eq.expression)
        if n is not None:
            keys = next((s.key_params for s in sealed or [] if s.table == table.name), None)
            if found.deterministic:
                out.append(_seal(n, table, name, ()))
            elif keys is None:
                report(f"ON CONFLICT ... SET {name} = ${n}: the row key must be parameters", name)
            else:
                out.append(_seal(n, table, name, keys))
    return out


def _update(tree: exp.Update, table: Table, report: Report) -> list[Sealed]:
    keys_by_column: dict[str, int] = {}
    where = tree.args.get("where")
    conjuncts = (
        list(where.this.flatten())
        if where is not None and isinstance(where.this, exp.And)
        else ([where.this] if where is not None else [])
    )
    for term in conjuncts:
        if isinstance(term, exp.EQ):
            for col, other in ((term.this, term.expression), (term.expression, term.this)):
                n = _params_of(other)
                if isinstance(col, exp.Column) and n is not None:
                    keys_by_column.setdefault(col.name, n)
    out: list[Sealed] = []
    for eq in tree.expressions:
        if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Column):
            continue
        name = eq.this.name
        if name in table.row_key_columns():
            report(
                f"SET {name}: {name} is the row key of encrypted columns of {table.name}; "
                "changing it would strand their values",
                name,
            )
        found = table.encryption(name)
        if found is None or isinstance(eq.expression, exp.Null):
            continue
        n = _params_of(eq.expression)
        if n is None:
            report(f"the value of encrypted column {table.name}.{name} must be a parameter", name)
            continue
        keys = [keys_by_column.get(k) for k in found.row_key]
        if None in keys:
            report(
                f"SET {name} needs the row picked by its row key: WHERE "
                + " AND ".join(f"{k} = $n" for k in found.row_key),
                name,
            )
            continue
        out.append(_seal(n, table, name, tuple(k for k in keys if k is not None)))
    return out


def _opened(
    raw: SqlcQuery,
    tree: exp.Expr,
    aliases: dict[str, str],
    guarded: dict[str, Table],
    report: Report,
) -> tuple[Opened, ...]:
    out: list[Opened] = []
    for i, c in enumerate(raw.columns):
        table = guarded.get(c.table or "")
        found = table.encryption(c.original_name) if table is not None else None
        if table is None or found is None:
            continue
        if list(aliases.values()).count(table.name) > 1:
            report(
                f"{table.name} appears more than once in the statement: which row's key "
                f"opens {c.original_name} cannot be told",
                c.name,
            )
            continue
        keys = []
        for k in found.row_key:
            at = next(
                (
                    j
                    for j, o in enumerate(raw.columns)
                    if o.table == table.name and o.original_name == k
                ),
                None,
            )
            keys.append(at)
        if None in keys:
            report(
                f"result column {c.name} is encrypted: select its row key "
                f"({', '.join(found.row_key)}) too, which its value is bound to",
                c.name,
            )
            continue
        col = table.column(found.column)
        assert col is not None
        out.append(
            Opened(
                i,
                table.name,
                found.column,
                KINDS[col.type.name],
                tuple(k for k in keys if k is not None),
            )
        )
    return tuple(out)
