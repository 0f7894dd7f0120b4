"""The columnar path of migrate-data against the row path it replaces for most tables.

The kernels are checked value by value against :mod:`aragora_repos.tools.convert` on
SQLite values of every storage class (hostile ones included), read through the columnar
reader itself; whole copies by both paths are compared row for row, reject for reject,
rule count for rule count, on PostgreSQL.
"""

from __future__ import annotations

import io
import json
import math
import sqlite3
import uuid
from collections import Counter
from datetime import UTC
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aragora_repos.tools.convert import Reject, TargetColumn, converter, sqlite_text
from aragora_repos.tools.migrate_data import Progress, migrate_data
from aragora_repos.tools.migrate_data.columnar import ColumnarReader, eligible
from aragora_repos.tools.migrate_data.plan import TablePlan
from aragora_repos.tools.migrate_data.source import _value_text
from tests.migrate_data.conftest import make_sqlite

#: Texts each kernel has a rule or a refusal for, besides random text.
TEXTS = [
    "true", "T", "no", "1", "0", "yes ", "",
    "2020-01-01 00:00:00", "2020-01-01T12:30", "2020-01-01T12:30:15.5", "2020-01-01",
    "2020-01-01T00:00:00+01:00", "2020-01-01T00:00:00Z", "2020-01-01 00:00:00-00:00",
    "2020-02-30 00:00:00", "2020-01-01 24:00:00", "2020-01-01T00:00:00.1234567",
    "0000-01-01 00:00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-02:00",
    "0000-06-01",
    "1600000000", "1600000000000", "-5", "1e3", "12.5", " 12", "NaN", "Infinity",
    '{"a": 1}', '{"b":1,"a":2}', '{"a": 1, "a": 2}', '[1, 2.50, 1e2]', "{broken", '"\\u0000"',
    '"\\ud800"', '"\\u00dc\\ud83d\\ude00"', '"a\\\\"', '{"k": "\\"q\\""}', "[" * 300 + "]" * 300,
    "x\x00y", "0123", "abcdef", "00000000-0000-0000-0000-000000000001",
    "{00000000-0000-0000-0000-000000000001}", "red",
]  # fmt: skip
KINDS = [
    TargetColumn("v", "int2", "smallint", False),
    TargetColumn("v", "int4", "integer", False),
    TargetColumn("v", "int8", "bigint", True),
    TargetColumn("v", "bool", "boolean", False),
    TargetColumn("v", "float4", "real", False),
    TargetColumn("v", "float8", "double precision", False),
    TargetColumn("v", "text", "text", False),
    TargetColumn("v", "varchar", "character varying(5)", False, (), 9),
    TargetColumn("v", "bytea", "bytea", False),
    TargetColumn("v", "json", "json", False),
    TargetColumn("v", "jsonb", "jsonb", False),
    TargetColumn("v", "timestamptz", "timestamp with time zone", False),
    TargetColumn("v", "timestamp", "timestamp without time zone", True),
    TargetColumn("v", "date", "date", False),
    TargetColumn("v", "uuid", "uuid", False),
    TargetColumn("v", "mood", "mood", False, ("red", "green")),
]
#: Rules the columnar path counts once the documents are stored (checked end to end).
STORED_RULES = {"json_respelled", "json_duplicate_keys"}

values = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, 2, -1, 32767, 32768, 2**31, 2**53 + 1, 1_600_000_000, -(10**11)]),
    st.sampled_from([-(2**63), 2**63 - 1, -(2**53), 2**53, 99_999_999_999, -99_999_999_999]),
    st.sampled_from([1_600_000_000_000, 10**14, -62_135_596_801]),
    st.floats(allow_nan=False),
    st.sampled_from([0.0, 1.0, 0.5, 1e300, math.inf, -math.inf]),
    st.sampled_from(TEXTS),
    st.text(max_size=12),
    st.datetimes(timezones=st.sampled_from([None, UTC])).map(lambda d: d.isoformat()),
    st.binary(max_size=20),
    st.sampled_from([b"\xff\xfe", b"ok", uuid.UUID(int=7).bytes]).map(lambda b: ("text", b)),
)


