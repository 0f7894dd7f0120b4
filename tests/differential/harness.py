"""Run the generated repositories' methods on SQLite and PostgreSQL in lockstep.

Every method of every generated repository is a *call*. A hypothesis example is a
sequence of calls with generated arguments; each call runs on PostgreSQL, then on
SQLite, against databases that received the same calls before. The outcomes are compared
after normalising to Python values: both returned equal results, or both raised the same
aragora_repos error class. Anything else is a mismatch, recorded against the query.

What is deliberately normalised, and why:

* rows of a query without ORDER BY are compared as multisets; a query ranked by
  ``ts_rank`` (bm25 on SQLite) as sets of rows, since the two ranking functions weigh
  terms differently;
* timestamps written by ``now()`` differ by the time between the two calls, so two
  timestamps may differ by at most the longest call pair of the example (+2 ms);
* floats compare to 1e-9 relative (sums may add in another order);
* PostgreSQL sequences are not transactional (a failed insert or an upsert that updates
  still takes a number; SQLite's AUTOINCREMENT does not), so after each call the
  sequences are set to SQLite's counters, keeping generated ids comparable.
"""

from __future__ import annotations

import asyncio
import collections.abc
import dataclasses
import enum
import importlib
import inspect
import math
import os
import pkgutil
import time
import types
import typing
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

import aragora_db
from aragora_db import Database
from aragora_repos import errors
from aragora_repos.backends.postgres import PostgresDatabase
from aragora_repos.backends.sqlite import AsyncSqliteDatabase
from aragora_repos.tools.migrate_data import fk_order
from aragora_repos.types import JSON as JSON_ALIAS

# --- the calls ------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    store: str
    method: str
    query: str
    hints: dict[str, Any]
    ordered: bool
    ranked: bool
    rows: bool = False
    """It returns rows (``:many``): compared as a set unless ordered. Any other result,
    a JSON array among them, is compared as it is, order and all."""


def _queries_of(module: types.ModuleType) -> dict[str, tuple[str, str]]:
    """method name -> (query name, PostgreSQL text) from the module's SQL constants."""
    out = {}
    for name, value in vars(module).items():
        if (
            isinstance(value, str)
            and value.startswith("-- name: ")
            and not name.endswith("_SQLITE")
        ):
            query = value.split()[2]
            out[name.lower()] = (query, value)
    return out


def discover() -> list[Call]:
    calls = []
    for info in pkgutil.iter_modules(aragora_db.__path__):
        module = importlib.import_module(f"aragora_db.{info.name}")
        base = next(
            (
                v
                for k, v in vars(module).items()
                if k.endswith("Repository")
                and not k.startswith(("Postgres", "Sqlite"))
                and inspect.isclass(v)
                and v.__module__ == module.__name__
            ),
            None,
        )
        if base is None:
            continue
        queries = _queries_of(module)
        for method, fn in inspect.getmembers(base, inspect.iscoroutinefunction):
            if method.startswith("_") or method not in queries:
                continue
            hints = typing.get_type_hints(fn, vars(module))
            hints.pop("return", None)
            query, sql = queries[method]
            calls.append(
                Call(
                    info.name,
                    method,
                    query,
                    hints,
                    "ORDER BY" in sql.upper(),
                    "ts_rank(" in sql,
                    ":many" in sql.split("\n", 1)[0],
                )
            )
    return sorted(calls, key=lambda c: (c.store, c.method))


# --- argument strategies ------------------------------------------------------------------

KEY_STRINGS = ["a", "b", "Zürich", "it's"]
"""Key-like text comes from a small pool so that reads find what writes stored."""
#: LIKE patterns and search terms: the pool, wildcards, escapes, and letters ILIKE folds
#: (É to é). A pattern ending in a lone escape is left to tests/differential/test_like.py:
#: PostgreSQL's planner may turn a wildcard-free pattern into an index lookup that never
#: runs the matcher (no rows instead of 22025), so its answer depends on the plan.
PATTERNS = [*KEY_STRINGS, "a%", "_", "É", "é%", "%ü%", "100\\%", "%\\_"]

_KEY_NAMES = {
    "base",
    "slug",
    "token",
    "jti",
    "agent",
    "agent_a",
    "agent_b",
    "agent_name",
    "loop_id",
    "name",
    "topic_hash",
    "content_hash",
    "genome_id",
    "tournament_id",
    "predictor_agent",
    "domain",
    "event_type",
    "issue_type",
    "type",
    "status",
    "action",
    "source_type",
    "dissent_type",
    "winner",
    "predicted_winner",
    "email",
    "file_path",
    "pattern",
    "phase",
    "stage",
    "outcome",
}
_SMALL_INT_NAMES = {
    "cycle",
    "cycle_number",
    "round",
    "generation",
    "id",
    "after_id",
    "after_seq",
    "consensus_id",
    "lim",
    "off",
    "days",
    "max_successes",
    "max_attempts",
    "lockout_minutes",
    "total_tasks",
}

