"""``schema-diff --base REF``: a Markdown review of the schema change since a git ref.

Both sides are analysed from the migration files (the base side read with ``git show``),
so the report compares the resulting schemas, not the migration texts. Dangerous changes
get a warning, after Squawk's rules (squawkhq.com/docs/rules): dropping a table or column,
adding a NOT NULL column without a default to an existing table, narrowing a type,
changing a type (a table rewrite), building an index without CONCURRENTLY on an existing
table, adding a foreign key or CHECK that validates every row, and renaming.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .analysis.schema import analyse_schema, read_migrations
from .config import load_config
from .errors import CodegenError
from .model.ir import Catalog, Column, Migration, Table

# Narrowing: (from, to) base type pairs that can lose values or fail on existing data.
_COLUMN_RENAME = re.compile(r"^column (?P<table>\w+)\.(?P<old>\w+) -> (?P<new>\w+)$")
_NARROWER = {
    ("int8", "int4"),
    ("int8", "int2"),
    ("int4", "int2"),
    ("float8", "float4"),
    ("timestamptz", "timestamp"),
    ("text", "varchar"),
    ("numeric", "int4"),
    ("numeric", "int8"),
    ("float8", "int4"),
    ("float8", "int8"),
}


@dataclass
class Report:
    base: str
    new_migrations: list[str] = field(default_factory=list)
    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, where: str, change: str, detail: str) -> None:
        self.sections.setdefault(where, []).append((change, detail))

    def warn(self, kind: str, what: str, why: str) -> None:
        self.warnings.append(f"⚠️ **{kind}** {what}: {why}")

    def markdown(self) -> str:
        lines = [f"## Schema changes since `{self.base}`", ""]
        if self.new_migrations:
            lines += ["New migrations: " + ", ".join(f"`{m}`" for m in self.new_migrations), ""]
        if not self.sections:
            lines += ["No schema changes.", ""]
        for where, rows in self.sections.items():
            lines += [f"### {where}", "", "| change | detail |", "|---|---|"]
            lines += [f"| {change} | {detail} |" for change, detail in rows]
            lines.append("")
        if self.warnings:
            lines += ["### Warnings", ""] + [f"- {w}" for w in self.warnings] + [""]
        return "\n".join(lines)


def _coldef(c: Column) -> str:
    text = f"`{c.name} {c.pg_type_sql}"
    if c.not_null and not c.identity:
        text += " NOT NULL"
    if c.default_pg is not None:
        text += f" DEFAULT {c.default_pg}"
    return text.replace("|", "\\|") + "`"


def _base_type(c: Column) -> str:
    return c.pg_type_sql.split("(")[0].strip()


def _modifiers(c: Column) -> tuple[int, ...]:
    if "(" not in c.pg_type_sql:
        return ()
    inner = c.pg_type_sql[c.pg_type_sql.index("(") + 1 : c.pg_type_sql.index(")")]
    return tuple(int(x) for x in inner.split(",") if x.strip().isdigit())


def _narrowing(old: Column, new: Column) -> bool:
    if (old.type.name, _base_type(new)) in _NARROWER or (old.type.name, new.type.name) in _NARROWER:
        return True
    if _base_type(old) == _base_type(new) and _modifiers(old) and _modifiers(new):
        return any(n < o for o, n in zip(_modifiers(old), _modifiers(new), strict=False))
    return bool(_modifiers(new)) and not _modifiers(old) and old.type == new.type


def diff(
    base: Catalog, head: Catalog, ref: str, new_migrations: Sequence[Migration] = ()
) -> Report:
    report = Report(ref, [Path(m.path).name for m in new_migrations])
    for e in sorted({e.name for e in head.enums} | {e.name for e in base.enums}):
        old, new = base.enum(e), head.enum(e)
        if old is None and new is not None:
            report.add(f"Type `{e}`", "enum added", ", ".join(new.values))
        elif new is None and old is not None:
            report.add(f"Type `{e}`", "enum removed", ", ".join(old.values))
        elif old is not None and new is not None and old.values != new.values:
            report.add(
                f"Type `{e}`",
                "enum values changed",
                f"{', '.join(old.values)} → {', '.join(new.values)}",
            )
            if set(old.values) - set(new.values):
                report.warn("removing enum values", f"`{e}`", "rows holding them fail")
    renamed: dict[str, dict[str, str]] = {}  # table -> {old column: new column}
    for m in new_migrations:
        for rename in m.up.renames:
            match = _COLUMN_RENAME.match(rename)
            if match:
                renamed.setdefault(match["table"], {})[match["old"]] = match["new"]
    names = sorted({t.name for t in head.tables} | {t.name for t in base.tables})
    for name in names:
        old_t, new_t = base.table(name), head.table(name)
        where = f"Table `{name}`"
        if old_t is None and new_t is not None:
            report.add(where, "table added", ", ".join(_coldef(c) for c in new_t.columns))
        elif new_t is None and old_t is not None:
            report.add(where, "table removed", "")
            report.warn(
                "dropping table",
                f"`{name}`",
                "its data is lost; make sure no deployed code reads it first",
            )
        elif old_t is not None and new_t is not None:
            _diff_table(report, where, old_t, new_t, renamed.get(name, {}))
    _diff_indexes(report, base, head)
    for m in new_migrations:
        for rename in m.up.renames:
            report.warn(
                "renaming",
                rename,
                "code deployed before the migration breaks; "
                "add the new name, migrate readers, then drop the old one",
            )
    return report


def _diff_table(
    report: Report, where: str, old: Table, new: Table, renamed: dict[str, str]
) -> None:
    new_cols = {c.name: c for c in new.columns}
    old_cols = {}
    for c in old.columns:
        if c.name in renamed and renamed[c.name] in new_cols:
            report.add(where, "column renamed", f"`{c.name}` → `{renamed[c.name]}`")
            c = replace(c, name=renamed[c.name])
        old_cols[c.name] = c
    for name, col in new_cols.items():
        if name not in old_cols:
            report.add(where, "column added", _coldef(col))
            if col.not_null and col.default_pg is None and not col.identity:
                report.warn(
                    "adding NOT NULL without a default",
                    f"`{old.name}.{name}`",
                    "fails on a table that has rows; add a default or backfill first",
                )
    for name, col in old_cols.items():
        if name not in new_cols:
            report.add(where, "column removed", _coldef(col))
            report.warn(
                "dropping column",
                f"`{old.name}.{name}`",
                "its data is lost; deploy code that no longer reads it first",
            )
            continue
        after = new_cols[name]
        if (col.pg_type_sql, col.type) != (after.pg_type_sql, after.type):
            report.add(
                where, "type changed", f"`{name}`: `{col.pg_type_sql}` → `{after.pg_type_sql}`"
            )
            if _narrowing(col, after):
                report.warn(
                    "narrowing a type",
                    f"`{old.name}.{name}`",
                    f"`{col.pg_type_sql}` → "
                    f"`{after.pg_type_sql}` can fail on or truncate existing values",
                )
            else:
                report.warn(
                    "changing a type",
                    f"`{old.name}.{name}`",
                    "rewrites the table under an ACCESS EXCLUSIVE lock",
                )
        if col.not_null != after.not_null:
            report.add(
                where,
                "nullability changed",
                f"`{name}`: {'NOT NULL' if after.not_null else 'nullable'}",
            )
            if after.not_null:
                report.warn(
                    "setting NOT NULL",
                    f"`{old.name}.{name}`",
                    "scans the whole table "
                    "under an ACCESS EXCLUSIVE lock and fails if a NULL exists",
                )
        if col.default_pg != after.default_pg:
            report.add(
                where, "default changed", f"`{name}`: `{col.default_pg}` → `{after.default_pg}`"
            )
    if old.primary_key != new.primary_key:
        report.add(
            where,
            "primary key changed",
            f"({', '.join(old.primary_key)}) → ({', '.join(new.primary_key)})",
        )
    for unique in sorted(set(new.uniques) - set(old.uniques)):
        report.add(where, "unique constraint added", f"({', '.join(unique)})")
        report.warn(
            "adding a unique constraint",
            f"`{old.name}` ({', '.join(unique)})",
            "builds an index under lock; create a unique index CONCURRENTLY and "
            "attach it with USING INDEX",
        )
    for unique in sorted(set(old.uniques) - set(new.uniques)):
        report.add(where, "unique constraint removed", f"({', '.join(unique)})")
    for fk in [f for f in new.foreign_keys if f not in old.foreign_keys]:
        report.add(where, "foreign key added", f"({', '.join(fk.columns)}) → {fk.ref_table}")
        report.warn(
            "adding a foreign key",
            f"`{old.name}` → `{fk.ref_table}`",
            "validates every row under lock; add it NOT VALID, then VALIDATE CONSTRAINT",
        )
    for fk in [f for f in old.foreign_keys if f not in new.foreign_keys]:
        report.add(where, "foreign key removed", f"({', '.join(fk.columns)}) → {fk.ref_table}")
    for check in [c for c in new.checks if c not in old.checks]:
        report.add(where, "check added", f"`{check.postgres}`")
        report.warn(
            "adding a CHECK",
            f"`{old.name}`",
            "validates every row under lock; add it NOT VALID, then VALIDATE CONSTRAINT",
        )
    for check in [c for c in old.checks if c not in new.checks]:
        report.add(where, "check removed", f"`{check.postgres}`")


def _diff_indexes(report: Report, base: Catalog, head: Catalog) -> None:
    old = {i.name: i for i in base.indexes}
    existing_tables = {t.name for t in base.tables}
    for name, index in sorted((i.name, i) for i in head.indexes):
        where = f"Table `{index.table}`"
        if name not in old:
            report.add(where, "index added", f"`{index.postgres_sql}`")
            if index.table in existing_tables and not index.concurrently:
                report.warn(
                    "creating an index without CONCURRENTLY",
                    f"`{name}`",
                    f"blocks writes to `{index.table}` while it builds",
                )
        elif old[name].postgres_sql != index.postgres_sql:
            report.add(
                where, "index changed", f"`{old[name].postgres_sql}` → `{index.postgres_sql}`"
            )
    for name, index in sorted(old.items()):
        if name not in {i.name for i in head.indexes}:
            report.add(f"Table `{index.table}`", "index removed", f"`{name}`")


def files_at(root: Path, ref: str, schema_dir: str) -> dict[str, str]:
    """The migration files as they were at ``ref``."""
    listing = subprocess.run(
        ["git", "-C", str(root), "ls-tree", "-r", "--name-only", ref, "--", schema_dir],
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        raise SystemExit(f"cannot read {ref}: {listing.stderr.strip()}")
    prefix = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--show-prefix"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    out = {}
    for path in listing.stdout.split():
        if path.endswith(".sql"):
            show = subprocess.run(
                ["git", "-C", str(root), "show", f"{ref}:{prefix}{path}"],
                capture_output=True,
                text=True,
                check=True,
            )
            out[path] = show.stdout
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="schema-diff")
    parser.add_argument("--base", required=True)
    parser.add_argument("--root", default=".")
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    root = Path(args.root)
    try:
        config = load_config(root)
        base_catalog, base_migrations = analyse_schema(files_at(root, args.base, config.schema_dir))
        head_catalog, head_migrations = analyse_schema(read_migrations(root, config.schema_dir))
    except CodegenError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    known = {m.version for m in base_migrations}
    report = diff(
        base_catalog,
        head_catalog,
        args.base,
        [m for m in head_migrations if m.version not in known],
    ).markdown()
    if args.output:
        Path(args.output).write_text(report, encoding="utf-8")
    else:
        print(report, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
