"""``migrate`` and ``check``: status, plans (live or offline), applying, rolling back,
``stamp``, ``create``, and the schema drift check, over the App's migrations."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aragora_repos.backends import AsyncBackend, Backend, open_async
from aragora_repos.cli.args import UsageError
from aragora_repos.config import Config
from aragora_repos.drift import ExpectedSchema
from aragora_repos.errors import ConfigError
from aragora_repos.migrations import (
    Dialect,
    Migration,
    Status,
    assumed_applied,
    create_migration,
    plan_down,
    plan_up,
    render_plan,
)


@dataclass(frozen=True)
class App:
    """What the CLI works on.

    Attributes:
        migrations: the generated package's ``MIGRATIONS`` (``migrate``).
        expected: its ``EXPECTED`` schema (``check``).
        review: the generator's schema review, ``main(argv) -> exit code``
            (``schema-diff``); None in a runtime-only install.
        generator: the generator (``generate``), likewise.
    """

    migrations: Sequence[Migration] | None = None
    expected: ExpectedSchema | None = None
    review: Callable[[list[str]], int] | None = None
    generator: Callable[[list[str]], int] | None = None
    """The generator's command line, ``main(["generate" | "check", "--root", DIR])``."""
    database: Callable[[Backend], object] | None = None
    """The package's ``Database`` facade class, built over an open backend (``maintenance``)."""


def _needs(what: str, command: str) -> ConfigError:
    return ConfigError(
        f"cannot run {command}: it needs the generated package's {what}; run it as "
        "`python -m aragora_db` (or the `aragora-repos` script), which passes them in"
    )


DEFAULT_SCHEMA_DIR = "sql/schema"


def schema_dir(given: str | None, start: Path | None = None) -> Path:
    """Where migrations are written: ``given`` as it is, else ``sql/schema`` of the
    project, found as the nearest directory at or above ``start`` (the working
    directory) holding ``sqlc.yaml``.

    Raises:
        UsageError: no project there, or its ``sql/schema`` does not exist.
    """
    if given is not None:
        return Path(given)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "sqlc.yaml").is_file():
            found = folder / DEFAULT_SCHEMA_DIR
            if not found.is_dir():
                raise UsageError(f"cannot find {found}: pass --schema-dir")
            return found
    raise UsageError(
        f"cannot find the project: no sqlc.yaml in {here} or above; run from the project "
        "or pass --schema-dir"
    )


def backup_root(config: Config) -> Path:
    """Where pre-migration backups go: ``<data dir>/backup/YYYYMMDD_HHMMSS/``."""
    return config.data_dir / "backup"


def _report_backup(where: Path | None) -> None:
    if where is None:
        print(
            "warning: pg_dump not found, no backup taken (install postgresql-client)",
            file=sys.stderr,
        )
    else:
        print(f"backup: {where}")


async def status(db: AsyncBackend | None, migrations: Sequence[Migration]) -> Status:
    """Where the database stands; ``db`` None: a SQLite file that does not exist yet."""
    applied = await db.applied() if db is not None else {}
    done = set(applied)
    return Status(
        current=max((v for v, a in applied.items() if a.success), default=None),
        target=max((m.version for m in migrations), default=None),
        applied=tuple(applied[v] for v in sorted(applied)),
        pending=tuple(m for m in migrations if m.version not in done),
    )


async def _down_target(db: AsyncBackend, to: int | None) -> int:
    if to is not None:
        return to
    versions = sorted(await db.applied())
    return versions[-2] if len(versions) > 1 else 0