SPECIAL_TEXT = [
    "",
    "it's",
    'say "hi"',
    "100%_done\\",
    "a\x00b",  # PostgreSQL text cannot hold NUL: both backends must refuse it
    "lone \ud800 surrogate",  # no UTF-8 holds it: a DataError on both backends
    "ÉCOLE école",
    "🙂 emoji",
    "x" * 5000,
]

_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
# Branches are drawn about equally: adversarial values come often enough to test every
# refusal, valid ones often enough that calls with many arguments also succeed.
TEXT = st.one_of(_text, _text, _text, st.sampled_from(SPECIAL_TEXT))
WORDS = st.lists(st.sampled_from(["rate", "limiter", "Cache", "design", "cache"]), max_size=4).map(
    " ".join
)
# Finite, below 1e150 in magnitude: known differences, documented in the README. An
# aggregate that overflows float8 raises 22003 on PostgreSQL but gives ±inf on SQLite (and
# avg(float8) keeps a sum of squares, which overflows from about 1e154); arithmetic on
# infinities can give NaN, which PostgreSQL stores and SQLite turns to NULL; arithmetic
# that underflows to zero raises 22003 on PostgreSQL (subnormal inputs are left out).
FLOATS = st.one_of(
    st.floats(0, 1, allow_subnormal=False),
    st.floats(-1e150, 1e150, allow_subnormal=False),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.2250738585072014e-308]),
)
_SMALL = st.integers(-100, 100)
INT64 = st.one_of(
    _SMALL,
    _SMALL,
    _SMALL,
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([2**31, -(2**31) - 1, 2**63 - 1, -(2**63)]),
)
ZONES: st.SearchStrategy[Any] = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), None]
)
DATETIMES = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=ZONES
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
    max_leaves=12,
)


def strategy_for(name: str, hint: Any) -> st.SearchStrategy[Any]:
    if _is_json(hint):
        return JSON
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return st.one_of(st.none(), strategy_for(name, inner[0]))
    if origin in (list, collections.abc.Iterable, collections.abc.Sequence):
        (item,) = typing.get_args(hint)
        if dataclasses.is_dataclass(item) and isinstance(item, type):
            return st.lists(_dataclass(item), max_size=4)
        items = st.lists(strategy_for(name, item), max_size=4)
        if item in (str, int, float):
            # Now and then an element of another type: PostgreSQL's driver refuses it,
            # and so must SQLite's JSON encoding of the list.
            wrong = st.sampled_from([1, "1", 1.5] if item is not float else ["1"])
            return st.one_of(items, items, items, st.lists(wrong, min_size=1, max_size=2))
        return items
    if hint is str:
        if name == "query":
            return WORDS
        if name in ("pattern", "term"):
            return st.sampled_from(PATTERNS)
        return st.sampled_from(KEY_STRINGS) if _is_key(name) else TEXT
    if hint is bool:
        return st.booleans()
    if hint is int:
        if name in ("lim", "off"):
            return st.sampled_from([-1, 0, 1, 2, 3, 50])
        if name in _SMALL_INT_NAMES or name.endswith("_id"):
            return st.sampled_from([0, 1, 2, 3, -1])
        return INT64
    if hint is float:
        return FLOATS
    if hint is datetime:
        return DATETIMES
    if hint is bytes:
        return st.binary(max_size=32)
    if hint is Decimal:
        return st.decimals(allow_nan=False, allow_infinity=False, places=6)
    if inspect.isclass(hint) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    if _is_json(hint):
        return JSON
    raise TypeError(f"no strategy for {name}: {hint!r}")


def _is_json(hint: Any) -> bool:
    """The recursive JSON alias (also inside ``X | None``) reaches here expanded."""
    return hint == JSON_ALIAS or "ForwardRef('JSON')" in str(hint)


def _is_key(name: str) -> bool:
    return name in _KEY_NAMES or name.endswith(("_id", "_name", "_hash", "_by")) or name == "id"


def _dataclass(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls, vars(importlib.import_module(cls.__module__)))
    return st.builds(
        cls, **{f.name: strategy_for(f.name, hints[f.name]) for f in dataclasses.fields(cls)}
    )


def arguments(call: Call) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({n: strategy_for(n, h) for n, h in call.hints.items()})


# --- outcomes --------------------------------------------------------------------------


