"""Prove every translated statement compiles on SQLite before any code is written.

Builds an in-memory database from the translated migrations (up, then down and up
again where every migration has a down section, comparing snapshots), then prepares
each query with ``EXPLAIN``, which compiles without running (sqlite.org/lang_explain.html).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

from aragora_repos.backends.sqlite.functions import install

from ..errors import Problem, Problems
from ..model.build import place
from ..model.ir import Migration, QueryFile, Section

#: Connection settings the runtime applies too; translation relies on them.
CONNECTION_PRAGMAS = ("PRAGMA foreign_keys = ON", "PRAGMA case_sensitive_like = ON")


def snapshot(conn: sqlite3.Connection) -> str:
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type DESC, name"
    ).fetchall()
    return "".join(f"{sql};\n\n" for _, _, sql in rows)


#: What SQLite names in a rejection: the query's place is where the query names it.
_NAMED = re.compile(r"no such (?:function|column|table): ([\w.]+)")


def verify(migrations: Sequence[Migration], files: Sequence[QueryFile], problems: Problems) -> str:
    """Return the resulting SQLite schema; report every problem found to ``problems``."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    install(conn)  # the runtime's SQL functions (aragora_now, ...)
    try:
        for pragma in CONNECTION_PRAGMAS:
            conn.execute(pragma)

        def run(m: Migration, section: Section | None, what: str) -> bool:
            assert section is not None
            if section.sqlite_rebuild:
                conn.execute("PRAGMA foreign_keys = OFF")
            try:
                conn.execute("BEGIN IMMEDIATE")
                for statement in section.sqlite:
                    conn.execute(statement)
                if conn.execute("PRAGMA foreign_key_check").fetchall():
                    raise sqlite3.IntegrityError("foreign key check fails after the rebuild")
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK") if conn.in_transaction else None
                problems.append(
                    Problem(m.path, 1, 1, f"sqlite rejected the translated {what} section: {exc}")
                )
                return False
            finally:
                conn.execute("PRAGMA foreign_keys = ON")
            return True

        ok = all([run(m, m.up, "up") for m in migrations])
        schema = snapshot(conn)
        if ok and migrations and all(m.down is not None for m in migrations):
            for m in reversed(migrations):
                run(m, m.down, "down")
            for m in migrations:
                run(m, m.up, "up")
            if snapshot(conn) != schema:
                last = migrations[-1]
                problems.append(
                    Problem(last.path, 1, 1, "down then up on sqlite does not give the same schema")
                )
        if ok:
            for qf in files:
                for q in qf.queries:
                    count = max((p.number for p in q.params), default=0)
                    try:
                        conn.execute("EXPLAIN " + q.sqlite_sql, (None,) * count)
                    except sqlite3.Error as exc:
                        loc = q.location
                        line, col = loc.line, loc.col
                        named = _NAMED.search(str(exc))
                        if named and q.source_block:
                            line, col = place(q.source_block, loc, named.group(1).split(".")[-1])
                        problems.append(
                            Problem(
                                loc.file,
                                line,
                                col,
                                f"query {q.name}: sqlite rejected the translated statement: {exc}",
                            )
                        )
    finally:
        conn.close()
    return schema