def _store(path: Path, rows: list[Any]) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
    for i, value in enumerate(rows, start=1):
        if isinstance(value, tuple):  # text that may not be UTF-8
            db.execute("INSERT INTO t VALUES (?, CAST(? AS TEXT))", (i, value[1]))
        else:
            db.execute("INSERT INTO t VALUES (?, ?)", (i, value))
    db.commit()
    db.close()


def _stored(path: Path) -> list[Any]:
    """The values as the row path reads them (text that is not UTF-8 marked)."""
    db = sqlite3.connect(path)
    db.text_factory = bytes
    out = []
    for kind, value in db.execute("SELECT typeof(v), v FROM t ORDER BY id"):
        out.append(sqlite_text(value) if kind == b"text" else value)
    db.close()
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(b, uuid.UUID):
        b = b.bytes
    if isinstance(a, str) and isinstance(b, str):  # JsonText is a str
        return a == b
    return type(a) is type(b) and bool(a == b)


def _check_kernel(path: Path, column: TargetColumn, batch_size: int) -> None:
    key = TargetColumn("id", "int8", "bigint", True)
    table = TablePlan("t", [key, column], ["rowid"], ["id"])
    assert eligible(path, table, False)
    reader = ColumnarReader(path, table, batch_size)
    try:
        batches = list(reader.batches(None))
    finally:
        reader.close()
    source = _stored(path)
    assert sum(b.read for b in batches) == len(source)
    row = 0
    for batch in batches:
        got = batch.values[1].to_pylist()
        for i in range(batch.read):
            value = source[row]
            row += 1
            applied: Counter[str] = Counter()
            try:
                expected = converter(column, applied)(value)
                reason = None
            except Reject as exc:
                expected, reason = None, str(exc)
            where = f"{column.type_name} value {value!r}"
            if reason is not None:
                assert batch.rejected.get(i) == ("v", reason, _value_text(value)), where
                continue
            assert i not in batch.rejected, (where, batch.rejected.get(i))
            assert _same(got[i], expected), (where, got[i], expected)
            rules = {rule for rule, mask in batch.rules[1].items() if mask[i]}
            assert rules - STORED_RULES == set(applied) - STORED_RULES, (where, rules, applied)


@pytest.mark.parametrize("column", KINDS, ids=[c.type_name for c in KINDS])
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(values, min_size=1, max_size=40), batch_size=st.sampled_from([3, 1000]))
def test_kernels_convert_as_the_converters_do(
    tmp_path: Path, column: TargetColumn, rows: list[Any], batch_size: int
) -> None:
    path = tmp_path / f"k{abs(hash(repr(rows)))}.db"
    _store(path, rows)
    try:
        _check_kernel(path, column, batch_size)
    finally:
        path.unlink()


@pytest.mark.parametrize("column", KINDS, ids=[c.type_name for c in KINDS])
def test_every_listed_text_and_class(tmp_path: Path, column: TargetColumn) -> None:
    """The listed texts, one column holding every storage class, in batches that each
    hold several classes (read again with a lane per class) and in one batch."""
    rows: list[Any] = [None, 0, 1, 2**40, -1.5, 1.0, b"\x00\x01", ("text", b"\xff")]
    rows += [-(2**63), 2**63 - 1, 2**53 + 1, -(10**14) + 1, 10**14, 99_999_999_999_999]
    rows += TEXTS
    _store(tmp_path / "all.db", rows)
    for batch_size in (4, 10_000):
        _check_kernel(tmp_path / "all.db", column, batch_size)


def test_tables_the_columnar_path_leaves_to_the_row_path(tmp_path: Path) -> None:
    path = make_sqlite(
        tmp_path / "s.db",
        "CREATE TABLE a (id INTEGER PRIMARY KEY, n NUMERIC);"
        "CREATE TABLE b (id TEXT PRIMARY KEY, v);"
        "CREATE TABLE c (id INT PRIMARY KEY, v);"
        "CREATE TABLE d (v);",
        {},
    )
    key = TargetColumn("id", "int8", "bigint", True)
    value = TargetColumn("v", "text", "text", False)
    numeric = TargetColumn("n", "numeric", "numeric", False)
    assert not eligible(path, TablePlan("a", [key, numeric], ["rowid"], ["id"]), False)
    assert not eligible(path, TablePlan("b", [value], ["rowid"], ["id"]), False)
    assert not eligible(path, TablePlan("c", [key, value], ["rowid"], ["id"]), False)  # INT
    assert not eligible(path, TablePlan("d", [value], ["rowid"], ["rowid"]), False)
    good = TablePlan("a", [key, value], ["rowid"], ["id"])
    assert eligible(path, good, False)
    assert not eligible(path, good, True)  # encrypted
    good.self_keys = ["a_parent_fkey"]
    assert not eligible(path, good, False)


