"""What one query module is made of: imports, annotations, conversions, decoders, methods.

Values (signatures, conversions, decoders) are computed here on the IR; the Jinja
templates only loop and branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import naming, types
from ..model.ir import Catalog, Param, PgType, Query, ResultColumn

_STDLIB = {
    "datetime": "datetime",
    "date": "datetime",
    "time": "datetime",
    "timedelta": "datetime",
    "Decimal": "decimal",
    "UUID": "uuid",
}
_CODEC = (
    "encode_timestamptz",
    "decode_timestamptz",
    "encode_timestamp",
    "encode_json",
    "encode_numeric",
    "encode_interval",
    "decode_interval",
    "check_text",
    "check_int2",
    "check_int4",
    "check_row_count",
    "text_element",
    "int2_element",
    "int4_element",
    "int8_element",
    "float_element",
    "int_array",
    "check_numeric",
    "numeric_array",
)


@dataclass
class Imports:
    """Names a module needs, collected while rendering its expressions."""

    stdlib: set[tuple[str, str]] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)
    codec: set[str] = field(default_factory=set)
    json_alias: bool = False
    models: set[str] = field(default_factory=set)

    def note(self, text: str) -> str:
        for name in _CODEC:
            if f"{name}(" in text:
                self.codec.add(name)
        if "json.loads(" in text:
            self.modules.add("json")
        for name, module in _STDLIB.items():
            if f"{name}(" in text or f"{name}.fromisoformat(" in text:
                self.stdlib.add((module, name))
        return text

    def lines(self) -> list[str]:
        out = [f"import {m}" for m in sorted(self.modules)]
        by_module: dict[str, list[str]] = {}
        for module, name in self.stdlib:
            by_module.setdefault(module, []).append(name)
        out += [f"from {m} import {', '.join(sorted(ns))}" for m, ns in sorted(by_module.items())]
        return out


class Types:
    """Python annotations and conversion expressions for one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.enum_names = {e.name: naming.pascal(e.name) for e in catalog.enums}

    def info(self, t: PgType) -> types.TypeInfo:
        if t.name in self.enum_names:
            return types.enum_info(self.enum_names[t.name])
        return types.BUILTIN[t.name]

    def annotation(self, t: PgType, nullable: bool, imports: Imports) -> str:
        py = self.info(t).py
        if py in _STDLIB:
            imports.stdlib.add((_STDLIB[py], py))
        elif py == "JSON":
            imports.json_alias = True
        elif t.name in self.enum_names:
            imports.models.add(py)
            imports.models.add(types.enum_lookup(py))
        for _ in range(t.array_dims):
            py = f"list[{py}]"
        return f"{py} | None" if nullable else py

    def _elem(self, template: str | None, v: str) -> str | None:
        return template.format(v=v) if template else None

    def sqlite_decode(self, t: PgType, v: str) -> str | None:
        info = self.info(t)
        if t.array_dims:
            elem = (
                None if t.name in ("json", "jsonb", "bool") else self._elem(info.sqlite_decode, "x")
            )
            return f"json.loads({v})" if elem is None else f"[{elem} for x in json.loads({v})]"
        return self._elem(info.sqlite_decode, v)

    def sqlite_encode(self, t: PgType, v: str) -> str | None:
        info = self.info(t)
        if t.array_dims:
            elem = self._elem(info.json_element_encode, "x")
            return f"encode_json({v})" if elem is None else f"encode_json([{elem} for x in {v}])"
        return self._elem(info.sqlite_encode, v)

    def postgres_decode(self, t: PgType, v: str) -> str | None:
        if t.name in self.enum_names:
            lookup = types.enum_lookup(self.enum_names[t.name])
            return f"[{lookup}[x] for x in {v}]" if t.array_dims else f"{lookup}[{v}]"
        return None


def _nullable(expr: str | None, v: str, nullable: bool) -> str:
    if expr is None:
        return v
    return f"None if {v} is None else {expr}" if nullable else expr


