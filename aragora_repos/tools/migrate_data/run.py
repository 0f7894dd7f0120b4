"""The entry point: plan, set keys aside, copy table by table, verify, report."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from aragora_repos import errors
from aragora_repos.backends.sqlite.opener import ENV, for_file
from aragora_repos.config import Secret, SqliteKey
from aragora_repos.tools.migrate_data.columnar import AVAILABLE as columnar_available
from aragora_repos.tools.migrate_data.copier import ColumnarCopy, Options, Progress, _Copier
from aragora_repos.tools.migrate_data.keys import restore_foreign_keys, set_aside_foreign_keys
from aragora_repos.tools.migrate_data.plan import Plan, TablePlan, plan
from aragora_repos.tools.migrate_data.report import DataMigrationReport
from aragora_repos.tools.migrate_data.source import DEFAULT_BATCH_BYTES, _open_source
from aragora_repos.tools.migrate_data.state import STATE_DDL, STATE_SCHEMA
from aragora_repos.tools.migrate_data.target import Target
from aragora_repos.tools.migrate_data.verify import _Verifier

log = logging.getLogger("aragora_repos.migrate_data")

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

log = logging.getLogger("aragora_repos.migrate_data")


async def migrate_data(
    sqlite_path: str | Path,
    postgres_dsn: str | Secret,
    *,
    tables: Sequence[str] | None = None,
    batch_size: int = 1000,
    skip_existing: bool = True,
    dry_run: bool = False,
    verify: bool = False,
    restart: bool = False,
    schema: str = "public",
    reject_file: str | Path | None = None,
    progress: Progress | None = None,
    keep_foreign_keys: bool = False,
    exclude_tables: Sequence[str] = (),
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    key: SqliteKey | object | None = ENV,
    columnar: bool = True,
    pooler: str = "none",
    direct_dsn: str | Secret | None = None,
) -> DataMigrationReport:
    """Copy ``sqlite_path`` into the PostgreSQL database at ``postgres_dsn`` (whose schema
    must already exist, e.g. by ``aragora-repos migrate up``); see the module docstring.

    Args:
        tables: only these tables (default: every table both sides have).
        batch_size: rows per COPY and per committed batch.
        batch_bytes: a batch also ends once its text and blobs reach this many bytes
            (after at least one row), so memory stays bounded whatever the row size.
        skip_existing: rows whose key the target already holds (put there by something
            else than this migration) are skipped; otherwise they are rejected.
        dry_run: read and convert everything, write nothing but the reject file.
        verify: compare row counts and checksums of both sides (each table as soon as its
            copy is done, alongside the next copies); not with ``dry_run``.
        restart: forget the progress of earlier runs of this source.
        reject_file: JSON Lines of refused rows (default ``<sqlite_path>.rejects.jsonl``).
        keep_foreign_keys: leave every foreign key in place during the copy, so the server
            checks each row (slower). By default the single-column keys between tables,
            whose orphans are found per batch anyway, are dropped for the copy and added
            back, validated, at the end; a killed run leaves them recorded in
            ``aragora_migrate.set_aside_keys`` and the next run adds them back.
        exclude_tables: source tables (``table``) and columns (``table.column``) to leave
            behind; they are counted in ``report.left_behind``. Any other source table or
            non-empty column the target has no place for fails the run before it copies.
        key: the key of an encrypted (SQLCipher) source; default: the environment's
            ``ARAGORA_SQLITE_KEY``. A plain source needs none. The reject file never holds
            an encrypted source's values (they stay in the target's rejects table).
        columnar: copy the tables the columnar path takes (:mod:`.columnar`) in Arrow
            batches; False: every table by the row path. Both give the same rows, rules,
            rejects and progress.
        pooler: what sits between this process and the target (``none``, ``session`` or
            ``transaction``, as ``ARAGORA_POSTGRES_POOLER``): behind a transaction pooler
            no statement is prepared under a name.
        direct_dsn: the server past the pooler (``ARAGORA_POSTGRES_DIRECT_DSN``), where
            the run's lock is taken; without it the lock holds one server connection of
            the pool for the run (see :mod:`.target`).
    """
    if batch_size < 1:
        raise errors.ConfigError(f"batch size must be at least 1, got {batch_size}")
    path = Path(sqlite_path)
    reject_path = Path(reject_file) if reject_file else path.with_name(path.name + ".rejects.jsonl")
    opener = for_file(path, key)  # an encrypted source opens with ``key`` (default: env)
    options = Options(
        batch_size,
        skip_existing,
        dry_run,
        schema,
        reject_path,
        progress,
        batch_bytes,
        opener,
        _columnar_path() if columnar else None,
    )
    target = Target(
        postgres_dsn if isinstance(postgres_dsn, Secret) else Secret(postgres_dsn),
        pooler,
        direct_dsn if direct_dsn is None or isinstance(direct_dsn, Secret) else Secret(direct_dsn),
    )
    report = DataMigrationReport(str(path), dry_run=dry_run, reject_file=str(reject_path))
    started = time.perf_counter()
    source = await asyncio.to_thread(_open_source, path, opener)
    try:
        guard = await target.lock(str(path.resolve()))
    except BaseException:
        source.close()
        raise
    try:
        conn = await target.connect()
    except BaseException:
        await guard.close()
        source.close()
        raise
    copier = _Copier(path, conn, options)
    copier.target = target
    copiers = [copier]
    verifier: _Verifier | None = None
    try:
        await text_codecs(conn)
        if not dry_run:
            await conn.execute(STATE_DDL)
            # Keys a killed run set aside come back first: the plan reads the catalog.
            await restore_foreign_keys(conn, schema)
        the_plan = await plan(source, conn, schema=schema, tables=tables, exclude=exclude_tables)
        report.unmatched_tables = the_plan.unmatched
        report.dropped_columns = the_plan.dropped
        report.left_behind = the_plan.left_behind
        if not dry_run:
            if restart:
                await _forget_earlier_runs(conn, copier.source_id)
        elif reject_path.exists():
            reject_path.unlink()
        if verify and not dry_run:
            verifier = await _Verifier.start(path, copier.source_id, schema, target, opener)
            copier.hashing = True
        if len(the_plan.tables) > 1 and PARALLEL_TABLES > 1:
            # Before any key is set aside: a pool that cannot give it a server
            # connection refuses the run with the database as it was.
            second = _Copier(path, await target.connect(), options)
            second.hashing, second.target = copier.hashing, target
            copiers.append(second)
            await text_codecs(second.conn)
        if not dry_run and not keep_foreign_keys:
            await set_aside_foreign_keys(conn, schema, the_plan.tables)
        await _copy_tables(copiers, the_plan, verifier, report, schema)
        if not dry_run:
            report.foreign_keys += await restore_foreign_keys(conn, schema)
            report.reject_file = str(reject_path) if await copier.write_reject_file() else None
        if verifier is not None:
            await verifier.finish()
    except asyncpg.PostgresError as exc:
        raise errors.from_sqlstate(exc.sqlstate, f"migrate-data: {exc}") from exc
    finally:
        if verifier is not None:
            await verifier.close()
        for each in copiers:
            each.pool.shutdown(wait=True)
            if each is not copier:
                await each.conn.close()
        source.close()
        await conn.close()
        await guard.close()  # its transaction ends: the next run of this source may start
    report.seconds = time.perf_counter() - started
    return report


def _columnar_path() -> ColumnarCopy | None:
    """The columnar path, when its packages (the ``columnar`` extra) are installed."""
    if not columnar_available:
        return None
    from aragora_repos.tools.migrate_data.columnar_copy import copy_table

    return copy_table


#: Tables copied at once, each on a connection and a reader of its own: a table starts
#: once the tables it references are done.
PARALLEL_TABLES = 2


async def _copy_tables(
    copiers: list[_Copier],
    the_plan: Plan,
    verifier: _Verifier | None,
    report: DataMigrationReport,
    schema: str,
) -> None:
    """Copy the tables, parents before children, up to one per copier at a time, handing
    each finished table to the verifier; on a failure the copies still running stop, and
    the keys set aside go back before the error propagates."""
    free: asyncio.Queue[_Copier] = asyncio.Queue()
    for copier in copiers:
        free.put_nowait(copier)
    finished = {table.name: asyncio.Event() for table in the_plan.tables}

    async def copy(table: TablePlan) -> None:
        for parent in table.parents - table.later_parents:
            if parent in finished:
                await finished[parent].wait()
        copier = await free.get()
        try:
            report.tables[table.name] = await copier.table(table)
            finished[table.name].set()  # its children may start
            if not copier.options.dry_run and not table.later_parents:
                # Its parents are done too: its keys are validated now, beside the
                # copies still running, rather than all at the end.
                report.foreign_keys += await restore_foreign_keys(copier.conn, schema, table.name)
            if verifier is not None and table.name not in copier.checked:
                verifier.submit(
                    table,
                    report.tables[table.name],
                    copier.starts[table.name],
                    copier.sums[table.name],
                )
        finally:
            free.put_nowait(copier)

    try:
        if len(copiers) == 1:
            for table in the_plan.tables:
                await copy(table)
        else:
            try:
                async with asyncio.TaskGroup() as group:
                    for table in the_plan.tables:
                        group.create_task(copy(table))
            except BaseExceptionGroup as failed:  # the first failure, as a sequential run
                raise failed.exceptions[0] from None
        # The report lists the tables in the plan's order, whichever finished first.
        done = report.tables
        report.tables = {t.name: done[t.name] for t in the_plan.tables if t.name in done}
    except Exception:
        conn = copiers[0].conn
        if not copiers[0].options.dry_run and not conn.is_closed():
            try:
                await restore_foreign_keys(conn, schema)
            except Exception as exc:  # the copy's own error is the one to raise
                log.warning("foreign keys not added back yet: %s", exc)
        raise


async def _forget_earlier_runs(conn: Connection, source_id: str) -> None:
    for table in ("progress", "rejects"):
        await conn.execute(f"DELETE FROM {STATE_SCHEMA}.{table} WHERE source = $1", source_id)


async def text_codecs(conn: Connection) -> None:
    """JSON goes over the wire as the validated source text, unchanged."""
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda text: b"\x01" + text.encode("utf-8"),
        decoder=lambda data: data[1:].decode("utf-8"),
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        encoder=lambda text: text.encode("utf-8"),
        decoder=lambda data: data.decode("utf-8"),
        schema="pg_catalog",
        format="binary",
    )