@dataclass
class Tally:
    runs: Counter[str] = field(default_factory=Counter)
    both_ok: Counter[str] = field(default_factory=Counter)
    both_error: Counter[str] = field(default_factory=Counter)
    mismatches: dict[str, list[str]] = field(default_factory=dict)


def normalise(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple(normalise(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def same(a: Any, b: Any, slack: timedelta) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isinf(a) or math.isinf(b):
            return a == b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return abs(a - b) <= slack
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, slack) for x, y in zip(a, b, strict=True))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same(x, y, slack) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], slack) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b) and type(a) is type(b)


def _sort_key(value: Any) -> str:
    """A text that orders equal values alike: a dict's keys in sorted order (jsonb gives
    them back in its own order, SQLite in the order written), so the rows of a list
    sort to the same places on both backends."""
    return repr(_canonical(value))


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, _canonical(dataclasses.asdict(value)))
    if isinstance(value, dict):
        return sorted((repr(k), _canonical(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


# --- the two databases -------------------------------------------------------------------


class Pair:
    """A PostgreSQL and a SQLite database receiving the same calls."""

    def __init__(self, pg: Database, lite: Database, loop: asyncio.AbstractEventLoop) -> None:
        self.pg, self.lite, self.loop = pg, lite, loop
        assert isinstance(pg.backend, PostgresDatabase)
        assert isinstance(lite.backend, AsyncSqliteDatabase)
        self.pg_backend: PostgresDatabase = pg.backend
        self.lite_backend: AsyncSqliteDatabase = lite.backend
        lite_tables = {
            r[0]
            for r in self.run(
                self.lite_backend.fetch(
                    "SELECT name FROM sqlite_schema WHERE type = 'table'", (), readonly=True
                )
            )
        }
        # The project's tables: on both sides (another test's table in the shared
        # database would make the SQLite reset fail half way and leak rows).
        self.tables = [
            r[0]
            for r in self.run(
                self.pg_backend.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "AND tablename <> 'schema_version' ORDER BY tablename",
                    (),
                )
            )
            if r[0] in lite_tables
        ]
        self.sequences = [
            (r[0], r[1])
            for r in self.run(
                self.pg_backend.fetch(
                    "SELECT table_name::text, pg_get_serial_sequence(table_name, column_name) "
                    "FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND column_default LIKE 'nextval(%' ORDER BY table_name",
                    (),
                )
            )
            if r[0] in self.tables
        ]
        self.slack = timedelta(milliseconds=2)
        # Emptied by DELETE, children before parents, with every sequence restarted, in
        # one transaction: about 25 times faster than TRUNCATE of ~40 tables, which
        # makes new files for every table and index at each of hundreds of examples.
        edges = [
            (r[0], r[1])
            for r in self.run(
                self.pg_backend.fetch(
                    "SELECT conrelid::regclass::text, confrelid::regclass::text "
                    "FROM pg_constraint WHERE contype = 'f' "
                    "AND connamespace = current_schema()::regnamespace",
                    (),
                )
            )
        ]
        sequences = [
            r[0]
            for r in self.run(
                self.pg_backend.fetch(
                    "SELECT quote_ident(sequencename) FROM pg_sequences "
                    "WHERE schemaname = current_schema()",
                    (),
                )
            )
        ]
        self.empty_sql = (
            # Append-only tables (audit_log) let retention delete rows older than this.
            "BEGIN; SELECT set_config('aragora.retention_cutoff', 'infinity', true);"
            + "".join(f'DELETE FROM "{t}";' for t in reversed(fk_order(self.tables, edges)))
            + "".join(f"ALTER SEQUENCE {s} RESTART;" for s in sequences)
            + "COMMIT"
        )

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def reset(self) -> None:
        self.run(self.pg_backend.execute(self.empty_sql, ()))
        conn = self.lite_backend.connection

        def wipe() -> None:
            raw = conn._conn  # the harness, not an application, empties every table
            raw.execute("PRAGMA foreign_keys = OFF")
            raw.execute("BEGIN")
            raw.execute("SELECT aragora_set_retention_cutoff('9999')")  # append-only tables
            for table in self.tables:
                raw.execute(f'DELETE FROM "{table}"')
            raw.execute("DELETE FROM sqlite_sequence")
            raw.execute("COMMIT")
            raw.execute("PRAGMA foreign_keys = ON")

        self.run(self.lite_backend.run(wipe))
        self.slack = timedelta(milliseconds=2)
        started = time.monotonic()
        for db in (self.pg, self.lite):
            self.run(seed(db))
        self.align_sequences()
        # Seeded rows took now() on one backend, then on the other.
        self.slack = timedelta(seconds=time.monotonic() - started, milliseconds=2)

    def align_sequences(self) -> None:
        conn = self.lite_backend.connection
        counters = dict(
            self.run(
                self.lite_backend.run(conn.fetchall, "SELECT name, seq FROM sqlite_sequence", ())
            )
        )
        parts = [
            f"setval('{seq}', {counters[table]}, true)"
            if counters.get(table)
            else f"setval('{seq}', 1, false)"
            for table, seq in self.sequences
        ]
        self.run(self.pg_backend.fetch(f"SELECT {', '.join(parts)}", ()))

    def call(self, call: Call, args: dict[str, Any], tally: Tally) -> None:
        started = time.monotonic()
        pg = self._one(self.pg, call, args)
        lite = self._one(self.lite, call, args)
        self.slack = max(
            self.slack, timedelta(seconds=time.monotonic() - started) + timedelta(milliseconds=2)
        )
        self.align_sequences()
        key = f"{call.store}.{call.query}"
        tally.runs[key] += 1
        if pg[0] == "error" and lite[0] == "error":
            if pg[1] is lite[1]:
                tally.both_error[key] += 1
                return
        elif pg[0] == "ok" and lite[0] == "ok":
            a, b = pg[1], lite[1]
            if call.rows and isinstance(a, list) and (not call.ordered or call.ranked):
                a, b = sorted(a, key=_sort_key), sorted(b, key=_sort_key)
            if same(a, b, self.slack):
                tally.both_ok[key] += 1
                return
        tally.mismatches.setdefault(key, []).append(
            f"{call.method}({_short(args)}): postgres {_short(pg)} / sqlite {_short(lite)}"
        )
        dump = os.environ.get("ARAGORA_DIFF_DUMP")
        if dump:  # every mismatch in full, for a closer look
            with open(dump, "a", encoding="utf-8") as f:
                f.write(f"{call.method}\t{args!r}\t{pg!r}\t{lite!r}\n")

    def _one(self, db: Database, call: Call, args: dict[str, Any]) -> tuple[str, Any]:
        method = getattr(getattr(db, call.store), call.method)
        try:
            return "ok", normalise(self.run(_invoke(db, call, method, args)))
        except errors.DatabaseError as exc:
            return "error", type(exc)
        except Exception as exc:  # a raw driver error escaping is a mismatch by itself
            return "raw", f"{type(exc).__module__}.{type(exc).__name__}: {exc}"


#: Queries that delete from append-only tables run as retention does: in a transaction
#: that allowed deleting rows older than the cutoff argument named here.
RETENTION = {"DeleteAuditEventsBefore": "cutoff"}


async def _invoke(db: Database, call: Call, method: Any, args: dict[str, Any]) -> Any:
    cutoff = RETENTION.get(call.query)
    if cutoff is None:
        return await method(**args)
    async with db.transaction():
        await db.backend.allow_retention(args[cutoff])
        return await method(**args)


async def seed(db: Database) -> None:
    """The same parent rows on both backends before every example, so that calls whose
    foreign keys point at users, organizations, debates, cycles or memories can succeed
    (their keys come from ``KEY_STRINGS`` and small integers)."""
    from aragora_db.models import FindingSeverity, MemoryTier, UserRole

    for key in KEY_STRINGS[:2]:
        await db.users.create_user(
            id=key,
            email=f"{key}@example.com",
            password_hash="h",
            password_salt="s",
            name=key,
            org_id=None,
            role=UserRole.MEMBER,
        )
        await db.orgs.create_organization(
            id=key, name=key, slug=key, tier="free", owner_id=key, settings={}
        )
        await db.debates.insert_debate(
            id=key,
            slug=key,
            task=key,
            agents=[key],
            final_answer=None,
            consensus_reached=False,
            confidence=None,
            rounds_used=None,
            duration_seconds=None,
            grounded_verdict=None,
        )
        await db.continuum.add_memory(
            id=key,
            tier=MemoryTier.FAST,
            content=key,
            importance=0.5,
            surprise_score=0.0,
            metadata={},
            expires_at=None,
        )
        await db.workflows.create_workflow(
            id=key, org_id=None, name=key, definition={}, created_by=None
        )
        await db.policies.create_policy_rule(
            id=key, org_id=None, name=key, rule={}, severity=FindingSeverity.HIGH, enabled=True
        )
        for cycle in range(3):
            await db.nomic.save_cycle(
                loop_id=key,
                cycle_number=cycle,
                phase="debate",
                stage="",
                task_description=None,
                total_tasks=2,
            )


def _short(value: Any) -> str:
    text = repr(value)
    limit = int(os.environ.get("ARAGORA_DIFF_DETAIL", "300"))
    return text if len(text) < limit else text[:limit] + "..."
