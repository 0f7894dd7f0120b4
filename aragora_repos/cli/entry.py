"""The ``aragora-repos`` script: the command line of a project's generated package.

Which package is an argument, never a name built into the runtime: ``--package NAME``
(before the command), else ``ARAGORA_REPOS_PACKAGE``, else the project's ``sqlc.yaml``
(found at or above the working directory): its one ``sql`` entry's ``name`` (default
``aragora_db``, as the generator names it). The package's ``__main__`` runs the command
with its own migrations and schema (``python -m <package>`` is the same).

``aragora-repos generate [--check] [--root DIR]`` runs the generator (``pip install
'aragora-repos[codegen]'``) even before the package exists, for every ``sql`` entry.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

DEFAULT_PACKAGE = "aragora_db"
GENERATORS = ("aragora_repos_codegen", "codegen")
"""The generator's import name when installed, and in this repository."""
_NAME = re.compile(r"^\s*-\s*name:\s*[\"']?([A-Za-z_]\w*)[\"']?\s*$", re.MULTILINE)


Command = Callable[[list[str]], int]


def _generator_module(name: str) -> object | None:
    for package in GENERATORS:
        try:
            return importlib.import_module(f"{package}.{name}")
        except ImportError as exc:
            if exc.name not in (package, f"{package}.{name}"):
                raise  # the generator is there but a dependency is not: say so
    return None


def generator() -> Command | None:
    """The generator's command line, if it is installed."""
    module = _generator_module("__main__")
    return None if module is None else module.main  # type: ignore[attr-defined]


def generator_commands() -> tuple[Command | None, Command | None]:
    """The generator's schema review and command line, for a generated package's
    ``__main__``; none in a runtime-only install (``generate`` and ``schema-diff`` then
    say what to install)."""
    review = _generator_module("review")
    return (None if review is None else review.main, generator())  # type: ignore[attr-defined]


def _config(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        for name in ("sqlc.yaml", "sqlc.yml"):
            if (folder / name).is_file():
                return folder / name
    return None


def packages(config: Path) -> list[str]:
    """The generated packages a ``sqlc.yaml`` names, one per ``sql`` entry."""
    text = config.read_text(encoding="utf-8")
    names = _NAME.findall(text)
    entries = len(re.findall(r"^\s*-\s*engine:", text, re.MULTILINE))
    return names + [DEFAULT_PACKAGE] * max(0, entries - len(names))


def _split(argv: list[str]) -> tuple[str | None, list[str]]:
    """``--package NAME`` / ``--package=NAME`` taken out of the arguments."""
    out, package, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--package" and i + 1 < len(argv):
            package, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--package="):
            package, i = arg.split("=", 1)[1], i + 1
            continue
        out.append(arg)
        i += 1
    return package, out


def _generate(argv: list[str]) -> int:
    command = generator()
    if command is None:
        print("generate needs the generator: pip install 'aragora-repos[codegen]'", file=sys.stderr)
        return 2
    check = "--check" in argv
    rest = [a for a in argv[1:] if a != "--check"]
    return command(["check" if check else "generate", *rest])


def main(argv: Sequence[str] | None = None) -> int:
    package, args = _split(list(sys.argv[1:] if argv is None else argv))
    package = package or os.environ.get("ARAGORA_REPOS_PACKAGE", "").strip() or None
    if package is None:
        config = _config(Path.cwd())
        names = packages(config) if config is not None else []
        if len(names) > 1 and not (args and args[0] == "generate"):
            print(
                f"{config} names {len(names)} packages ({', '.join(names)}): say which with "
                "--package NAME or ARAGORA_REPOS_PACKAGE",
                file=sys.stderr,
            )
            return 2
        package = names[0] if names else DEFAULT_PACKAGE
    if args and args[0] == "generate":
        return _generate(args)
    try:
        module = importlib.import_module(f"{package}.__main__")
    except ImportError as exc:
        if exc.name not in (package, f"{package}.__main__"):
            raise
        print(
            f"cannot import the generated package {package!r}: generate it "
            "(aragora-repos generate) and put its folder on the path, or name another with "
            "--package NAME",
            file=sys.stderr,
        )
        return 2
    run: Command = module.main
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