@dataclass(frozen=True)
class FieldSpec:
    name: str
    annotation: str
    doc: str = ""
    """The field's docstring (``COMMENT ON COLUMN``), written after it."""


@dataclass(frozen=True)
class ClassSpec:
    name: str
    doc: str
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True)
class DecoderSpec:
    name: str
    cls: str
    expr: str

    @property
    def keys(self) -> bool:
        """Whether the decoder opens encrypted columns (it takes the key ring)."""
        return "keys.open_" in self.expr


class Decoders:
    """One decoder function per result shape in a module: every query returning the same
    class with the same conversions calls the same function."""

    def __init__(self) -> None:
        self.by_shape: dict[tuple[str, str, str], DecoderSpec] = {}

    def name(self, cls: str, backend: str, expr: str) -> str:
        key = (cls, backend, expr)
        found = self.by_shape.get(key)
        if found is None:
            base = f"_{naming.snake(cls)}_from_{backend}"
            taken = sum(1 for k in self.by_shape if k[:2] == (cls, backend))
            found = DecoderSpec(base if taken == 0 else f"{base}_{taken + 1}", cls, expr)
            self.by_shape[key] = found
        return found.name

    def specs(self) -> list[DecoderSpec]:
        return list(self.by_shape.values())


@dataclass(frozen=True)
class MethodSpec:
    name: str
    query: Query
    const: str
    scalar: str
    signature: str
    returns: str
    doc: str
    sync_doc: str
    call_kwargs: str
    pg_args: str
    sqlite_args: str
    pg_row: str
    sqlite_row: str
    copy_columns: str
    copy_record: str
    sqlite_record: str
    row_type: str = ""
    """A row's type: the element of a :many list (its streaming form yields these)."""
    keys_arg: str = ""
    """``, self._db.keys`` when the decoders open encrypted columns."""
    lookup_var: str = ""
    """Set when the statement looks up a deterministic encrypted column: the loop variable
    holding the parameter's sealed form under one key of the ring."""
    lookup: str = ""
    """The sealed forms to try in turn, until one finds or changes a row."""


def _row(cls: str, cols: tuple[ResultColumn, ...], decode: list[str | None]) -> str:
    values = [
        _nullable(d, f"r[{i}]", c.nullable)
        for i, (c, d) in enumerate(zip(cols, decode, strict=True))
    ]
    if not values:
        return ""
    if cls == "":
        return values[0]
    return f"{cls}({', '.join(values)})"