async def run_migrate(args: argparse.Namespace, config: Config, app: App) -> int:
    action = args.action
    if action == "create":
        path = create_migration(schema_dir(args.schema_dir), args.name)
        print(f"created {path}; fill in both sections, then run `make generate`")
        return 0
    if app.migrations is None:
        raise _needs("migrations", "migrate")
    migrations = app.migrations
    if args.offline:
        print(_offline_plan(args, config, migrations), end="")
        return 0
    if action == "stamp":
        return await _stamp(args, config, app, migrations)
    down = action == "down"
    looking = action in ("status", "plan") or args.dry_run
    if looking and config.backend == "sqlite" and not config.sqlite_file.exists():
        # Nothing to open and nothing to create: a command that only looks changes nothing.
        if action == "status":
            print((await status(None, migrations)).render())
        elif down:
            print("-- sqlite: nothing to do\n", end="")
        else:
            print(render_plan(plan_up(migrations, {}, "sqlite", args.to), "sqlite"), end="")
        return 0
    db = await open_async(config, inspect=looking)
    try:
        if action == "status":
            print((await status(db, migrations)).render())
            return 0
        if action == "repair":
            repaired = await db.repair()
            print(f"forgot interrupted migrations: {repaired or 'none'}")
            return 0
        target = await _down_target(db, args.to) if down else args.to
        steps = await db.plan(migrations, target=target, down=down)
        dialect = "postgresql" if config.backend == "postgres" else "sqlite"
        if args.dry_run or action == "plan":
            print(render_plan(steps, dialect), end="")
            return 0
        if not steps:
            print("nothing to do: the database is at the requested version")
            return 0
        # The backup is taken by whichever process holds the migration lock and still
        # has steps to run, after reading them under the lock (issue 14).
        backup_to = None if args.no_backup else backup_root(config)
        if down:
            done = await db.migrate_down(
                migrations, target=target, backup_to=backup_to, on_backup=_report_backup
            )
            print(f"rolled back: {', '.join(f'{v:04d}' for v in done) or 'none'}")
        else:
            done = await db.migrate(
                migrations, target=target, backup_to=backup_to, on_backup=_report_backup
            )
            print(f"applied: {', '.join(f'{v:04d}' for v in done) or 'none'}")
        return 0
    finally:
        await db.close()


def _offline_plan(args: argparse.Namespace, config: Config, migrations: Sequence[Migration]) -> str:
    """The SQL of a plan without a database: from version ``--from`` (default: empty)."""
    dialect: Dialect = args.dialect or ("postgres" if config.backend == "postgres" else "sqlite")
    applied = assumed_applied(migrations, args.from_version)
    if args.action == "down":
        steps = plan_down(migrations, applied, dialect, 0 if args.to is None else args.to)
    else:
        steps = plan_up(migrations, applied, dialect, args.to)
    return render_plan(steps, "postgresql" if dialect == "postgres" else "sqlite")


async def _stamp(
    args: argparse.Namespace, config: Config, app: App, migrations: Sequence[Migration]
) -> int:
    """Alembic's ``stamp``: record that an existing database is at the latest version
    without running anything, once its schema matches the expected one."""
    from aragora_repos.drift import validate_schema

    latest = max(m.version for m in migrations)
    if app.expected is None:
        raise _needs("expected schema", "migrate stamp")
    if config.backend == "sqlite" and not config.sqlite_file.exists():
        raise UsageError(f"migrate stamp: no database at {config.sqlite_file} to stamp")
    db = await open_async(config)
    try:
        result = await validate_schema(db, app.expected, versions=False)
        if not result.success:
            print(result.render(), file=sys.stderr)
            print(f"not stamped: the schema differs from version {latest:04d}", file=sys.stderr)
            return 1
        await db.stamp(migrations)
    finally:
        await db.close()
    print(f"stamped: version {latest:04d}, nothing run")
    return 0


async def run_check(config: Config, app: App) -> int:
    from aragora_repos.drift import validate_schema

    if app.expected is None:
        raise _needs("expected schema", "check")
    db = await open_async(config, inspect=True)
    try:
        result = await validate_schema(db, app.expected)
    finally:
        await db.close()
    print(result.render())
    return 0 if result.success else 1
