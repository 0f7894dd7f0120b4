"""``aragora-repos``: migrations, schema checks and health from the command line.

Both forms work::

    aragora-repos migrate --status | --dry-run | --migrate | --rollback | --rollback-to N
                          | --create "Add user lockout fields" | --repair  [--no-backup]
    aragora-repos migrate status | plan | up | down [--to N] | create NAME | repair
    aragora-repos check [--database-url URL]     # drift between the database and sql/
    aragora-repos backup [--verify] [--keep-days N] | restore PATH [--no-backup]
    aragora-repos schema-diff --base REF         # Markdown review of schema changes
    aragora-repos migrate-data --sqlite-path .nomic/core.db [--verify] [--dry-run] ...
    aragora-repos consolidate --dry-run | --migrate | --verify --source DIR [--target DIR]
    aragora-repos import-sqlite FILE.db|SCHEMA.sql [--schema-dir sql/schema] [--print]

The backend comes from the environment (see ``aragora_repos.config``) unless
``--database-url`` is given. What the CLI works on is passed in as an :class:`App`: a
generated package's ``__main__`` (``python -m aragora_db``, the ``aragora-repos``
script) passes its migrations, its expected schema and, where the generator is
installed, the schema review; the runtime never imports either by name.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypeAlias

from aragora_repos.backends import AsyncBackend, open_async
from aragora_repos.config import Config, Secret
from aragora_repos.drift import ExpectedSchema
from aragora_repos.errors import ConfigError, DatabaseError
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


class UsageError(Exception):
    """Arguments that ask for conflicting or impossible things (exit status 2)."""


def _flag_action(args: argparse.Namespace) -> None:
    """Map the flag form (Aragora's documented flags) onto the subcommand form; refuse
    arguments that ask for two actions, or that the action cannot take."""
    asked = [f"`{args.action}`"] if args.action is not None else []
    flags = {
        "--status": args.status_flag,
        "--migrate": args.migrate_flag,
        "--rollback": args.rollback,
        "--rollback-to": args.rollback_to is not None,
        "--create": args.create_flag is not None,
        "--repair": args.repair_flag,
    }
    asked += [flag for flag, given in flags.items() if given]
    if len(asked) > 1:
        raise UsageError(
            f"migrate: {' and '.join(asked)} ask for different actions; give one of them"
        )
    if args.to is not None and args.rollback_to is not None:
        raise UsageError("migrate: --to and --rollback-to both set a target; give one")
    if args.action is None:
        _action_from_flags(args)
    action = args.action
    if args.name is not None and action != "create":
        raise UsageError(f"migrate {action}: unexpected argument {args.name!r}")
    if args.dry_run and action not in ("up", "down", "plan"):
        raise UsageError(f"migrate {action}: --dry-run goes with up, down or plan")
    if args.offline and not (action == "plan" or args.dry_run):
        raise UsageError(f"migrate {action}: --offline goes with plan or --dry-run")
    if (args.from_version or args.dialect) and not args.offline:
        raise UsageError("migrate: --from and --dialect go with --offline")
    if args.to is not None and action not in ("up", "down", "plan"):
        raise UsageError(f"migrate {action}: --to goes with up, down or plan")


def _action_from_flags(args: argparse.Namespace) -> None:
    if args.create_flag is not None:
        args.action, args.name = "create", args.create_flag
    elif args.rollback_to is not None:
        args.action, args.to = "down", args.rollback_to
    elif args.rollback:
        args.action = "down"
    elif args.repair_flag:
        args.action = "repair"
    elif args.migrate_flag or args.dry_run:
        args.action = "up"
    else:
        args.action = "status"


#: argv tokens that may hold a DSN, hidden from argparse's own error messages.
_argv_secrets: list[str] = []
_DSN_FLAGS = ("--database-url", "--postgres-dsn")


def _secret_tokens(argv: Sequence[str]) -> list[str]:
    out = []
    for i, token in enumerate(argv):
        after_flag = i > 0 and argv[i - 1] in _DSN_FLAGS
        if (
            after_flag
            or "://" in token
            or "password" in token.lower()
            or token.startswith(tuple(f"{f}=" for f in _DSN_FLAGS))
        ):
            out.append(token)
    return sorted(out, key=len, reverse=True)


class _Parser(argparse.ArgumentParser):
    """argparse echoes offending arguments ("unrecognized arguments: --database-url
    postgresql://u:pw@h/d"); this parser hides every token that may hold a DSN."""

    def error(self, message: str) -> NoReturn:
        for token in _argv_secrets:
            for form in (repr(token), repr(token)[1:-1], token):
                message = message.replace(form, "<dsn hidden>")
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _dsn_from(
    flag: str, value: str | None, env_name: str | None, file: str | None
) -> Secret | None:
    """A DSN given on the command line, by environment variable name, or in a file.

    The last two keep it out of the process's argv, which other users can read (ps).
    """
    given = [x for x in (value, env_name, file) if x]
    if len(given) > 1:
        raise ConfigError(f"give one of {flag}, {flag}-env and {flag}-file")
    if env_name:
        text = os.environ.get(env_name, "").strip()
        if not text:
            raise ConfigError(f"{flag}-env {env_name}: the variable is not set")
        return Secret(text)
    if file:
        try:
            text = Path(file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{flag}-file {file}: cannot read it ({exc})") from None
        return Secret(text)
    if value:
        dsn = Secret(value)
        if dsn.parsed.secrets():
            print(
                f"warning: the password in {flag} is visible to other users of this machine "
                f"(ps); use {flag}-env VARIABLE or {flag}-file PATH",
                file=sys.stderr,
            )
        return dsn
    return None


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="aragora-repos", description=__doc__.split("\n")[0])
    _dsn_options(root, None)
    sub = root.add_subparsers(dest="command", required=True)
    _schema_commands(sub)
    _operations_commands(sub)
    _data_commands(sub)
    return root


Commands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def _dsn_options(parser: argparse.ArgumentParser, default: object) -> None:
    """The DSN options, accepted before the command and after it (``aragora-repos check
    --database-url URL``, as the README writes it); after it, they win."""
    parser.add_argument(
        "--database-url", default=default, help="PostgreSQL DSN (default: the environment)"
    )
    parser.add_argument(
        "--database-url-env",
        default=default,
        metavar="VARIABLE",
        help="read the DSN from this variable",
    )
    parser.add_argument(
        "--database-url-file", default=default, metavar="PATH", help="read the DSN from this file"
    )


_AFTER_COMMAND = _Parser(add_help=False)
_dsn_options(_AFTER_COMMAND, argparse.SUPPRESS)


def _command(sub: Commands, name: str, *, help: str) -> _Parser:
    return sub.add_parser(name, help=help, parents=[_AFTER_COMMAND])


def _schema_commands(sub: Commands) -> None:
    m = _command(sub, "migrate", help="show, plan, apply or roll back migrations")
    m.add_argument(
        "action",
        nargs="?",
        choices=["status", "plan", "up", "down", "create", "repair", "stamp"],
    )
    m.add_argument("name", nargs="?", help="description for `create`")
    m.add_argument("--status", dest="status_flag", action="store_true")
    m.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    m.add_argument("--migrate", dest="migrate_flag", action="store_true")
    m.add_argument("--rollback", action="store_true", help="undo the latest migration")
    m.add_argument("--rollback-to", type=int, metavar="N", help="undo down to version N")
    m.add_argument("--create", dest="create_flag", metavar="MESSAGE")
    m.add_argument("--repair", dest="repair_flag", action="store_true")
    m.add_argument("--to", type=int, metavar="N", help="target version")
    m.add_argument(
        "--db",
        metavar="NAME",
        help="accepted as Aragora's runner spells it; one migration stream covers every store",
    )
    m.add_argument(
        "--offline",
        action="store_true",
        help="plan or dry-run: print the SQL without a database (see --from, --dialect)",
    )
    m.add_argument(
        "--from",
        dest="from_version",
        type=int,
        default=0,
        metavar="N",
        help="offline: the version the database is at (default 0: empty)",
    )
    m.add_argument(
        "--dialect",
        choices=["postgres", "sqlite"],
        help="offline: whose SQL (default: the configured backend's)",
    )
    m.add_argument("--no-backup", action="store_true")
    m.add_argument(
        "--schema-dir", help="where `create` writes (default: sql/schema of the project)"
    )

    _command(sub, "check", help="compare the live database with the expected schema")
    g = _command(sub, "generate", help="generate the packages sqlc.yaml describes")
    g.add_argument("--root", default=".", help="project directory (default: here)")
    g.add_argument(
        "--check", action="store_true", help="fail if the output differs instead of writing"
    )
    d = _command(sub, "schema-diff", help="Markdown report of schema changes since REF")
    d.add_argument("--base", required=True, help="git ref to compare with")
    d.add_argument("--root", default=".", help="project directory")
    d.add_argument("--output", help="write the report here instead of stdout")


def _operations_commands(sub: Commands) -> None:
    b = _command(
        sub, "backup", help="verified backup of every database into <data dir>/backup/, then prune"
    )
    b.add_argument(
        "--verify",
        action="store_true",
        help="read the new set back as restore would (checksums, integrity) before pruning",
    )
    b.add_argument(
        "--keep-days",
        type=float,
        metavar="N",
        help="prune sets older than N days (default ARAGORA_BACKUP_RETENTION_DAYS, 7)",
    )
    r = _command(sub, "restore", help="put a verified backup set back (after backing up)")
    r.add_argument("path", help="a backup folder, e.g. .nomic/backup/20260101_120000")
    r.add_argument(
        "--no-backup", action="store_true", help="do not back up what the restore replaces"
    )
    _command(sub, "health", help="probe the database and print its health as JSON")


def _data_commands(sub: Commands) -> None:
    c = _command(
        sub, "migrate-data", help="copy a SQLite database into PostgreSQL (resumable, verified)"
    )
    c.add_argument("--sqlite-path", required=True, help="the SQLite file, e.g. .nomic/core.db")
    c.add_argument("--postgres-dsn", help="target DSN (default: --database-url, the environment)")
    c.add_argument("--postgres-dsn-env", metavar="VARIABLE", help="read the DSN from this variable")
    c.add_argument("--postgres-dsn-file", metavar="PATH", help="read the DSN from this file")
    c.add_argument("--tables", help="comma-separated tables (default: all both sides have)")
    c.add_argument(
        "--exclude-tables",
        help="comma-separated TABLE or TABLE.COLUMN to leave behind (counted in the report); "
        "any other data the target has no place for fails the run",
    )
    c.add_argument("--batch-size", type=int, default=1000, help="rows per batch (1000)")
    c.add_argument(
        "--batch-mib",
        type=float,
        default=16.0,
        help="a batch also ends at this many MiB of text and blobs (16)",
    )
    c.add_argument(
        "--skip-existing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip rows whose key the target already has (default); with "
        "--no-skip-existing they are rejected",
    )
    c.add_argument("--dry-run", action="store_true", help="convert and report, write nothing")
    c.add_argument("--verify", action="store_true", help="compare counts and checksums after")
    c.add_argument("--restart", action="store_true", help="forget earlier progress")
    c.add_argument(
        "--keep-foreign-keys",
        action="store_true",
        help="keep foreign keys in place during the copy (slower); by default those "
        "checked per batch are dropped for the copy and added back, validated, after",
    )
    c.add_argument("--reject-file", help="default: <sqlite-path>.rejects.jsonl")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("-v", "--verbose", action="store_true", help="log each batch")

    k = _command(
        sub, "consolidate", help="merge legacy SQLite files into core/memory/analytics/agents.db"
    )
    what = k.add_mutually_exclusive_group(required=True)
    what.add_argument("--dry-run", action="store_const", const="dry-run", dest="action")
    what.add_argument("--migrate", action="store_const", const="migrate", dest="action")
    what.add_argument("--verify", action="store_const", const="verify", dest="action")
    k.add_argument("--source", required=True, help="the directory of the legacy files")
    k.add_argument("--target", help="where the consolidated files go (default: --source)")
    k.add_argument("--no-backup", action="store_true", help="no copy under <source>/backup/")
    k.add_argument("--json", action="store_true", help="print the report as JSON")

    i = _command(
        sub, "import-sqlite", help="write an existing SQLite schema as a PostgreSQL migration"
    )
    i.add_argument("source", help="a SQLite database file, or a .sql schema script")
    i.add_argument("--schema-dir", default="sql/schema", help="where the migration goes")
    i.add_argument("--tables", help="comma-separated tables (default: all)")
    i.add_argument("--print", action="store_true", help="print the migration, write nothing")


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

    dsn = (
        _dsn_from(
            "--postgres-dsn", args.postgres_dsn, args.postgres_dsn_env, args.postgres_dsn_file
        )
        or config.dsn
    )
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
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.render())
    if report.verified is False:
        return 1
    return 3 if report.total_errors else 0


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
                None if args.print else Path(args.schema_dir),
                tables=args.tables.split(",") if args.tables else None,
            )
            if args.print:
                print(imported.sql, end="")
            else:
                print(f"wrote {imported.path}: {len(imported.tables)} tables")
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
            return asyncio.run(run_migrate_data(args, config))
        if args.command == "check":
            return asyncio.run(run_check(config, app))
        if args.command in ("backup", "restore"):
            return asyncio.run(run_backup(args, config))
        if args.command == "health":
            return asyncio.run(run_health(config))
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


if __name__ == "__main__":
    sys.exit(main())
