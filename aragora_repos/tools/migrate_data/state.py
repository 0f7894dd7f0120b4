"""Where a copy keeps its state in the target: the schema, its tables, quoting."""

from __future__ import annotations

from aragora_repos import errors

#: Where progress and rejects are kept in the target (outside the application schema).
STATE_SCHEMA = "aragora_migrate"
STATE_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA};
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.progress (
    source       text NOT NULL,
    table_name   text NOT NULL,
    last_key     text,
    rows_read    bigint NOT NULL DEFAULT 0,
    rows_copied  bigint NOT NULL DEFAULT 0,
    rows_skipped bigint NOT NULL DEFAULT 0,
    rows_rejected bigint NOT NULL DEFAULT 0,
    batches      bigint NOT NULL DEFAULT 0,
    conversions  jsonb NOT NULL DEFAULT '{{}}',
    done         boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, table_name)
);
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.deferred (
    source     text NOT NULL,
    table_name text NOT NULL,
    position   text NOT NULL,
    PRIMARY KEY (source, table_name, position)
);
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.rejects (
    source      text NOT NULL,
    table_name  text NOT NULL,
    position    text NOT NULL,
    key         text NOT NULL,
    column_name text,
    reason      text NOT NULL,
    value       text,
    PRIMARY KEY (source, table_name, position)
);
CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.set_aside_keys (
    schema_name     text NOT NULL,
    table_name      text NOT NULL,
    constraint_name text NOT NULL,
    columns         text[] NOT NULL,
    ref_schema      text NOT NULL,
    ref_table       text NOT NULL,
    ref_columns     text[] NOT NULL,
    match_type      text NOT NULL,
    on_update       text NOT NULL,
    on_delete       text NOT NULL,
    is_deferrable   boolean NOT NULL,
    is_deferred     boolean NOT NULL,
    PRIMARY KEY (schema_name, table_name, constraint_name)
);
"""


#: A refused row: (position, key, column, reason, value).
RejectRow = tuple[str, str, str | None, str, str | None]


#: Tables each side keeps for itself: the migration runner's record, and a copy into
#: SQLite's own progress and rejects (a project database that received a copy is itself
#: copied elsewhere without them).
SKIPPED_TABLES = frozenset(
    {"schema_version", "aragora_migrate_progress", "aragora_migrate_rejects"}
)
#: Tables migration runners (this one, Aragora's, Rails', Alembic) keep for themselves:
#: never data to import or adopt.
RUNNER_TABLES = frozenset(
    {"schema_version", "_schema_versions", "schema_migrations", "alembic_version"}
)


def quote(name: str) -> str:
    """An identifier quoted for both SQLite and PostgreSQL."""
    if "\x00" in name:
        raise errors.ProgrammingError(f"identifier {name!r} holds a NUL byte")
    return '"' + name.replace('"', '""') + '"'


# --- report -----------------------------------------------------------------------------
