"""The entry point: parse, read the configuration, dispatch, and turn errors into exit
codes with messages that never carry a DSN's secrets."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from aragora_repos.backends import open_async
from aragora_repos.cli.args import (
    UsageError,
    _argv_secrets,
    _dsn_from,
    _flag_action,
    _secret_tokens,
    parser,
)
from aragora_repos.cli.migrate import App, _needs, run_check, run_migrate
from aragora_repos.config import Config
from aragora_repos.errors import ConfigError, DatabaseError
from aragora_repos.migrations import Migration


@contextlib.asynccontextmanager
async def _app_database(
    config: Config, app: App, command: str, *, inspect: bool = False
) -> AsyncIterator[object]:
    """The generated package's ``Database`` over the configured backend, closed after;
    ``inspect``: a SQLite file is only read (nothing created)."""
    if app.database is None:
        raise _needs("Database", command)
    backend = await open_async(config, inspect=inspect and config.backend == "sqlite")
    try:
        yield app.database(backend)
    finally:
        await backend.close()


def _when(text: str, flag: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{flag}: expected an ISO time such as 2026-01-31T12:00:00Z") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def run_audit_command(args: argparse.Namespace, config: Config, app: App) -> int:
    """``export-audit`` and ``verify-audit`` (see :mod:`aragora_repos.tools.audit_export`):
    exit 1 when the export does not verify or differs from the database."""
    from aragora_repos.tools.audit_export import (
        Audited,
        AuditError,
        export_audit,
        verify_against,
        verify_file,
    )

    if args.command == "verify-audit":
        try:
            report = verify_file(Path(args.path))
        except AuditError as exc:
            print(f"verify-audit: {exc}", file=sys.stderr)
            return 1
        differences: list[str] = []
        if args.against_database:
            async with _app_database(config, app, "verify-audit", inspect=True) as db:
                differences = await verify_against(cast(Audited, db), report)
        print(report.render())
        return 1 if differences else 0
    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    async with _app_database(config, app, "export-audit", inspect=True) as db:
        done = await export_audit(
            cast(Audited, db), Path(args.output), since=since, until=until, format=args.format
        )
    print(done.render())
    return 0


async def run_maintenance_command(args: argparse.Namespace, config: Config, app: App) -> int:
    """``maintenance`` (see :mod:`aragora_repos.tools.maintenance`)."""
    from aragora_repos.tools.maintenance import Maintained, run_maintenance

    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    async with _app_database(config, app, "maintenance") as db:
        report = await run_maintenance(
            cast(Maintained, db),
            audit_days=config.audit_retention_days if args.audit_days is None else args.audit_days,
            usage_days=config.usage_retention_days if args.usage_days is None else args.usage_days,
            batch=args.batch,
        )
    print(report.render())
    return 0


async def run_rotate_keys(args: argparse.Namespace, config: Config, app: App) -> int:
    """``rotate-keys`` (see :mod:`aragora_repos.tools.rotate_keys`)."""
    from aragora_repos.tools.rotate_keys import rotate_keys

    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    if app.migrations is None:
        raise _needs("MIGRATIONS", "rotate-keys")
    backend = await open_async(config)
    try:
        report = await rotate_keys(
            backend,
            app.migrations,
            batch=args.batch,
            on_batch=lambda name, n: print(f"{name}: {n} value(s) sealed again", flush=True),
        )
    finally:
        await backend.close()
    print(report.render())
    return 0


async def run_sync(args: argparse.Namespace, config: Config, app: App) -> int:
    """``sync`` (see :mod:`aragora_repos.tools.sync`)."""
    import signal

    from aragora_repos.tools.sync import SyncWorker

    if config.sync is None or config.backend != "sqlite":
        raise UsageError(
            "sync delivers the local SQLite database's changes: set SUPABASE_SYNC_ENABLED=true "
            "and SUPABASE_POSTGRES_DSN to the target"
        )
    settings = config.sync
    if args.batch is not None:
        if args.batch < 1:
            raise UsageError(f"--batch must be at least 1, got {args.batch}")
        settings = dataclasses.replace(settings, batch_size=args.batch)
    worker = SyncWorker(config, settings, app.migrations or ())
    try:
        if args.status:
            s = await worker.status()
            print(
                f"queued: {s.queue_size}\nsynced: {s.synced_count}\nfailed tries: "
                f"{s.failed_count}\nparked: {s.parked_count}\nlast success: "
                f"{s.last_success.isoformat() if s.last_success else 'never'}\n"
                f"lag: {s.lag_seconds:.3f} s"
            )
            return 0
        if args.dead_letter:
            parked = await worker.dead_letters()
            for p in parked:
                reason = " / ".join(p.reason.splitlines())
                print(f"{p.id}\t{p.table}\t{p.key}\t{p.op}\ttries {p.attempts}\t{reason}")
            if not parked:
                print("no parked changes")
            return 0
        if args.new_source:
            print(f"source id: {await worker.new_source()}")
            return 0
        if args.redrive is not None:
            moved = await worker.redrive(args.redrive or None)
            print(f"{moved} change(s) back in the queue")
            return 0
        worker.on_batch = lambda n: print(f"delivered {n} change(s)", flush=True)
        if args.once:
            done = await worker.drain()
            status = await worker.status()
            print(f"delivered {done} change(s); {status.parked_count} parked")
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await worker.follow(stop)
        return 0
    finally:
        await worker.close()


async def run_serve_health(args: argparse.Namespace, config: Config, app: App) -> int:
    """Serve /api/health, /api/health/db and /metrics until interrupted."""
    from aragora_repos.health_http import HealthApp, serve

    db = await open_async(config, inspect=config.backend == "sqlite")
    expected = app.migrations[-1].version if app.migrations else None

    def ready(port: int) -> None:
        print(f"serving health on http://{args.host}:{port}/api/health", flush=True)

    try:
        await serve(HealthApp(db, expected_version=expected), args.host, args.port, ready=ready)
    finally:
        await db.close()
    return 0


def run_cipher(args: argparse.Namespace, config: Config) -> int:
    """``encrypt``, ``decrypt`` and ``rekey`` (see :mod:`aragora_repos.tools.cipher`)."""
    from aragora_repos.config import key_from_file, sqlite_key_from_env
    from aragora_repos.tools.cipher import change_key

    if config.backend != "sqlite":
        raise ConfigError(f"{args.command}: only SQLite files are encrypted this way")
    new_key = None
    if args.command == "rekey":
        new_key = (
            key_from_file(args.new_key_file, "--new-key-file")
            if args.new_key_file
            else sqlite_key_from_env(os.environ, required=True, variable="ARAGORA_SQLITE_NEW_KEY")
        )
    report = change_key(config, args.command, new_key=new_key, take_backup=not args.no_backup)
    print(report.render())
    return 0


async def run_backup(args: argparse.Namespace, config: Config) -> int:
    """``backup`` and ``restore`` (see :mod:`aragora_repos.tools.backup_sets`)."""
    from aragora_repos.tools.backup_sets import restore, take_backup

    if args.command == "restore":
        path = Path(args.path)
        if path.is_file():
            path = path.parent
        done = await restore(config, path, take_safety_backup=not args.no_backup)
        print(done.render())
        return 0
    if args.keep_days is not None and not args.keep_days >= 0:  # NaN too
        raise ConfigError(f"--keep-days: expected a number >= 0, got {args.keep_days}")
    report = await take_backup(config, keep_days=args.keep_days, verify=args.verify)
    print(report.render() + ("\nverified: checksums and integrity" if args.verify else ""))
    return 0


async def run_health(config: Config) -> int:
    """Print ``get_database_health()`` as JSON; exit 1 when the database is unreachable."""
    db = await open_async(config, inspect=True)
    try:
        health = await db.get_database_health()
    finally:
        await db.close()
    print(json.dumps(dataclasses.asdict(health), indent=2, default=str))
    return 0 if health.reachable else 1


async def run_migrate_data(args: argparse.Namespace, config: Config) -> int:
    """Exit 0 when every row was copied or skipped, 1 when the verification found a
    difference (the report names the table), 3 when rows went to the reject file."""
    from aragora_repos.tools.migrate_data import Progress, migrate_data

    given = _dsn_from(
        "--postgres-dsn", args.postgres_dsn, args.postgres_dsn_env, args.postgres_dsn_file
    )
    dsn = given or config.dsn
    if dsn is None:
        print("migrate-data needs --postgres-dsn or DATABASE_URL", file=sys.stderr)
        return 2
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = await migrate_data(
        args.sqlite_path,
        dsn,
        tables=[t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None,
        batch_size=args.batch_size,
        skip_existing=args.skip_existing,
        dry_run=args.dry_run,
        verify=args.verify,
        restart=args.restart,
        reject_file=args.reject_file,
        progress=None if args.json else Progress(),
        keep_foreign_keys=args.keep_foreign_keys,
        exclude_tables=[t.strip() for t in (args.exclude_tables or "").split(",") if t.strip()],
        batch_bytes=max(1, int(args.batch_mib * 1024 * 1024)),
        columnar=args.columnar,
        pooler=args.pooler or config.pooler,
        # The direct DSN is DATABASE_URL's server; another database has no lock there.
        direct_dsn=config.direct_dsn if given is None else None,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.render())
    if report.verified is False:
        return 1
    return 3 if report.total_errors else 0


def run_migrate_data_sqlite(args: argparse.Namespace, config: Config, app: App) -> int:
    """migrate-data into the project's SQLite database; exit codes as into PostgreSQL."""
    from aragora_repos.tools.migrate_data.sqlite_target import copy_into_sqlite

    if app.expected is None or app.migrations is None:
        raise _needs("schema", "migrate-data --target sqlite")
    if not args.dry_run:
        asyncio.run(_migrate_sqlite(config, app.migrations))
    report = copy_into_sqlite(
        args.sqlite_path,
        config.sqlite_file,
        app.expected,
        tables=[t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None,
        batch_size=args.batch_size,
        batch_bytes=max(1, int(args.batch_mib * 1024 * 1024)),
        skip_existing=args.skip_existing,
        dry_run=args.dry_run,
        verify=args.verify,
        restart=args.restart,
        reject_file=args.reject_file,
        exclude_tables=[t.strip() for t in (args.exclude_tables or "").split(",") if t.strip()],
    )
    print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else report.render())
    if report.verified is False:
        return 1
    return 3 if report.total_errors else 0