def _tuple(items: list[str]) -> str:
    if not items:
        return "()"
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def method(
    q: Query, ty: Types, imports: Imports, classes: list[ClassSpec], decoders: Decoders
) -> MethodSpec:
    row_cls = _row_class(q, ty, imports, classes)
    scalar = (
        ty.annotation(q.columns[0].type, q.columns[0].nullable, imports)
        if (q.columns and not row_cls)
        else ""
    )
    signature, call_kwargs = _signature(q, ty, imports, classes)
    names = {p.number: p.name for p in q.params}
    sealed = {s.param: s for s in q.sealed}

    def seal(p: Param, v: str) -> str | None:
        """The sealed form of an encrypted column's value, bound to its row key."""
        s = sealed.get(p.number)
        if s is None:
            return None
        if s.lookup:
            return f"{p.name}_sealed"  # the lookup loop's variable
        prefix = v[: -len(p.name)]  # "p." for a batch row
        key = _tuple([prefix + names[k] for k in s.key_params])
        how = ", deterministic=True" if s.deterministic else ""
        return f"self._db.keys.seal_{s.kind}({v}, {s.table!r}, {s.column!r}, {key}{how})"

    def enc(p: Param, v: str) -> str:
        sealed_expr = seal(p, v)
        if sealed_expr is not None:
            return sealed_expr
        expr = ty.sqlite_encode(p.type, v)
        if p.number in q.row_count_params:
            expr = f"check_row_count({expr or v})"
        return imports.note(_nullable(expr, v, p.nullable))

    def pg_enc(p: Param, v: str) -> str:
        sealed_expr = seal(p, v)
        if sealed_expr is not None:
            return sealed_expr
        if p.type.array_dims == 1 and p.type.name in ("int2", "int4", "int8"):
            return imports.note(_nullable(f"int_array({v})", v, p.nullable))
        if p.type.name == "numeric" and p.type.array_dims <= 1:
            # asyncpg sends a value past numeric's range as 0: refused here, as on SQLite.
            check = "numeric_array" if p.type.array_dims else "check_numeric"
            return imports.note(_nullable(f"{check}({v})", v, p.nullable))
        if p.number in q.row_count_params:
            # PostgreSQL refuses a negative LIMIT only when the LIMIT runs (not in a
            # subquery over no rows); refused before sending, on both backends alike.
            return imports.note(_nullable(f"check_row_count({v})", v, p.nullable))
        return v

    pg_row, sqlite_row = _rows(q, row_cls, ty, imports, decoders)
    if q.cmd == ":many":
        imports.stdlib.add(("collections.abc", "AsyncIterator"))
        imports.stdlib.add(("collections.abc", "Iterator"))
    return MethodSpec(
        naming.snake(q.name),
        q,
        naming.upper(q.name),
        scalar,
        signature,
        _returns(q.cmd, row_cls or scalar),
        _doc(q),
        _sync_doc(q),
        call_kwargs,
        _tuple([pg_enc(p, p.name) for p in q.params]),
        _tuple([enc(p, p.name) for p in q.params]),
        pg_row,
        sqlite_row,
        _tuple([repr(c) for c in q.insert_columns]),
        _tuple([pg_enc(p, f"p.{p.name}") for p in q.params]),
        _tuple([enc(p, f"p.{p.name}") for p in q.params]),
        row_cls or scalar,
        ", self._db.keys" if q.opened else "",
        *_lookup(q, names),
    )


def _lookup(q: Query, names: dict[int, str]) -> tuple[str, str]:
    """The loop over a deterministic lookup's sealed forms: its variable and iterable."""
    s = next((s for s in q.sealed if s.lookup), None)
    if s is None:
        return "", ""
    name = names[s.param]
    return (
        f"{name}_sealed",
        f"self._db.keys.lookup_{s.kind}({name}, {s.table!r}, {s.column!r})",
    )


def _row_class(q: Query, ty: Types, imports: Imports, classes: list[ClassSpec]) -> str:
    """The class a row decodes to: the table's model, a row class declared here, or ""
    (one non-null column: a scalar)."""
    if not q.columns:
        return ""
    if q.model_table is not None:
        name = naming.singular(q.model_table)
        imports.models.add(name)
        return name
    if len(q.columns) == 1 and not q.columns[0].nullable:
        return ""
    name = f"{naming.pascal(q.name)}Row"
    fields = tuple(FieldSpec(c.name, ty.annotation(c.type, c.nullable, imports)) for c in q.columns)
    classes.append(ClassSpec(name, f"A row of {q.name}.", fields))
    return name


def _signature(q: Query, ty: Types, imports: Imports, classes: list[ClassSpec]) -> tuple[str, str]:
    """The method's parameters, and the keyword arguments that pass them on."""
    if q.cmd in (":copyfrom", ":batchexec", ":batchone", ":batchmany"):
        params_cls = f"{naming.pascal(q.name)}Params"
        fields = tuple(
            FieldSpec(p.name, ty.annotation(p.type, p.nullable, imports)) for p in q.params
        )
        classes.append(ClassSpec(params_cls, f"One row for {q.name}.", fields))
        imports.stdlib.add(("collections.abc", "Iterable"))
        return f"self, rows: Iterable[{params_cls}]", "rows"
    params = [f"{p.name}: {ty.annotation(p.type, p.nullable, imports)}" for p in q.params]
    signature = "self, *, " + ", ".join(params) if params else "self"
    return signature, ", ".join(f"{p.name}={p.name}" for p in q.params)