# --- both paths, whole copies ------------------------------------------------------------

TARGET = """
CREATE TYPE mood AS ENUM ('red', 'green');
CREATE TABLE parents (id BIGINT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE items (
    id BIGINT PRIMARY KEY, parent_id BIGINT REFERENCES parents (id),
    label VARCHAR(8) CHECK (label <> 'refused'), active BOOLEAN NOT NULL, score REAL,
    ratio DOUBLE PRECISION, doc JSONB, raw JSON, at TIMESTAMPTZ, day DATE, token UUID,
    blob BYTEA, mood mood
);
"""
SOURCE = """
CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE items (id INTEGER PRIMARY KEY, parent_id INTEGER, label TEXT, active,
                    score REAL, ratio, doc TEXT, raw TEXT, at, day, token, blob, mood);
"""


def _items(n: int) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for i in range(1, n + 1):
        doc = [
            '{"b": 1, "a": 2}',
            '{"a": 1, "a": 2}',
            '{"k": "\\u00dc"}',
            '{"n": 1.50}',
            '{"deep": [1, {"x": null}]}',
            "{broken",
            '"\\u0000"',
        ][i % 7]
        out.append(
            (
                i,
                (i % 50) + 1 if i % 97 else 10_000,  # orphans
                ["ok", "refused", "too long label", "x\x00y", 7][i % 5],
                [0, 1, "t", "false", "maybe"][i % 5],
                [1.5, 2, "3.25", None][i % 4],
                [0.1, 2**60, "x", 1e308][i % 4],
                doc,
                doc if i % 3 else 12,
                ["2024-01-01 10:00:00", 1_700_000_000, "2024-01-01T00:00:00+02:00", "nope"][i % 4],
                ["2024-01-01", "2024-01-01 00:00:00", "2024-13-01", None][i % 4],
                [str(uuid.UUID(int=i)), uuid.UUID(int=i).bytes, "not-a-uuid"][i % 3],
                [b"\x00\x01", "text", None][i % 3],
                ["red", "green", "blue"][i % 3],
            )
        )
    return out


