"""Checks on the hand-written SQL files before anything reads them as SQL.

A migration's sections are found by marker comments, and a query by its ``-- name:``
line; a typo in either changes what runs without any parser noticing. ``-- migrate: down``
(a space after the colon) is not a marker, so the down statements would become part of
up; a query without a ``-- name:`` line is dropped by sqlc without a word. These rules
turn every such near miss into a ``file:line:col`` problem:

* a comment line that looks like a marker (``-- migrate``, any case or spacing) must be
  exactly ``-- migrate:up`` or ``-- migrate:down``; one of each at most, up first;
* every statement belongs to a section (nothing before ``-- migrate:up``);
* the up section holds at least one statement;
* versions follow each other without gaps;
* every statement of a query file follows its own ``-- name:`` line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlglot.errors import TokenError

from ..errors import Problem, line_col
from . import append_only, encrypted, synced
from .schema import split_statements

UP_MARKER = "-- migrate:up"
DOWN_MARKER = "-- migrate:down"
#: Any comment that could be meant as a marker: ``--migrate``, ``-- Migrate : Up`` ...
_MARKER_LIKE = re.compile(r"^[ \t]*--[ \t]*migrate\b", re.IGNORECASE | re.MULTILINE)
_NAME_LIKE = re.compile(r"^[ \t]*--[ \t]*name\b", re.IGNORECASE | re.MULTILINE)
_VERSION = re.compile(r"^(\d{4})_")


def _spans(text: str) -> list[tuple[int, int]] | None:
    """(start, end) offsets of each statement (:func:`split_statements`); None when the
    text does not tokenize (the SQL analysis reports that)."""
    try:
        return [(st.offset, st.offset + len(st.sql)) for st in split_statements(text)]
    except TokenError:
        return None


def lint_migration(rel: str, text: str) -> list[Problem]:
    """Problems with the section markers and statements of one migration file."""
    problems: list[Problem] = []

    def at(offset: int, message: str) -> None:
        problems.append(Problem(rel, *line_col(text, offset), message))

    up: int | None = None
    down: int | None = None
    for match in _MARKER_LIKE.finditer(text):
        line_end = text.find("\n", match.start())
        line = text[match.start() : len(text) if line_end < 0 else line_end].rstrip("\r")
        if line.rstrip() == UP_MARKER:
            if up is not None:
                at(
                    match.start(),
                    f"second {UP_MARKER} marker (the first is on line {line_col(text, up)[0]})",
                )
            elif down is not None:
                at(match.start(), f"{UP_MARKER} must come before {DOWN_MARKER}")
            else:
                up = match.start()
        elif line.rstrip() == DOWN_MARKER:
            if down is not None:
                at(
                    match.start(),
                    f"second {DOWN_MARKER} marker (the first is on line {line_col(text, down)[0]})",
                )
            else:
                down = match.start()
        else:
            at(
                match.start(),
                f"not a section marker: {line.strip()!r}; write exactly {UP_MARKER!r} or "
                f"{DOWN_MARKER!r} on a line of its own",
            )
    if up is None:
        if not problems:  # a misspelt marker was already named
            at(0, f"migration has no {UP_MARKER} section")
        return problems
    spans = _spans(text)
    if spans is None:
        return problems
    up_end = down if down is not None and down > up else len(text)
    outside = [s for s, _ in spans if s < up]
    if outside:
        at(outside[0], f"statement outside any section: put it below {UP_MARKER}")
    if not any(up < s < up_end for s, _ in spans) and not any(
        up < m.start() < up_end
        for marker in (append_only.MARKER, encrypted.MARKER, synced.MARKER)
        for m in marker.finditer(text)
    ):
        at(up, "empty migration: the up section has no statement")
    return problems


def lint_versions(files: Mapping[str, str]) -> list[Problem]:
    """A gap in the numbering (``0003`` followed by ``0005``) is a problem of the later file."""
    problems: list[Problem] = []
    previous: int | None = None
    for rel in sorted(files):
        match = _VERSION.match(rel.rsplit("/", 1)[-1])
        if match is None:
            continue  # the schema analysis names the bad file name
        version = int(match.group(1))
        if previous is not None and version > previous + 1:
            missing = f"{previous + 1:04d}" + (
                f"..{version - 1:04d}" if version - 1 > previous + 1 else ""
            )
            problems.append(
                Problem(rel, 1, 1, f"gap in the numbering: {missing} missing after {previous:04d}")
            )
        previous = version
    return problems


def lint_queries(rel: str, text: str) -> list[Problem]:
    """Every statement of a query file must follow its own ``-- name:`` line."""
    spans = _spans(text)
    if spans is None:
        return []
    names = [m.start() for m in _NAME_LIKE.finditer(text)]
    problems: list[Problem] = []
    previous_end = 0
    for start, end in spans:
        if not any(previous_end <= n < start for n in names):
            problems.append(
                Problem(
                    rel,
                    *line_col(text, start),
                    "statement without a '-- name: <Name> :<command>' line (sqlc would "
                    "drop it silently)",
                )
            )
        previous_end = end
    return problems


def lint_sources(migrations: Mapping[str, str], queries: Mapping[str, str]) -> list[Problem]:
    """Every problem of every file, sorted."""
    problems = lint_versions(migrations)
    for rel, text in migrations.items():
        problems += lint_migration(rel, text)
    for rel, text in queries.items():
        problems += lint_queries(rel, text)
    return sorted(problems)
