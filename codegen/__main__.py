"""``python -m codegen generate|check [--root DIR] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import load_config
from .errors import CodegenError
from .pipeline import generate
from .writer import diff, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen")
    parser.add_argument("command", choices=["generate", "check"])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project directory")
    parser.add_argument(
        "--out", type=Path, default=None, help="output (default: ROOT/options.aragora.out)"
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.root)
        out = args.out or args.root / config.out
        files = generate(args.root, config)
    except CodegenError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s); generated/ left unchanged", file=sys.stderr)
        return 1
    if args.command == "check":
        changes = diff(out, files)
        if changes:
            sys.stdout.writelines(changes)
            print("generated/ is stale: run `make generate`", file=sys.stderr)
            return 1
        return 0
    write(out, files)
    print(f"wrote {len(files)} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
