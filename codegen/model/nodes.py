"""Small readings of sqlglot trees shared by the query builder and the SQLite rules."""

from __future__ import annotations

import functools

import sqlglot
from sqlglot import exp


def param_number(node: exp.Expr) -> int | None:
    """The number of a ``$n`` parameter node, else None."""
    if isinstance(node, exp.Parameter) and isinstance(node.this, exp.Literal):
        return int(node.this.this)
    return None


@functools.lru_cache(maxsize=4096)
def parse_postgres(text: str) -> exp.Expr:
    """One statement's PostgreSQL tree, parsed once per run however many stages read it
    (building the query, naming its list parameters, translating it): parsing is most of
    the generator's time. The tree is shared: a stage that changes it copies it first.

    Raises:
        sqlglot.errors.ParseError: the text does not parse.
    """
    return sqlglot.parse_one(text, read="postgres")
