"""``python -m codegen.branches --base REF``: migration numbers this branch shares with
its base, found before the merge.

Two branches that each add ``0008_*.sql`` merge without a textual conflict and then fail
(or, worse, one database has applied the other's 0008). This compares the migration
files in the working tree with those at ``REF`` (the branch it will merge into): a file this
branch adds whose number ``REF`` gives to another file, or whose number is not above
every number ``REF`` has, must be renumbered first. Exit status 1 says which.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import load_config
from .errors import CodegenError

NUMBERED = re.compile(r"^(\d{4})_[^/]*\.sql$")


def migrations_at(root: Path, ref: str, schema_dir: str) -> dict[str, int]:
    """``{file name: number}`` of the numbered migrations at ``ref``."""
    listing = subprocess.run(
        ["git", "-C", str(root), "ls-tree", "--name-only", f"{ref}:./{schema_dir}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        raise SystemExit(f"cannot read {schema_dir} at {ref}: {listing.stderr.strip()}")
    out = {}
    for name in listing.stdout.splitlines():
        match = NUMBERED.match(name)
        if match:
            out[name] = int(match.group(1))
    return out


def migrations_here(root: Path, schema_dir: str) -> dict[str, int]:
    """``{file name: number}`` of the numbered migrations in the working tree."""
    out = {}
    for path in (root / schema_dir).glob("*.sql"):
        match = NUMBERED.match(path.name)
        if match:
            out[path.name] = int(match.group(1))
    return out


def conflicts(here: dict[str, int], base: dict[str, int]) -> list[str]:
    """What this branch must renumber before it merges into ``base``."""
    added = {name: n for name, n in here.items() if name not in base}
    top = max(base.values(), default=0)
    taken = {n: name for name, n in base.items()}
    problems = []
    for name, number in sorted(added.items()):
        if number in taken:
            problems.append(
                f"{name}: the base already has {taken[number]} as {number:04d}; "
                f"renumber this branch's migrations after {top:04d}"
            )
        elif number < top:
            problems.append(
                f"{name}: the base has migrations up to {top:04d}, after this one; "
                f"renumber it after {top:04d}"
            )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen.branches")
    parser.add_argument("--base", required=True, help="the branch this one merges into")
    parser.add_argument("--root", default=".", help="project directory")
    args = parser.parse_args(argv)
    root = Path(args.root)
    try:
        config = load_config(root)
    except CodegenError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    found = []
    for entry in config.entries:
        found += conflicts(
            migrations_here(root, entry.schema_dir),
            migrations_at(root, args.base, entry.schema_dir),
        )
    for line in found:
        print(f"{line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
