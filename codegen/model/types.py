"""PostgreSQL type names -> Python annotation, SQLite storage and per-column conversions.

Every conversion is decided here at generation time; generated code calls the chosen
function inline, so nothing is looked up per call. Conversion templates take ``{v}``.
SQLite storage forms (see docs/types.md):

* timestamptz: UTC text ``YYYY-MM-DD HH:MM:SS.ffffff+00:00`` (fixed width, so text order
  is time order; SQLite's date functions read it, sqlite.org/lang_datefunc.html §2).
* timestamp: the naive text ``YYYY-MM-DD HH:MM:SS.ffffff`` (no zone, as PostgreSQL keeps it).
* json/jsonb and arrays: JSON text guarded by ``CHECK (json_valid(...))``.
* boolean: INTEGER 0/1; uuid: canonical text; numeric: text (exact); interval: microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass

from .ir import PgType
from .naming import pascal


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """How one PostgreSQL scalar type is represented on each side."""

    py: str
    sqlite_storage: str
    sqlite_encode: str | None = None
    sqlite_decode: str | None = None
    json_element_encode: str | None = None
    """Encoding of one array element inside SQLite JSON text (None: as is)."""


# Values PostgreSQL refuses are refused on SQLite too, with the same error class: NUL in
# text, integers outside the column type's range.
# Array elements are checked for their type too: JSON would take any element, where
# PostgreSQL's driver refuses one of the wrong type.
_TEXT = TypeInfo("str", "TEXT", "check_text({v})", json_element_encode="text_element({v})")
_INT = TypeInfo("int", "INTEGER", json_element_encode="int8_element({v})")
_FLOAT = TypeInfo(
    "float", "REAL", sqlite_decode="float({v})", json_element_encode="float_element({v})"
)

BUILTIN: dict[str, TypeInfo] = {
    "text": _TEXT,
    "int2": TypeInfo("int", "INTEGER", "check_int2({v})", json_element_encode="int2_element({v})"),
    "int4": TypeInfo("int", "INTEGER", "check_int4({v})", json_element_encode="int4_element({v})"),
    "int8": _INT,
    "bool": TypeInfo("bool", "INTEGER", sqlite_decode="bool({v})"),
    "float4": _FLOAT,
    "float8": _FLOAT,
    "numeric": TypeInfo(
        "Decimal", "TEXT", "encode_numeric({v})", "Decimal({v})", "encode_numeric({v})"
    ),
    "timestamptz": TypeInfo(
        "datetime",
        "TEXT",
        "encode_timestamptz({v})",
        "decode_timestamptz({v})",
        "encode_timestamptz({v})",
    ),
    "timestamp": TypeInfo(
        "datetime",
        "TEXT",
        "encode_timestamp({v})",
        "datetime.fromisoformat({v})",
        "encode_timestamp({v})",
    ),
    "date": TypeInfo(
        "date", "TEXT", "{v}.isoformat()", "date.fromisoformat({v})", "{v}.isoformat()"
    ),
    "time": TypeInfo(
        "time", "TEXT", "{v}.isoformat()", "time.fromisoformat({v})", "{v}.isoformat()"
    ),
    "interval": TypeInfo(
        "timedelta",
        "INTEGER",
        "encode_interval({v})",
        "decode_interval({v})",
        "encode_interval({v})",
    ),
    "uuid": TypeInfo("UUID", "TEXT", "str({v})", "UUID({v})", "str({v})"),
    "bytea": TypeInfo("bytes", "BLOB"),
    "json": TypeInfo("JSON", "TEXT", "encode_json({v})", "json.loads({v})"),
    "jsonb": TypeInfo("JSON", "TEXT", "encode_json({v})", "json.loads({v})"),
}

ALIASES: dict[str, str] = {
    "varchar": "text",
    "character varying": "text",
    "char": "text",
    "character": "text",
    "bpchar": "text",
    "name": "text",
    "citext": "text",
    "string": "text",
    "smallint": "int2",
    "smallserial": "int2",
    "serial2": "int2",
    "integer": "int4",
    "int": "int4",
    "serial": "int4",
    "serial4": "int4",
    "bigint": "int8",
    "bigserial": "int8",
    "serial8": "int8",
    "boolean": "bool",
    "real": "float4",
    "double precision": "float8",
    "double": "float8",
    "float": "float8",
    "decimal": "numeric",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "time without time zone": "time",
}

SERIAL_NAMES = frozenset({"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"})
"""Type names that imply a sequence default (an auto-incrementing key on SQLite)."""

#: PostgreSQL pseudo-types sqlc reports when it cannot infer a column's type.
PSEUDO = frozenset(
    {
        "any",
        "anyarray",
        "anyelement",
        "anynonarray",
        "anycompatible",
        "unknown",
        "void",
        "record",
        "",
    }
)


def normalize(name: str) -> str:
    """Canonical base name: lower case, no ``pg_catalog.`` prefix, no modifiers."""
    base = name.strip().lower().removeprefix("pg_catalog.").removeprefix("public.")
    if "(" in base:
        base = base[: base.index("(")].strip()
    base = base.strip('"')
    return ALIASES.get(base, base)


def enum_lookup(class_name: str) -> str:
    """The generated value -> member dict of an enum (``UserRole`` -> ``USER_ROLE_VALUES``):
    a dict lookup instead of ``Enum.__call__``, about 0.5 us a row less."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).upper() + "_VALUES"


def enum_info(class_name: str) -> TypeInfo:
    return TypeInfo(class_name, "TEXT", None, f"{enum_lookup(class_name)}[{{v}}]")


def py_type(t: PgType, enums: Container[str]) -> str:
    """The Python type a value of ``t`` is (enums: the names of the catalog's enums)."""
    info = BUILTIN.get(t.name)
    base = info.py if info is not None else pascal(t.name) if t.name in enums else "?"
    for _ in range(t.array_dims):
        base = f"list[{base}]"
    return base
