"""Rule cases: each names the rule it covers (None: sqlglot's own output, pinned), and
``test_rule_coverage`` proves every case depends on exactly that rule."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import sqlglot

from aragora_repos.backends.sqlite.functions import install
from codegen.dialects import sqlite
from codegen.dialects.sqlite import NO_HINTS, Context, Rule
from codegen.dialects.verify import CONNECTION_PRAGMAS

NOW = "ARAGORA_NOW()"
LISTS = Context(list_params=frozenset({1}))


@dataclass(frozen=True)
class Case:
    """``pg`` translates to ``expected``; without ``rule`` it would not."""

    id: str
    rule: Rule | None
    pg: str
    expected: str
    ctx: Context = NO_HINTS


@dataclass(frozen=True)
class Refusal:
    """``pg`` has no faithful SQLite form: ``rule`` refuses it, naming ``construct``."""

    id: str
    rule: Rule
    pg: str
    construct: str
    ctx: Context = NO_HINTS


def translate_with(pg: str, ctx: Context, rules: Sequence[Rule]) -> str:
    tree = sqlglot.parse_one(pg, read="postgres").copy()
    for rule in rules:
        tree = rule(tree, ctx)
    return sqlite.render(tree)


def without(rule: Rule) -> list[Rule]:
    return [r for r in sqlite.RULES if r is not rule]


def ids(cases: Sequence[Case | Refusal]) -> list[str]:
    return [c.id for c in cases]


def connection() -> sqlite3.Connection:
    """A SQLite connection with the runtime's pragmas and a small table ``t``."""
    c = sqlite3.connect(":memory:", isolation_level=None)
    install(c)
    for pragma in CONNECTION_PRAGMAS:
        c.execute(pragma)
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, ts TEXT)")
    c.executemany(
        "INSERT INTO t (id, a, ts) VALUES (?, ?, ?)",
        [
            (1, "Apple", "2024-01-15 10:00:00.000000+00:00"),
            (2, None, None),
            (3, "apple", "2024-01-15 09:00:00.000000+00:00"),
            (4, "a_b", None),
        ],
    )
    return c