async def _migrate_sqlite(config: Config, migrations: Sequence[Migration]) -> None:
    db = await open_async(dataclasses.replace(config, backend="sqlite", dsn=None, replicas=()))
    try:
        await db.migrate(migrations)
    finally:
        await db.close()


async def run_adopt(args: argparse.Namespace, config: Config, app: App) -> int:
    """``adopt``: exit 0 when every source row is in the target, 3 when some were rejected
    (each in the reject file with its reason), 1 when rows or values were left behind or
    the verification found a difference."""
    from aragora_repos.tools.adopt import adopt

    if app.expected is None or app.migrations is None:
        raise _needs("schema", "adopt")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size: expected at least 1, got {args.batch_size}")
    report = await adopt(
        Path(args.source),
        config,
        tuple(app.migrations),
        app.expected,
        target=args.target,
        dry_run=args.dry_run,
        verify=args.verify,
        batch_size=args.batch_size,
    )
    print(report.to_json() if args.json else report.render())
    return report.exit_code()


def _generator_command(args: argparse.Namespace, app: App) -> int:
    """``generate`` and ``schema-diff``: the generator's, when the package handed it in."""
    command = app.generator if args.command == "generate" else app.review
    if command is None:
        print(
            f"{args.command} needs the generator: pip install 'aragora-repos[codegen]'",
            file=sys.stderr,
        )
        return 2
    if args.command == "generate":
        return command(["check" if args.check else "generate", "--root", args.root])
    output = ["--output", args.output] if args.output else []
    return command(["--base", args.base, "--root", args.root, *output])


