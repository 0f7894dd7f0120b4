"""Foreign keys set aside for the copy, recorded, and added back validated."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from aragora_repos import errors
from aragora_repos.tools.migrate_data.copier import _reason
from aragora_repos.tools.migrate_data.plan import TablePlan
from aragora_repos.tools.migrate_data.state import STATE_SCHEMA, quote

log = logging.getLogger("aragora_repos.migrate_data")

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

log = logging.getLogger("aragora_repos.migrate_data")


async def set_aside_foreign_keys(conn: Connection, schema: str, tables: list[TablePlan]) -> bool:
    """Drop the validated single-column foreign keys of the copied tables for the copy;
    False (and the keys left in place) when this role may not (it does not own them).

    Orphans of these keys are found by one query per batch (``_Copier._orphans``), so the
    server need not check every row with a trigger. Each definition is recorded in the
    same transaction as its drop, so a run killed at any point leaves it where the next
    run (or :func:`restore_foreign_keys`) adds it back.
    """
    wanted = [(t.name, k.name) for t in tables for k in t.foreign_keys]
    if not wanted:
        return True
    try:
        await _drop_foreign_keys(conn, schema, wanted)
    except asyncpg.InsufficientPrivilegeError as exc:
        log.warning("foreign keys stay in place during the copy (%s)", exc)
        return False
    return True


#: pg_constraint's action and match codes (catalog-pg-constraint.html); a code not listed
#: here is refused rather than written into SQL.
_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_MATCH = {"s": "", "f": " MATCH FULL"}
#: Written by versions that stored constraint definitions as SQL text, which could be
#: edited by whoever owns the database and was then run by whoever ran migrate-data.
_LEGACY_KEYS_TABLE = f"{STATE_SCHEMA}.dropped_keys"


@dataclass(frozen=True, slots=True)
class SetAsideKey:
    """A foreign key dropped for the copy, recorded as parts (never as SQL text)."""

    schema: str
    table: str
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    match_type: str
    on_update: str
    on_delete: str
    deferrable: bool
    deferred: bool

    def add_sql(self) -> str:
        """``ALTER TABLE ... ADD CONSTRAINT`` built from the parts, every name quoted.

        Raises:
            MigrationError: for an action or match code PostgreSQL does not have.
        """
        try:
            update, delete = _ACTIONS[self.on_update], _ACTIONS[self.on_delete]
            match = _MATCH[self.match_type]
        except KeyError:
            raise errors.MigrationError(
                f"cannot add back foreign key {self.name!r}: its recorded action or match "
                "code is not one PostgreSQL has"
            ) from None
        if not self.columns or len(self.columns) != len(self.ref_columns):
            raise errors.MigrationError(
                f"cannot add back foreign key {self.name!r}: its recorded columns do not pair up"
            )
        cols = ", ".join(quote(c) for c in self.columns)
        refs = ", ".join(quote(c) for c in self.ref_columns)
        deferral = (
            " DEFERRABLE INITIALLY DEFERRED"
            if self.deferred
            else " DEFERRABLE"
            if self.deferrable
            else ""
        )
        return (
            f"ALTER TABLE {quote(self.schema)}.{quote(self.table)} ADD CONSTRAINT "
            f"{quote(self.name)} FOREIGN KEY ({cols}) REFERENCES "
            f"{quote(self.ref_schema)}.{quote(self.ref_table)} ({refs}){match} "
            f"ON UPDATE {update} ON DELETE {delete}{deferral}"
        )


async def _drop_foreign_keys(conn: Connection, schema: str, wanted: list[tuple[str, str]]) -> None:
    async with conn.transaction():
        rows = await conn.fetch(
            """
            SELECT c.relname, k.conname,
                   ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
                         JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n
                         ORDER BY u.i),
                   rn.nspname, rc.relname,
                   ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
                         JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n
                         ORDER BY u.i),
                   k.confmatchtype::text, k.confupdtype::text, k.confdeltype::text,
                   k.condeferrable,
                   k.condeferred
            FROM pg_constraint k
            JOIN pg_class c ON c.oid = k.conrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_class rc ON rc.oid = k.confrelid
            JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE n.nspname = $1 AND k.contype = 'f' AND k.convalidated
              AND k.confdelsetcols IS NULL
              AND (c.relname, k.conname) IN (SELECT * FROM unnest($2::text[], $3::text[]))
            ORDER BY 1, 2
            """,
            schema,
            [table for table, _ in wanted],
            [name for _, name in wanted],
        )
        for r in rows:
            table, name = r[0], r[1]
            await conn.execute(
                f"INSERT INTO {STATE_SCHEMA}.set_aside_keys VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
                schema,
                *r,
            )
            await conn.execute(
                f"ALTER TABLE {quote(schema)}.{quote(table)} DROP CONSTRAINT {quote(name)}"
            )
            log.info("%s: foreign key %s set aside for the copy", table, name)


async def restore_foreign_keys(
    conn: Connection, schema: str, table: str | None = None
) -> list[str]:
    """Add back every foreign key a run set aside in ``schema`` (only ``table``'s, when
    given), validating it against the copied rows; ``table.constraint`` of each. A key
    that no longer validates raises :class:`errors.ForeignKeyViolation` and stays
    recorded for the next attempt.

    The statement is built from the recorded parts with every name quoted; SQL text read
    from a table is never run (whoever owns the database could have written it).
    """
    if await conn.fetchval("SELECT to_regclass($1)", _LEGACY_KEYS_TABLE) is not None:
        legacy = await conn.fetchval(f"SELECT count(*) FROM {_LEGACY_KEYS_TABLE}")
        if legacy:
            raise errors.MigrationError(
                f"cannot migrate data: {_LEGACY_KEYS_TABLE} holds {legacy} foreign key "
                "definition(s) recorded as SQL text by an older version; stored SQL text is "
                "never run: add those keys back by hand, then DROP TABLE "
                f"{_LEGACY_KEYS_TABLE}"
            )
        await conn.execute(f"DROP TABLE {_LEGACY_KEYS_TABLE}")
    rows = await conn.fetch(
        f"SELECT * FROM {STATE_SCHEMA}.set_aside_keys WHERE schema_name = $1 "
        "AND ($2::text IS NULL OR table_name = $2) ORDER BY 2, 3",
        schema,
        table,
    )
    restored = []
    for r in rows:
        key = SetAsideKey(
            r[0], r[1], r[2], tuple(r[3]), r[4], r[5], tuple(r[6]), r[7], r[8], r[9], r[10], r[11]
        )
        target = f"{quote(schema)}.{quote(key.table)}"
        try:
            async with conn.transaction():
                present = await conn.fetchval(
                    "SELECT count(*) FROM pg_constraint WHERE conrelid = $1::regclass "
                    "AND conname = $2",
                    target,
                    key.name,
                )
                if not present:
                    await conn.execute(key.add_sql())
                await conn.execute(
                    f"DELETE FROM {STATE_SCHEMA}.set_aside_keys "
                    "WHERE schema_name = $1 AND table_name = $2 AND constraint_name = $3",
                    schema,
                    key.table,
                    key.name,
                )
        except asyncpg.PostgresError as exc:
            raise errors.from_sqlstate(
                exc.sqlstate,
                f"migrate-data: foreign key {key.name} of {key.table} could not be added back "
                f"({_reason(exc)}); it stays recorded in {STATE_SCHEMA}.set_aside_keys "
                "and the next run adds it back",
            ) from exc
        log.info("%s: foreign key %s added back and validated", key.table, key.name)
        restored.append(f"{key.table}.{key.name}")
    return restored


# --- reading the source -----------------------------------------------------------------
