"""The frozen intermediate representation every later stage works on."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class PgType:
    """A resolved column or parameter type: a base name (see types.py) and array depth."""

    name: str
    array_dims: int = 0


@dataclass(frozen=True, slots=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str | None = None
    on_update: str | None = None


@dataclass(frozen=True, slots=True)
class Check:
    postgres: str
    sqlite: str


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: PgType
    not_null: bool
    pg_type_sql: str = ""
    """The type as written in PostgreSQL, with modifiers (``varchar(20)``, ``text[]``)."""
    default_pg: str | None = None
    default_sqlite: str | None = None
    identity: bool = False
    """serial, bigserial or GENERATED ... AS IDENTITY."""
    encrypted: bool = False
    """Marked ``-- aragora:encrypted``: stored as bytes (``bytea``, ``BLOB``), sealed by the
    generated code; ``type`` stays the declared type, which the application sees."""


@dataclass(frozen=True, slots=True)
class Encrypted:
    """An encrypted column and the row key its values are bound to."""

    column: str
    row_key: tuple[str, ...]
    """Empty for a deterministic column: its values are bound to table and column only."""
    deterministic: bool = False
    """``-- aragora:encrypted t (col) deterministic``: sealed alike for equal values (AES-SIV),
    so it can be a key and be looked up by ``col = $n``."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    uniques: tuple[tuple[str, ...], ...]
    foreign_keys: tuple[ForeignKey, ...]
    checks: tuple[Check, ...]
    location: Location
    comment: str | None = None
    """``COMMENT ON TABLE``: the model's docstring."""
    column_comments: tuple[tuple[str, str], ...] = ()
    """``COMMENT ON COLUMN``: (column, text), each field's docstring."""
    append_only: str | None = None
    """``-- aragora:append-only t (col)``: rows are never updated or deleted, except by
    retention of rows older than a cutoff on this time column (codegen.analysis.append_only)."""
    synced: bool = False
    """``-- aragora:synced t``: SQLite triggers capture its changes (codegen.analysis.synced)."""
    encrypted: tuple[Encrypted, ...] = ()
    """Columns marked ``-- aragora:encrypted t (col) [by (key)]`` (codegen.analysis.encrypted)."""

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def encryption(self, column: str) -> Encrypted | None:
        return next((e for e in self.encrypted if e.column == column), None)

    def row_key_columns(self) -> frozenset[str]:
        """Columns some encrypted column's values are bound to."""
        return frozenset(k for e in self.encrypted for k in e.row_key)


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    table: str
    unique: bool
    postgres_sql: str
    sqlite_sql: str
    concurrently: bool = False
    columns: tuple[str, ...] = ()
    """Plain columns the index covers (a dropped column drops the index, as in PostgreSQL)."""
    sqlite_triggers: tuple[str, ...] = ()
    """Full-text indexes: the SQLite statements that keep the FTS5 table in step with its
    table (triggers, then a rebuild). A table rebuild drops triggers, so it re-runs these."""
    leading: tuple[str, ...] = ()
    """The plain columns the index's key starts with, in order (none for a partial
    index, which does not cover every row): what a lookup by those columns can use."""


@dataclass(frozen=True, slots=True)
class Enum:
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Catalog:
    tables: tuple[Table, ...]
    indexes: tuple[Index, ...]
    enums: tuple[Enum, ...]

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)

    def enum(self, name: str) -> Enum | None:
        return next((e for e in self.enums if e.name == name), None)

    def enum_names(self) -> frozenset[str]:
        return frozenset(e.name for e in self.enums)


@dataclass(frozen=True, slots=True)
class Section:
    """One direction of a migration, as statements for each dialect."""

    postgres: tuple[str, ...]
    sqlite: tuple[str, ...]
    transactional: bool = True
    """False when a PostgreSQL statement cannot run in a transaction (CONCURRENTLY)."""
    sqlite_rebuild: bool = False
    """A SQLite table rebuild: foreign keys off around the transaction, checked before commit."""
    renames: tuple[str, ...] = ()
    """Tables and columns renamed (for schema review)."""
    crypts: tuple[Crypt, ...] = ()
    """Encrypted columns whose existing values this section seals or opens."""