def _returns(cmd: str, row_type: str) -> str:
    return {
        ":one": f"{row_type} | None",
        ":many": f"list[{row_type}]",
        ":exec": "None",
        ":execrows": "int",
        ":execresult": "ExecResult",
        ":copyfrom": "int",
        ":batchexec": "int",
        ":batchone": f"list[{row_type} | None]",
        ":batchmany": f"list[list[{row_type}]]",
    }[cmd]


def _rows(
    q: Query, row_cls: str, ty: Types, imports: Imports, decoders: Decoders
) -> tuple[str, str]:
    """How a row is decoded on each backend: a decoder's name for a row class (one per
    shape, shared), else the scalar's expression over ``r``."""
    for c in q.columns:
        if c.type.name in ty.enum_names:
            # The decoders read the enum's lookup table, whatever the row class is (a
            # table's model, declared elsewhere, included).
            imports.models.add(types.enum_lookup(ty.enum_names[c.type.name]))
    opened = {o.index: o for o in q.opened}

    def open_(i: int) -> str | None:
        o = opened.get(i)
        if o is None:
            return None
        key = _tuple([f"r[{k}]" for k in o.key_columns])
        return f"keys.open_{o.kind}(r[{i}], {o.table!r}, {o.column!r}, {key})"

    pg_row = _row(
        row_cls,
        q.columns,
        [open_(i) or ty.postgres_decode(c.type, f"r[{i}]") for i, c in enumerate(q.columns)],
    )
    sqlite_row = imports.note(
        _row(
            row_cls,
            q.columns,
            [open_(i) or ty.sqlite_decode(c.type, f"r[{i}]") for i, c in enumerate(q.columns)],
        )
    )
    if not row_cls:
        return pg_row, sqlite_row
    return decoders.name(row_cls, "pg", pg_row), decoders.name(row_cls, "sqlite", sqlite_row)


_RETURNS = {
    ":one": "The row, or None when no row matches.",
    ":many": "Every matching row.",
    ":exec": "Nothing.",
    ":execrows": "The number of rows affected.",
    ":execresult": "The command's result (rows affected).",
    ":copyfrom": "The number of rows inserted (COPY on PostgreSQL, one executemany on SQLite).",
    ":batchexec": "The number of parameter rows run (one executemany on either backend).",
    ":batchone": "Per parameter row, its row or None (all in one transaction).",
    ":batchmany": "Per parameter row, its rows (all in one transaction).",
}


def _docstring(parts: list[str]) -> str:
    return "\n".join(parts).replace("\\", "\\\\").replace('"""', "'''")


def _sql_block(sql: str) -> str:
    return "\n".join("    " + line for line in sql.strip().splitlines())


def _doc(q: Query) -> str:
    """The abstract method's docstring: the query's comments, its SQL as written, returns."""
    lines = [c.removeprefix("--").strip() for c in q.comments if c.strip()]
    summary = lines[0] if lines else f"Run {q.name} ({q.cmd})."
    sql = _sql_block(q.postgres_sql)
    return _docstring(
        [
            summary,
            *lines[1:],
            "",
            "SQL (PostgreSQL)::",
            "",
            sql,
            "",
            "Returns:",
            f"    {_RETURNS[q.cmd]}",
        ]
    )


def _sync_doc(q: Query) -> str:
    """The synchronous method's docstring: what it runs on SQLite; the rest is the async
    method's."""
    sql = _sql_block(q.sqlite_sql)
    return _docstring(
        [
            f"Run {q.name} ({q.cmd}) on SQLite; returns as the async method.",
            "",
            "SQL (SQLite)::",
            "",
            sql,
        ]
    )