async def _copy(source: Path, dsn: str, columnar: bool, tmp: Path, **kw: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(TARGET)
    finally:
        await conn.close()
    rejects = tmp / f"rejects-{columnar}.jsonl"
    report = await migrate_data(
        source, dsn, batch_size=64, columnar=columnar, reject_file=rejects, **kw
    )
    conn = await asyncpg.connect(dsn)
    try:
        stored = {
            t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY id")]
            for t in ("parents", "items")
        }
    finally:
        await conn.close()
    return report, stored, rejects.read_text() if rejects.exists() else ""


@pytest.mark.postgres
async def test_both_paths_copy_the_same_rows_rules_and_rejects(
    tmp_path: Path, postgres_dsn: str
) -> None:
    from tests.pg_server import fresh_database, with_database

    parents = [(i, f"parent {i}" if i % 17 else None) for i in range(1, 51)]
    source = make_sqlite(tmp_path / "s.db", SOURCE, {"parents": parents, "items": _items(700)})
    results = []
    for columnar in (True, False):
        with fresh_database(with_database(postgres_dsn, "postgres")) as dsn:
            results.append(await _copy(source, dsn, columnar, tmp_path, verify=True))
    (fast, fast_rows, fast_rejects), (slow, slow_rows, slow_rejects) = results
    assert fast_rows == slow_rows
    assert fast_rejects == slow_rejects
    assert len(fast_rejects.splitlines()) > 300
    for name in ("parents", "items"):
        a, b = fast.tables[name], slow.tables[name]
        assert (a.migrated, a.errors, a.conversions) == (b.migrated, b.errors, b.conversions)
        assert a.verified is True and b.verified is True, (a.verify_detail, b.verify_detail)
    assert "read back" in (fast.tables["items"].verify_detail or "")
    rules = fast.tables["items"].conversions["doc"]
    assert set(rules) >= {
        "JSON respelled by jsonb (key order, spacing, number form; same document)",
        "JSON object with a repeated key: jsonb keeps the last value only",
    }
    reasons = {json.loads(line)["reason"][:5] for line in fast_rejects.splitlines()}
    assert "23514" in reasons  # the CHECK constraint: found by splitting the COPY
    assert "23503" in reasons  # orphans


@pytest.mark.postgres
async def test_verification_finds_rows_stored_otherwise(tmp_path: Path, target_dsn: str) -> None:
    """A trigger on the target changes what is stored: the read-back comparison of the
    columnar path reports it, for a plain column and for a jsonb document."""
    source = make_sqlite(
        tmp_path / "s.db",
        "CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT, doc TEXT);",
        {"parents": [(i, f"p{i}", '{"x": 1}') for i in range(1, 200)]},
    )
    conn = await asyncpg.connect(target_dsn)
    try:
        await conn.execute(
            "CREATE TABLE parents (id BIGINT PRIMARY KEY, name TEXT, doc JSONB);"
            "CREATE FUNCTION alter() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.id = 150 THEN NEW.name := upper(NEW.name); END IF; "
            "IF NEW.id = 20 THEN NEW.doc := '{\"x\": 2}'; END IF; RETURN NEW; END $$;"
            "CREATE TRIGGER alter BEFORE INSERT ON parents FOR EACH ROW EXECUTE FUNCTION alter();"
        )
    finally:
        await conn.close()
    report = await migrate_data(source, target_dsn, batch_size=50, verify=True)
    table = report.tables["parents"]
    assert table.verified is False
    detail = table.verify_detail or ""
    assert "1 batches stored differently from what was sent" in detail, detail
    assert "1 jsonb documents stored with another meaning" in detail, detail
    same = await migrate_data(source, target_dsn, batch_size=50, verify=True, restart=True)
    assert same.tables["parents"].migrated == 0  # the rows are there: skipped


@pytest.mark.postgres
async def test_a_resumed_copy_verifies_the_rows_of_earlier_runs(
    tmp_path: Path, target_dsn: str
) -> None:
    """The first run stops after six committed batches; the second copies the rest and
    reads the earlier rows back too."""
    source = make_sqlite(
        tmp_path / "s.db",
        "CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT, at, doc TEXT);",
        {"parents": [(i, f"p{i}", 1_700_000_000 + i, '{"b": 1, "a": 2}') for i in range(1, 1001)]},
    )
    conn = await asyncpg.connect(target_dsn)
    try:
        await conn.execute(
            "CREATE TABLE parents (id BIGINT PRIMARY KEY, name TEXT, at TIMESTAMPTZ, doc JSONB)"
        )
    finally:
        await conn.close()

    class Stop(Progress):
        def advance(self, rows: int) -> None:
            super().advance(rows)
            if self.done >= 500:
                raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        await migrate_data(source, target_dsn, batch_size=100, progress=Stop(io.StringIO()))
    conn = await asyncpg.connect(target_dsn)
    try:
        earlier = await conn.fetchval("SELECT count(*) FROM parents")
    finally:
        await conn.close()
    assert 500 <= earlier < 1000
    report = await migrate_data(source, target_dsn, batch_size=100, verify=True)
    table = report.tables["parents"]
    assert table.verified is True, table.verify_detail
    assert f"{earlier:,} rows of earlier runs" in (table.verify_detail or "")
    assert table.migrated == 1000 - earlier
    assert table.conversions["doc"] == {
        "JSON respelled by jsonb (key order, spacing, number form; same document)": 1000
    }


def test_rows_arrive_in_rowid_order_batch_after_batch(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    _store(path, list(range(1, 30)))
    key = TargetColumn("id", "int8", "bigint", True)
    table = TablePlan("t", [key, TargetColumn("v", "int8", "bigint", False)], ["rowid"], ["id"])
    reader = ColumnarReader(path, table, 7)
    try:
        keys = [int(k) for b in reader.batches(None) for k in b.keys]
    finally:
        reader.close()
    assert keys == list(range(1, 30))


@pytest.mark.postgres
async def test_hostile_names_and_paths_take_the_columnar_path(
    tmp_path: Path, target_dsn: str
) -> None:
    """A source file whose path holds a space, ``?``, ``#`` and a quote, and a table and
    columns whose names hold quotes and a newline: read, written and read back."""
    folder = tmp_path / "a b?c#d'e"
    folder.mkdir()
    table, text, doc = 'we"ird\ntable', "co'l\"umn", 'd"oc'
    q = '"' + table.replace('"', '""') + '"'
    qt, qd = '"' + text.replace('"', '""') + '"', '"' + doc.replace('"', '""') + '"'
    source = make_sqlite(
        folder / "s.db",
        f"CREATE TABLE {q} (id INTEGER PRIMARY KEY, {qt} TEXT, {qd} TEXT);",
        {},
    )
    db = sqlite3.connect(source)
    db.executemany(
        f"INSERT INTO {q} VALUES (?, ?, ?)",
        [(i, f"v'{i}\"\n", '{"b": 1, "a": "x\\"y"}') for i in range(1, 301)],
    )
    db.commit()
    db.close()
    conn = await asyncpg.connect(target_dsn)
    try:
        await conn.execute(f"CREATE TABLE {q} (id BIGINT PRIMARY KEY, {qt} TEXT, {qd} JSONB)")
    finally:
        await conn.close()
    report = await migrate_data(source, target_dsn, batch_size=64, verify=True)
    result = report.tables[table]
    assert (result.migrated, result.errors, result.verified) == (300, 0, True)
    assert "read back" in (result.verify_detail or "")
    conn = await asyncpg.connect(target_dsn)
    try:
        assert await conn.fetchval(f"SELECT {qt} FROM {q} WHERE id = 7") == "v'7\"\n"
        assert await conn.fetchval(f"SELECT {qd}::text FROM {q} WHERE id = 7") == (
            '{"a": "x\\"y", "b": 1}'
        )
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_a_second_run_of_the_same_source_is_refused_while_one_runs(
    tmp_path: Path, target_dsn: str
) -> None:
    """Two runs of one source at once recorded each other's rows as duplicate rejects
    (found by running two processes); the second is now refused, by name, and nothing
    of it is written. The lock is the first run's, held here as a run holds it."""
    from aragora_repos import errors
    from aragora_repos.tools.migrate_data.target import run_lock_name

    source = make_sqlite(
        tmp_path / "s.db",
        "CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT);",
        {"parents": [(i, f"p{i}") for i in range(1, 101)]},
    )
    conn = await asyncpg.connect(target_dsn)
    holder = await asyncpg.connect(target_dsn)
    try:
        await conn.execute("CREATE TABLE parents (id BIGINT PRIMARY KEY, name TEXT)")
        await holder.execute("BEGIN")
        assert await holder.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))",
            run_lock_name(str(source.resolve())),
        )
        with pytest.raises(errors.MigrationError, match="another run is copying"):
            await migrate_data(source, target_dsn)
        assert await conn.fetchval("SELECT count(*) FROM parents") == 0
        assert await conn.fetchval("SELECT to_regclass('aragora_migrate.progress')") is None
        await holder.execute("ROLLBACK")  # the first run ends
        report = await migrate_data(source, target_dsn, verify=True)
        assert (report.tables["parents"].migrated, report.verified) == (100, True)
        # Each run's lock ends with it: a second run after the first is not refused.
        again = await migrate_data(source, target_dsn)
        assert again.tables["parents"].migrated == 0
    finally:
        await holder.close()
        await conn.close()


@pytest.mark.postgres
async def test_without_the_columnar_packages_every_table_takes_the_row_path(
    tmp_path: Path, target_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aragora_repos.tools.migrate_data import run

    monkeypatch.setattr(run, "columnar_available", False)
    source = make_sqlite(
        tmp_path / "s.db",
        "CREATE TABLE parents (id INTEGER PRIMARY KEY, name TEXT);",
        {"parents": [(i, f"p{i}") for i in range(1, 51)]},
    )
    conn = await asyncpg.connect(target_dsn)
    try:
        await conn.execute("CREATE TABLE parents (id BIGINT PRIMARY KEY, name TEXT)")
    finally:
        await conn.close()
    report = await migrate_data(source, target_dsn, verify=True)
    table = report.tables["parents"]
    assert (table.migrated, table.verified) == (50, True)
    assert "checksum" in (table.verify_detail or "")  # the row path's verification
