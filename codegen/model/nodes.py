"""Small readings of sqlglot trees shared by the query builder and the SQLite rules."""

from __future__ import annotations

from sqlglot import exp


def param_number(node: exp.Expr) -> int | None:
    """The number of a ``$n`` parameter node, else None."""
    if isinstance(node, exp.Parameter) and isinstance(node.this, exp.Literal):
        return int(node.this.this)
    return None
