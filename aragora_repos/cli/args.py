"""The command line's grammar: commands, options (before or after the command), the
migrate flags and their conflicts, and DSN tokens kept out of error messages."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TypeAlias

from aragora_repos.config import POOLERS, Secret
from aragora_repos.errors import ConfigError


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
    rk = _command(
        sub,
        "rotate-keys",
        help="seal every encrypted column value under ARAGORA_ENCRYPTION_KEY (online, resumable)",
    )
    rk.add_argument("--batch", type=int, default=500, help="values per transaction (default 500)")
    sy = _command(
        sub,
        "sync",
        help="deliver the local database's captured changes to SUPABASE_POSTGRES_DSN",
    )
    mode = sy.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="deliver what is queued, then exit")
    mode.add_argument("--follow", action="store_true", help="deliver as changes commit")
    mode.add_argument("--status", action="store_true", help="queue size, counts, lag")
    mode.add_argument("--dead-letter", action="store_true", help="list parked changes")
    mode.add_argument(
        "--new-source",
        action="store_true",
        help="take a new source id (a restored or copied database)",
    )
    mode.add_argument(
        "--redrive",
        nargs="*",
        type=int,
        metavar="ID",
        help="put parked rows back in the queue (the rows holding these ids; all without)",
    )
    sy.add_argument("--batch", type=int, help="changes per transaction (SUPABASE_SYNC_BATCH_SIZE)")
    mt = _command(
        sub,
        "maintenance",
        help="data retention: old audit entries, usage events (rolled up first), expired tokens",
    )
    mt.add_argument("--audit-days", type=float, help="default ARAGORA_AUDIT_RETENTION_DAYS (90)")
    mt.add_argument("--usage-days", type=float, help="default ARAGORA_USAGE_RETENTION_DAYS (90)")
    mt.add_argument("--batch", type=int, default=1000, help="rows per transaction (default 1000)")
    ea = _command(sub, "export-audit", help="a time range of the audit log, hash-chained")
    ea.add_argument("--since", required=True, help="ISO time, inclusive (UTC when no zone)")
    ea.add_argument("--until", required=True, help="ISO time, exclusive")
    ea.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    ea.add_argument("--output", required=True, help="file to write (replaced whole)")
    va = _command(sub, "verify-audit", help="check an export's hash chain (and the database)")
    va.add_argument("path", help="a file export-audit wrote")
    va.add_argument(
        "--against-database",
        action="store_true",
        help="also compare every entry of the range with the database",
    )
    h = _command(
        sub, "serve-health", help="serve /api/health, /api/health/db and /metrics over HTTP"
    )
    h.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    h.add_argument("--port", type=int, default=8081, help="port (default 8081; 0: any free one)")
    for name, what in (
        ("encrypt", "encrypt every SQLite file with ARAGORA_SQLITE_KEY"),
        ("decrypt", "decrypt every SQLite file encrypted with ARAGORA_SQLITE_KEY"),
        ("rekey", "re-encrypt every SQLite file under ARAGORA_SQLITE_NEW_KEY"),
    ):
        e = _command(
            sub, name, help=f"{what} (backup first; each file swapped atomically, verified)"
        )
        e.add_argument("--no-backup", action="store_true", help="skip the backup taken first")
        if name == "rekey":
            e.add_argument(
                "--new-key-file",
                metavar="PATH",
                help="read the new key from this file (default: ARAGORA_SQLITE_NEW_KEY or "
                "ARAGORA_SQLITE_NEW_KEY_FILE)",
            )


def _data_commands(sub: Commands) -> None:
    c = _command(
        sub,
        "migrate-data",
        help="copy a SQLite database into PostgreSQL or the project's SQLite (resumable, verified)",
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
    c.add_argument(
        "--columnar",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read, convert and write the tables it can take in Arrow batches (default); "
        "with --no-columnar every table takes the row path",
    )
    c.add_argument(
        "--pooler",
        choices=POOLERS,
        help="what sits between this process and PostgreSQL (default: "
        "ARAGORA_POSTGRES_POOLER, else none); behind a transaction pooler the run's lock "
        "goes to ARAGORA_POSTGRES_DIRECT_DSN when set",
    )
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("-v", "--verbose", action="store_true", help="log each batch")

    c.add_argument(
        "--target",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="postgres (default), or sqlite: the project's own SQLite database "
        "(ARAGORA_DATA_DIR/aragora.db), migrated up first",
    )

    a = _command(
        sub,
        "adopt",
        help="bring an existing installation's data (legacy or consolidated .nomic/, or any "
        "SQLite file) into this project's schema",
    )
    a.add_argument("--source", required=True, help="a data directory, or one SQLite file")
    a.add_argument(
        "--target",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="sqlite (default: ARAGORA_DATA_DIR/aragora.db) or postgres (--database-url)",
    )
    a.add_argument("--dry-run", action="store_true", help="map and convert, write nothing")
    a.add_argument("--verify", action="store_true", help="compare counts and checksums after")
    a.add_argument("--batch-size", type=int, default=1000, help="rows per batch (1000)")
    a.add_argument("--json", action="store_true", help="print the report as JSON")

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