def main(argv: Sequence[str] | None = None, *, app: App | None = None) -> int:
    """Run one command; return its exit code. ``app``: what it works on (see :class:`App`)."""
    app = app or App()
    argv = list(sys.argv[1:] if argv is None else argv)
    _argv_secrets[:] = _secret_tokens(argv)
    args = parser().parse_args(argv)
    try:
        config = Config.from_env()
        url = _dsn_from(
            "--database-url", args.database_url, args.database_url_env, args.database_url_file
        )
        if url is not None:
            config = dataclasses.replace(config, backend="postgres", dsn=url, replicas=())
        if args.command in ("generate", "schema-diff"):
            return _generator_command(args, app)
        if args.command == "import-sqlite":
            from aragora_repos.tools.import_sqlite import import_sqlite

            imported = import_sqlite(
                Path(args.source),
                Path(args.schema_dir),
                tables=args.tables.split(",") if args.tables else None,
                write=not args.print,
            )
            if args.print:
                print(imported.sql, end="")
            elif imported.path is None:
                print("nothing to import: the project already has every table and column")
            else:
                mapped = f", {len(imported.mapped)} mapped onto" if imported.mapped else ""
                print(f"wrote {imported.path}: {len(imported.tables)} tables{mapped}")
            for guess in imported.guesses:
                print(f"review: {guess}", file=sys.stderr)
            return 0
        if args.command == "consolidate":
            from aragora_repos.tools.layout import consolidate

            result = consolidate(
                Path(args.source),
                Path(args.target) if args.target else None,
                action=args.action,
                take_backup=not args.no_backup,
            )
            print(result.to_json() if args.json else result.render())
            return 0 if result.ok else 1
        if args.command == "migrate-data":
            if args.target == "sqlite":
                return run_migrate_data_sqlite(args, config, app)
            return asyncio.run(run_migrate_data(args, config))
        if args.command == "adopt":
            return asyncio.run(run_adopt(args, config, app))
        if args.command == "check":
            return asyncio.run(run_check(config, app))
        if args.command in ("backup", "restore"):
            return asyncio.run(run_backup(args, config))
        if args.command == "health":
            return asyncio.run(run_health(config))
        if args.command in ("encrypt", "decrypt", "rekey"):
            return run_cipher(args, config)
        if args.command in ("export-audit", "verify-audit"):
            return asyncio.run(run_audit_command(args, config, app))
        if args.command == "maintenance":
            return asyncio.run(run_maintenance_command(args, config, app))
        if args.command == "rotate-keys":
            return asyncio.run(run_rotate_keys(args, config, app))
        if args.command == "sync":
            return asyncio.run(run_sync(args, config, app))
        if args.command == "serve-health":
            return asyncio.run(run_serve_health(args, config, app))
        _flag_action(args)
        if args.db is not None:
            print(
                f"note: --db {args.db}: this project keeps one migration stream for every "
                "store, so the command applies to all of it",
                file=sys.stderr,
            )
        if args.action == "create" and not args.name:
            print("migrate create needs a description", file=sys.stderr)
            return 2
        return asyncio.run(run_migrate(args, config, app))
    except UsageError as exc:
        print(f"aragora-repos: error: {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