@dataclass(frozen=True, slots=True)
class Crypt:
    """A data step of a migration: seal (or open) every value of ``table.column``, run
    before the statement at ``postgres_at`` / ``sqlite_at`` of its section."""

    table: str
    column: str
    row_key: tuple[str, ...]
    """The columns that find the row (and, unless deterministic, bind its value)."""
    seal: bool
    postgres_at: int
    sqlite_at: int
    deterministic: bool = False


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: str
    checksum: str
    up: Section
    down: Section | None


@dataclass(frozen=True, slots=True)
class Param:
    number: int
    name: str
    type: PgType
    nullable: bool
    is_slice: bool = False


@dataclass(frozen=True, slots=True)
class ResultColumn:
    name: str
    type: PgType
    nullable: bool


@dataclass(frozen=True, slots=True)
class Sealed:
    """A parameter written to an encrypted column: sealed with the row key's parameters."""

    param: int
    table: str
    column: str
    kind: str
    """How the value is sealed: ``text``, ``json`` or ``bytes``."""
    key_params: tuple[int, ...]
    deterministic: bool = False
    lookup: bool = False
    """Compared with a deterministic column (``col = $n``): sealed under every key of the
    ring in turn, until the statement finds or changes a row."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A result column read from an encrypted column: opened with the row key's columns."""

    index: int
    table: str
    column: str
    kind: str
    key_columns: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TranslationHints:
    """What the SQLite rules may consult about one statement (found from its tree and the
    catalog when the query is built)."""

    list_params: frozenset[int] = frozenset()
    """Parameters that are lists (``= ANY`` / sqlc.slice)."""
    not_null: frozenset[str] = frozenset()
    """Column names that cannot be NULL in this statement's rows."""
    json_columns: frozenset[str] = frozenset()
    """json/jsonb columns of the tables the statement reads."""
    enums: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Enum-typed columns of the tables the statement reads, with their values in order."""
    numeric_columns: frozenset[str] = frozenset()
    """numeric columns of the tables the statement reads (exact text on SQLite)."""
    integer_columns: frozenset[str] = frozenset()
    """smallint, integer and bigint columns of the tables the statement reads."""
    float_columns: frozenset[str] = frozenset()
    """real and double precision columns of the tables the statement reads."""
    numeric_typmods: tuple[tuple[str, int, int], ...] = ()
    """``numeric(p, s)`` columns of the table the statement writes: (name, p, s)."""


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    cmd: str
    location: Location
    comments: tuple[str, ...]
    postgres_sql: str
    sqlite_sql: str
    params: tuple[Param, ...]
    columns: tuple[ResultColumn, ...]
    readonly: bool
    model_table: str | None = None
    """Set when the result columns are exactly a table's columns, in order."""
    insert_table: str | None = None
    insert_columns: tuple[str, ...] = ()
    row_count_params: tuple[int, ...] = ()
    """Parameters used as LIMIT or OFFSET (negative values are refused on both)."""
    sqlite_variant: str | None = None
    """``path:line`` of the hand-written SQLite variant used instead of a translation."""
    source_sql: str = ""
    """sqlc's text of the statement, which the SQLite stage translates."""
    hints: TranslationHints = TranslationHints()
    source_block: str = ""
    """The annotated block in its file, for placing a translation problem on its line."""
    sealed: tuple[Sealed, ...] = ()
    """Parameters written to encrypted columns (codegen.model.encryption)."""
    opened: tuple[Opened, ...] = ()
    """Result columns read from encrypted columns."""


@dataclass(frozen=True, slots=True)
class Variant:
    """A hand-written SQLite version of a query, as sqlc's SQLite engine analysed it."""

    name: str
    path: str
    line: int
    sql: str
    """sqlc's text: parameters as ``?n`` numbered in order of first appearance."""
    params: tuple[tuple[int, str, str | None], ...]
    """(number, name, Python type or None when sqlc cannot tell)."""
    columns: tuple[tuple[str, str | None, bool], ...]
    """(name, Python type or None, nullable)."""


@dataclass(frozen=True, slots=True)
class QueryFile:
    stem: str
    path: str
    queries: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Project:
    catalog: Catalog
    migrations: tuple[Migration, ...]
    query_files: tuple[QueryFile, ...]
    versions: dict[str, str] = field(default_factory=dict)
    sqlite_schema: str = ""
