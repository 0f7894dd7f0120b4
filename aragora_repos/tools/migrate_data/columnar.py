"""The columnar copy path: SQLite read into Arrow batches, converted by vectorised kernels.

SQLite gives each value its own storage class. A table is read in one pass with each
column in the class of its first value and a flag per row saying whether all its values
are of their column's class (or NULL); a batch holding a row that is not is read again
with one Arrow array per storage class (a *lane*: integer, real, text, blob) each column
holds in that range (:class:`ColumnarReader`). Text is checked as UTF-8 in bulk. Each
kernel takes the values of the lanes it can convert exactly as
:mod:`aragora_repos.tools.convert` would (same result, same rule) and leaves the rest
*undecided*; undecided values go through that module's converter one by one, so a
value's result, its rule or its reject reason never depends on the path. The rules
applied are kept as a mask per rule, so a row that is rejected later (an orphan, a row
PostgreSQL refuses) takes its rules back out.

The path is taken for plain (unencrypted) sources, tables whose rows are keyed by an
``INTEGER PRIMARY KEY`` (the rowid: the position and the key are one integer), no foreign
key to themselves, and columns of the types :mod:`.pgcopy` writes; everything else keeps
the row path.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import adbc_driver_sqlite.dbapi
    import msgspec
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from aragora_repos.tools.migrate_data import pgcopy
except ImportError:  # the ``columnar`` extra is not installed: every table takes the row path
    AVAILABLE = False
else:
    AVAILABLE = True

from aragora_repos.backends.sqlite.files import connect_read_only, read_only_uri
from aragora_repos.tools.convert import (
    INT_RANGES,
    Reject,
    TargetColumn,
    converter,
    sqlite_text,
)
from aragora_repos.tools.migrate_data.plan import TablePlan
from aragora_repos.tools.migrate_data.state import RejectRow, quote

CLASSES = ("integer", "real", "text", "blob")
#: The Arrow type the driver gives each storage class.
_ARROW_CLASS = (
    {
        "integer": pa.int64(),
        "real": pa.float64(),
        "text": pa.string(),
        "blob": pa.binary(),
    }
    if AVAILABLE
    else {}
)
_SENTINEL = {"integer": "0", "real": "0.0", "text": "''", "blob": "x''"}

#: Timestamp texts the vectorised kernel takes; any other form goes to the converter.
_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
_NAIVE = re.compile(rf"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[ T]{_CLOCK}$").pattern
_ZONED = re.compile(
    rf"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[ T]{_CLOCK}(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
).pattern
_UTC_SUFFIX = r"(?:Z|[+-]00:00)$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: Epoch values the kernel converts, as the converter's limits (seconds below 1e11,
#: milliseconds below 1e14) and the range of Python's datetime.
_MIN_US = -62_135_596_800_000_000  # 0001-01-01
_MAX_US = 253_402_300_799_999_999  # 9999-12-31 23:59:59.999999
_TRUE = ["true", "t", "yes", "y", "on", "1"]
_FALSE = ["false", "f", "no", "n", "off", "0"]
#: Escapes the converter checks itself: \\u0000 (jsonb refuses it) and surrogates (a
#: lone one cannot be stored as UTF-8); documents holding one go to the converter.
_JSON_ESCAPES = r"\\u(?:0000|[dD][89a-fA-F])"
#: JSON nested deeper than this is left to the converter (Python's parser has a limit).
_JSON_DEPTH = 200


def eligible(path: Path, table: TablePlan, encrypted: bool) -> bool:
    """Whether ``table`` can take the columnar path (see the module docstring)."""
    if (
        not AVAILABLE
        or encrypted
        or table.self_keys
        or table.order_by != ["rowid"]
        or len(table.key_columns) != 1
    ):
        return False
    if any(c.type_name not in pgcopy.SUPPORTED and not c.enum_labels for c in table.columns):
        return False
    key = table.key_columns[0]
    key_column = next((c for c in table.columns if c.name == key), None)
    if key_column is None or key_column.type_name not in INT_RANGES:
        return False
    db = connect_read_only(path)
    try:
        info = db.execute(f"PRAGMA table_info({quote(table.name)})").fetchall()
    finally:
        db.close()
    pk = [r for r in info if r[5]]
    return len(pk) == 1 and pk[0][1] == key and str(pk[0][2]).upper() == "INTEGER"


def kind_of(column: TargetColumn) -> str:
    return "text" if column.enum_labels else column.type_name


@dataclass(slots=True)
class ColumnarBatch:
    """A converted batch: every row read is still here, the rejected ones marked."""

    keys: np.ndarray[Any, Any]
    """The rowid (= key) of each row, ascending."""
    values: list[pa.Array]
    """Each column converted, in the target's Arrow type (NULL where rejected)."""
    rejected: dict[int, tuple[str, str, str | None]]
    """Row index -> (column, reason, value) of the first column that rejected it."""
    rules: list[dict[str, np.ndarray[Any, Any]]]
    """Per column: rule -> the rows it was applied to."""
    read: int = 0
    last_key: int | None = None
    texts: dict[int, np.ndarray[Any, Any]] = field(default_factory=dict)
    """jsonb columns (by index) -> the rows whose documents' rules are counted once
    stored (respelled, repeated keys): those the kernel validated."""

    def reject_rows(self) -> list[RejectRow]:
        return [
            (json.dumps(int(self.keys[i])), json.dumps(int(self.keys[i])), column, reason, value)
            for i, (column, reason, value) in sorted(self.rejected.items())
        ]

    def counts(self, kept: np.ndarray[Any, Any]) -> list[Counter[str]]:
        """The rules applied to the ``kept`` rows, per column."""
        return [
            Counter({rule: int(np.count_nonzero(mask & kept)) for rule, mask in rules.items()})
            for rules in self.rules
        ]

    def kept(self) -> np.ndarray[Any, Any]:
        mask = np.ones(len(self.keys), dtype=bool)
        if self.rejected:
            mask[list(self.rejected)] = False
        return mask


class ColumnarReader:
    """Reads one table in rowid order as Arrow batches (ADBC's SQLite driver), from one
    thread.

    ADBC's SQLite driver types a result column by its first rows, and later values of
    another storage class are widened (an integer in a text column arrives as text) or
    fail the read. So the table is read in one pass with each column in the class its
    first value has, plus a flag per row telling whether every value of the row is of
    its column's class (or NULL); a batch with a row that is not is read again with one
    lane per storage class its columns hold in that range. A read the driver fails
    (an integer column meeting text, say) continues the same way from the batch it
    failed on."""

    def __init__(
        self, path: Path, table: TablePlan, batch_size: int, batch_bytes: int | None = None
    ) -> None:
        self.path = path
        self.table = table
        self.batch_size = batch_size
        self.db = adbc_driver_sqlite.dbapi.connect(read_only_uri(path))
        self.batch_bytes = batch_bytes
        self.sized = False
        """Each batch's rows are chosen by their sizes first (see :meth:`_cut`)."""
        if batch_bytes is not None:
            # A batch holds at most batch_bytes at the table's mean row size, taken as
            # the file's size over the table's rows: enough unless large rows cluster.
            self.batch_size = min(batch_size, max(1, batch_bytes // _mean_row_bytes(path, table)))
            # The largest record of the table (SQLite's dbstat walks the table's pages,
            # not its rows): when a batch of such rows could pass the budget, each batch
            # is cut by the sizes of its rows before it is read.
            largest = self._largest_record()
            self.sized = largest is None or largest * self.batch_size > batch_bytes
        self.kinds = [kind_of(c) for c in table.columns]
        self.expected = _first_classes(path, table)
        self.exceptional = 0
        """Batches read again with a lane per class."""

    def close(self) -> None:
        self.db.close()

    def _stream(self, sql: str, rows: int) -> Iterator[pa.RecordBatch]:
        cursor = self.db.cursor()
        try:
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(rows)})
            cursor.execute(sql)
            # The driver's batches hold ``rows`` rows, the first one the row that set the
            # types: batches of exactly ``rows`` rows are cut across them.
            held: list[pa.RecordBatch] = []
            count = 0
            first = True
            for record_batch in cursor.fetch_record_batch():
                if first:
                    record_batch = record_batch.slice(1)
                    first = False
                while record_batch.num_rows:
                    take = min(rows - count, record_batch.num_rows)
                    held.append(record_batch.slice(0, take))
                    record_batch = record_batch.slice(take)
                    count += take
                    if count == rows:
                        yield _joined(held)
                        held, count = [], 0
            if count:
                yield _joined(held)
        finally:
            cursor.close()

    def _select(self, lanes: list[tuple[str, ...]], where: list[str], flag: str | None) -> str:
        selected: list[str] = []
        sentinels: list[str] = []
        for column, classes in zip(self.table.columns, lanes, strict=True):
            ref = quote(column.name)
            for kind in classes or ("integer",):
                expr = (
                    ref
                    if len(classes) <= 1
                    else f"CASE WHEN typeof({ref}) = '{kind}' THEN {ref} END"
                )
                selected.append(expr)
                sentinels.append(_SENTINEL[kind])
        head = "0, 0" + (", 1" if flag is not None else "")
        body = "1, rowid" + (f", {flag}" if flag is not None else "")
        return (
            f"SELECT {head}, {', '.join(sentinels)} UNION ALL SELECT * FROM "
            f"(SELECT {body}, {', '.join(selected)} FROM {quote(self.table.name)}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY rowid)"
        )

    def _exact(self, after: int | None, upto: int | None, limit: int | None) -> ColumnarBatch:
        """The rows after ``after`` (up to ``upto``, or the next ``limit``), read with a
        lane per storage class each column holds among them."""
        self.exceptional += 1
        where = _range(after, upto)
        if limit is not None:
            last = self.db.cursor()
            try:
                last.execute(
                    f"SELECT max(rowid) FROM (SELECT rowid FROM {quote(self.table.name)}"
                    + (f" WHERE {' AND '.join(where)}" if where else "")
                    + f" ORDER BY rowid LIMIT {int(limit)})"
                )
                found = last.fetchone()
            finally:
                last.close()
            upto = int(found[0]) if found and found[0] is not None else after
            where = _range(after, upto)
        lanes = _scan_lanes(self.path, self.table, where)
        parts = list(self._stream(self._select(lanes, where, None), self.batch_size))
        if not parts:
            return ColumnarBatch(np.zeros(0, dtype=np.int64), [], {}, [])
        return self.convert(_joined(parts), lanes, 2)

    def _largest_record(self) -> int | None:
        """The largest record of the table in bytes; None when dbstat cannot tell."""
        cursor = self.db.cursor()
        try:
            cursor.execute(
                "SELECT mx_payload FROM dbstat('main', 1) WHERE name = ?", (self.table.name,)
            )
            found = cursor.fetchone()
        except Exception:  # dbstat compiled out of the driver's SQLite: cut every batch
            return None
        finally:
            cursor.close()
        return int(found[0]) if found and found[0] is not None else 0

    def _cut(self, after: int | None, upto: int | None) -> int | None:
        """The rowid that ends the next batch: the rows after ``after`` (not after
        ``upto``, at most ``batch_size``) whose values' bytes together stay within the
        budget, and at least one row; None when no row is left."""
        assert self.batch_bytes is not None
        where = _range(after, upto)
        size = " + ".join(f"ifnull(octet_length({quote(c.name)}), 0)" for c in self.table.columns)
        cursor = self.db.cursor()
        try:
            # octet_length reads a value's size from its record header, not its content.
            cursor.execute(
                "SELECT coalesce(max(CASE WHEN running <= ? THEN rowid END), min(rowid)) FROM "
                "(SELECT rowid, sum(size) OVER (ORDER BY rowid ROWS UNBOUNDED PRECEDING) "
                f"AS running FROM (SELECT rowid, {size or '0'} AS size FROM "
                f"{quote(self.table.name)}"
                + (f" WHERE {' AND '.join(where)}" if where else "")
                + f" ORDER BY rowid LIMIT {int(self.batch_size)}))",
                (self.batch_bytes,),
            )
            found = cursor.fetchone()
        finally:
            cursor.close()
        return int(found[0]) if found and found[0] is not None else None

    def batches(self, after: int | None, upto: int | None = None) -> Iterator[ColumnarBatch]:
        """Converted batches of the rows after ``after`` (and not after ``upto``)."""
        if not self.sized:
            yield from self._batches(after, upto)
            return
        previous = after
        while (cut := self._cut(previous, upto)) is not None:
            yield from self._batches(previous, cut)
            previous = cut

    def _batches(self, after: int | None, upto: int | None) -> Iterator[ColumnarBatch]:
        flag = " AND ".join(
            f"typeof({quote(c.name)}) IN ('{kind or 'null'}', 'null')"
            for c, kind in zip(self.table.columns, self.expected, strict=True)
        )
        lanes: list[tuple[str, ...]] = [(k,) if k is not None else () for k in self.expected]
        previous = after
        while True:
            sql = self._select(lanes, _range(previous, upto), f"({flag})")
            try:
                for record_batch in self._stream(sql, self.batch_size):
                    keys = record_batch.column(1).to_numpy()
                    if (previous is not None and keys[0] <= previous) or (
                        len(keys) > 1 and not (np.diff(keys) > 0).all()
                    ):
                        raise RuntimeError(f"{self.table.name}: rows read out of rowid order")
                    last = int(keys[-1])
                    typed = all(
                        record_batch.column(3 + i).type == _ARROW_CLASS[kind or "integer"]
                        for i, kind in enumerate(self.expected)
                    )
                    if typed and pc.all(record_batch.column(2).cast(pa.bool_())).as_py():
                        yield self.convert(record_batch, lanes, 3)
                        previous = last
                        continue
                    yield self._exact(previous, last, None)
                    previous = last
                    if not typed:  # the driver typed a column by other values: start over
                        break
                else:
                    return
                continue
            except OSError as exc:  # the driver refused a value of another class
                if "Type mismatch" not in str(exc):
                    raise
            batch = self._exact(previous, upto, self.batch_size)
            if not batch.read:
                return
            yield batch
            previous = batch.last_key

    def convert(
        self, record_batch: pa.RecordBatch, lanes: list[tuple[str, ...]], at: int
    ) -> ColumnarBatch:
        keys = record_batch.column(1).to_numpy()
        n = len(keys)
        values: list[pa.Array] = []
        rules: list[dict[str, np.ndarray[Any, Any]]] = []
        rejected: dict[int, tuple[str, str, str | None]] = {}
        texts: dict[int, np.ndarray[Any, Any]] = {}
        for i, column in enumerate(self.table.columns):
            classes = lanes[i] or ("integer",)
            columns = {kind: record_batch.column(at + j) for j, kind in enumerate(classes)}
            at += len(classes)
            converted = convert_column(column, columns, n)
            for row, reason in converted.rejected.items():
                rejected.setdefault(row, (column.name, *reason))
            values.append(converted.values)
            rules.append(converted.rules)
            if converted.later is not None:
                texts[i] = converted.later
        batch = ColumnarBatch(keys, values, rejected, rules, read=n)
        batch.last_key = int(keys[-1]) if n else None
        batch.texts = texts
        return batch


def _joined(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(parts) == 1:
        return parts[0]
    joined: pa.RecordBatch = pa.Table.from_batches(parts).combine_chunks().to_batches()[0]
    return joined


def _range(after: int | None, upto: int | None) -> list[str]:
    where = []
    if after is not None:
        where.append(f"rowid > {int(after)}")
    if upto is not None:
        where.append(f"rowid <= {int(upto)}")
    return where


def _mean_row_bytes(path: Path, table: TablePlan) -> int:
    db = connect_read_only(path)
    try:
        pages, size = (db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
        rows = db.execute(f"SELECT count(*) FROM {quote(table.name)}").fetchone()[0]
    finally:
        db.close()
    return max(1, int(pages) * int(size) // max(1, int(rows)))


def _first_classes(path: Path, table: TablePlan) -> list[str | None]:
    """The storage class of each column's first non-NULL value (None: no value)."""
    probes = [
        f"(SELECT typeof({quote(c.name)}) FROM {quote(table.name)} "
        f"WHERE {quote(c.name)} IS NOT NULL LIMIT 1)"
        for c in table.columns
    ]
    db = connect_read_only(path)
    try:
        row = db.execute(f"SELECT {', '.join(probes)}").fetchone()
    finally:
        db.close()
    return list(row)


def _scan_lanes(path: Path, table: TablePlan, where: list[str]) -> list[tuple[str, ...]]:
    """The storage classes each column holds, from one scan of the table: the least and
    the greatest class name per column (``blob < integer < real < text``), and for a
    column whose two leave a class between them undecided, a second look at it alone.
    The key (an ``INTEGER PRIMARY KEY``) holds integers only."""
    key = table.key_columns[0]
    scanned = [c.name for c in table.columns if c.name != key]
    found: dict[str, tuple[str, ...]] = {key: ("integer",)}
    db = connect_read_only(path)
    try:
        if scanned:
            probes = [
                f"{f}(nullif(typeof({quote(c)}), 'null'))" for c in scanned for f in ("min", "max")
            ]
            scope = f"FROM {quote(table.name)}" + (f" WHERE {' AND '.join(where)}" if where else "")
            row = db.execute(f"SELECT {', '.join(probes)} {scope}").fetchone()
            unsure = []
            for i, name in enumerate(scanned):
                low, high = row[2 * i], row[2 * i + 1]
                if low is None:
                    found[name] = ()
                    continue
                between = tuple(k for k in _ORDER if low <= k <= high)
                if len(between) <= 2:
                    found[name] = tuple(k for k in CLASSES if k in (low, high))
                else:
                    unsure.append(name)
            if unsure:
                middle = [f"max(typeof({quote(c)}) = '{kind}')" for c in unsure for kind in CLASSES]
                row = db.execute(f"SELECT {', '.join(middle)} {scope}").fetchone()
                for i, name in enumerate(unsure):
                    found[name] = tuple(k for j, k in enumerate(CLASSES) if row[4 * i + j])
    finally:
        db.close()
    return [found[c.name] for c in table.columns]


#: The storage classes in the order of their names.
_ORDER = ("blob", "integer", "real", "text")


@dataclass(slots=True)
class Converted:
    values: pa.Array
    rules: dict[str, np.ndarray[Any, Any]]
    rejected: dict[int, tuple[str, str | None]]
    later: np.ndarray[Any, Any] | None = None
    """jsonb: the rows whose rules are counted once stored (respelled, repeated keys)."""


def present(array: pa.Array) -> np.ndarray[Any, Any]:
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    if array.null_count == len(array):
        return np.zeros(len(array), dtype=bool)
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _bools(array: pa.Array) -> np.ndarray[Any, Any]:
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


class _Column:
    """One column's conversion in progress: decided rows with their values and rules,
    the rest undecided."""

    def __init__(self, column: TargetColumn, lanes: dict[str, pa.Array], n: int) -> None:
        self.column = column
        self.lanes = lanes
        self.n = n
        self.type = pgcopy.arrow_type(kind_of(column))
        self.present = {kind: present(lane) for kind, lane in lanes.items()}
        self.undecided = np.zeros(n, dtype=bool)
        for mask in self.present.values():
            self.undecided |= mask
        if column.not_null:  # NULL in a NOT NULL column: the converter's reject
            self.undecided |= ~np.logical_or.reduce(list(self.present.values()))
        self.parts: list[tuple[np.ndarray[Any, Any], pa.Array]] = []
        self.rules: dict[str, np.ndarray[Any, Any]] = {}
        self._text: pa.Array | None = None
        self._text_ok: bool | None = None
        self.later: np.ndarray[Any, Any] | None = None

    def text(self) -> pa.Array | None:
        """The text lane as strings, when all of it is UTF-8 (else None: undecided)."""
        if self._text_ok is None:
            lane = self.lanes.get("text")
            self._text_ok = False
            if lane is not None:
                try:
                    self._text = lane.cast(pa.string())
                    self._text.validate(full=True)
                    self._text_ok = True
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    self._text = None
        return self._text if self._text_ok else None

    def take(self, mask: np.ndarray[Any, Any], values: pa.Array, rule: str | None = None) -> None:
        """Rows ``mask`` (still undecided) are decided: ``values`` (full length), ``rule``."""
        mask = mask & self.undecided
        if not mask.any():
            return
        self.undecided &= ~mask
        self.parts.append((mask, values))
        if rule is not None:
            self.rules[rule] = self.rules.get(rule, np.zeros(self.n, dtype=bool)) | mask

    def finish(self) -> Converted:
        rejected: dict[int, tuple[str, str | None]] = {}
        values: pa.Array = pa.nulls(self.n, self.type)
        for mask, part in self.parts:
            chosen = pa.array(mask)
            part = pc.if_else(chosen, part, pa.scalar(None, part.type)).cast(self.type)
            values = pc.if_else(chosen, part, values)
        rows = np.flatnonzero(self.undecided)
        if len(rows):
            values = self._by_converter(rows, values, rejected)
        return Converted(values, self.rules, rejected, self.later)

    def _by_converter(
        self,
        rows: np.ndarray[Any, Any],
        values: pa.Array,
        rejected: dict[int, tuple[str, str | None]],
    ) -> pa.Array:
        from aragora_repos.tools.migrate_data.source import _value_text

        python: list[Any] = [None] * len(rows)
        for kind, lane in self.lanes.items():
            if kind == "text":
                lane = lane.cast(pa.binary())  # its bytes: not all of it may be UTF-8
            taken = lane.take(pa.array(rows)).to_pylist()
            for j, value in enumerate(taken):
                if value is not None:
                    python[j] = sqlite_text(value) if kind == "text" else value
        out: list[Any] = []
        for j, value in enumerate(python):
            applied: Counter[str] = Counter()
            try:
                result = converter(self.column, applied)(value)
            except Reject as exc:
                rejected[int(rows[j])] = (str(exc), _value_text(value))
                out.append(None)
                continue
            for rule in applied:
                mask = self.rules.setdefault(rule, np.zeros(self.n, dtype=bool))
                mask[rows[j]] = True
            if kind_of(self.column) == "uuid" and result is not None:
                result = result.bytes
            out.append(result)
        mask = np.zeros(self.n, dtype=bool)
        mask[rows] = True
        replacement = pa.array(out, type=self.type)
        return pc.replace_with_mask(values, pa.array(mask), replacement)


def convert_column(column: TargetColumn, lanes: dict[str, pa.Array], n: int) -> Converted:
    """``column``'s values from its lanes, as :func:`convert.converter` converts them."""
    work = _Column(column, lanes, n)
    kind = column.type_name
    integer = lanes.get("integer")
    real = lanes.get("real")
    if column.enum_labels or kind in ("float4", "date", "uuid"):
        pass  # every value through the converter
    elif kind in INT_RANGES:
        if integer is not None:
            low, high = INT_RANGES[kind]
            inside = _bools(pc.and_(pc.greater_equal(integer, low), pc.less_equal(integer, high)))
            work.take(inside, integer)
    elif kind == "bool":
        if integer is not None:
            work.take(_bools(pc.is_in(integer, pa.array([0, 1]))), pc.equal(integer, 1), "bool_int")
        text = work.text()
        if text is not None:
            lowered = pc.utf8_lower(text)
            known = _bools(pc.is_in(lowered, pa.array(_TRUE + _FALSE)))
            work.take(known, pc.is_in(lowered, pa.array(_TRUE)), "bool_text")
    elif kind == "float8":
        if real is not None:
            work.take(work.present["real"], real)
        if integer is not None:
            exact = _bools(
                pc.and_(pc.greater_equal(integer, -(2**53)), pc.less_equal(integer, 2**53))
            )
            work.take(exact, integer, "real_int")
    elif kind in ("text", "varchar"):
        limit = column.typmod - 4 if kind == "varchar" and column.typmod >= 4 else None
        text = work.text()
        if text is not None:
            work.take(_fits(text, limit), text)
        if integer is not None:
            as_text = integer.cast(pa.string())
            work.take(_fits(as_text, limit), as_text, "text_int")
    elif kind == "bytea":
        blob = lanes.get("blob")
        if blob is not None:
            work.take(work.present["blob"], blob)
        text = work.text()
        if text is not None:
            work.take(work.present["text"], lanes["text"], "blob_text")
    elif kind in ("json", "jsonb"):
        text = work.text()
        if text is not None:
            valid = _json_valid(text) & work.undecided
            work.take(valid, text)
            if kind == "jsonb":
                work.later = valid
        if integer is not None:
            work.take(work.present["integer"], integer.cast(pa.string()), "json_number")
    elif kind in ("timestamptz", "timestamp"):
        _timestamps(work, kind == "timestamptz")
    return work.finish()


def _fits(text: pa.Array, limit: int | None) -> np.ndarray[Any, Any]:
    """Texts with no NUL (and within ``limit`` characters)."""
    ok: np.ndarray[Any, Any] = ~_bools(pc.match_substring(text, "\x00")) & present(text)
    if limit is not None:
        ok &= _bools(pc.less_equal(pc.utf8_length(text), limit))
    return ok


def _json_valid(text: pa.Array) -> np.ndarray[Any, Any]:
    """Documents the converter accepts unchanged: no escape that needs its checks (NUL,
    surrogates), no NUL, not deeply nested, and parsed by a strict JSON parser."""
    candidate: np.ndarray[Any, Any] = present(text)
    candidate &= ~_bools(pc.match_substring_regex(text, _JSON_ESCAPES))
    candidate &= ~_bools(pc.match_substring(text, "\x00"))
    # Python's parser refuses integers of more than 4,300 digits: long documents are
    # left to the converter, which says so.
    candidate &= _bools(pc.less(pc.binary_length(text), 4000))
    depth = pc.add(pc.count_substring(text, "["), pc.count_substring(text, "{"))
    candidate &= _bools(pc.less(depth, _JSON_DEPTH))
    rows = np.flatnonzero(candidate)
    decode = msgspec.json.decode
    documents = text.take(pa.array(rows)).to_pylist()
    try:
        for document in documents:
            decode(document)
    except (msgspec.DecodeError, RecursionError):
        for j, document in enumerate(documents):
            try:
                decode(document)
            except (msgspec.DecodeError, RecursionError):
                candidate[rows[j]] = False
    return candidate


def _timestamps(work: _Column, zoned: bool) -> None:
    stamp = pa.timestamp("us", tz="UTC") if zoned else pa.timestamp("us")
    text = work.text()
    if text is not None:
        for pattern, rule, zone in (
            (_DATE, "ts_date", False),
            (_NAIVE, "ts_naive", False),
            (_ZONED, None, True),
        ):
            mask = _bools(pc.match_substring_regex(text, pattern)) & work.undecided
            if not mask.any():
                continue
            picked = pc.if_else(pa.array(mask), text, pa.scalar(None, pa.string()))
            try:
                parsed = pc.cast(
                    picked, pa.timestamp("us", tz="UTC") if zone else pa.timestamp("us")
                )
            except pa.ArrowInvalid:
                continue  # a day that does not exist, say: the converter says which
            micros = parsed.cast(pa.int64())
            # Arrow reads year 0 and UTC instants past year 9999; Python's datetime,
            # hence the converter, refuses them: they are left to it.
            raw = micros.fill_null(0).to_numpy()
            mask &= (raw >= _MIN_US) & (raw <= _MAX_US)
            if zone:
                utc = _bools(pc.match_substring_regex(text, _UTC_SUFFIX))
                work.take(mask & utc, micros.cast(stamp))
                work.take(mask & ~utc, micros.cast(stamp), "ts_zone")
            else:
                work.take(mask, micros.cast(stamp), rule)
    integer = work.lanes.get("integer")
    if integer is not None:
        raw = integer.fill_null(0).to_numpy()
        ok = present(integer)
        # Bounds without abs(): abs() of the least int64 overflows.
        seconds = ok & (raw > -100_000_000_000) & (raw < 100_000_000_000)
        millis = ok & (raw > -100_000_000_000_000) & (raw < 100_000_000_000_000) & ~seconds
        for mask, scale, rule in (
            (seconds, 1_000_000, "ts_epoch_s"),
            (millis, 1000, "ts_epoch_ms"),
        ):
            micros = np.where(mask, raw, 0) * scale
            inside = mask & (micros >= _MIN_US) & (micros <= _MAX_US)
            work.take(inside, pa.array(micros, pa.int64()).cast(stamp), rule)


def _strings(text: pa.Array) -> np.ndarray[Any, Any]:
    """How many quote characters delimit strings in each JSON text (twice the number of
    its strings, keys included): escaped backslashes taken out, escaped quotes not
    counted."""
    plain = pc.replace_substring(text, "\\\\", "")
    quotes = pc.subtract(pc.count_substring(plain, '"'), pc.count_substring(plain, '\\"'))
    return np.asarray(quotes.fill_null(0).to_numpy(zero_copy_only=False))


def json_rules(
    sent: pa.Array, stored: pa.Array, rows: np.ndarray[Any, Any], *, compare: bool
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], int]:
    """Of the jsonb documents sent at ``rows`` (``sent`` holds all rows) and their text as
    stored (``stored``, one per row of ``rows``): the rows jsonb respelled, the rows it
    dropped a repeated key from (a document whose stored text has fewer strings), and,
    with ``compare``, how many stored documents differ in meaning from those sent."""
    n = len(sent)
    respelled = np.zeros(n, dtype=bool)
    duplicated = np.zeros(n, dtype=bool)
    texts = sent.take(pa.array(rows))
    differs = ~_bools(pc.equal(texts, stored)) & present(texts)
    if not differs.any():
        return respelled, duplicated, 0
    repeated = differs & (_strings(texts) != _strings(stored))
    duplicated[rows[repeated]] = True
    respelled[rows[differs & ~repeated]] = True
    wrong = 0
    if compare:
        decode = msgspec.json.decode
        for j in np.flatnonzero(differs):
            original, kept = texts[j].as_py(), stored[j].as_py()
            if kept is None or decode(original) != decode(kept):
                wrong += 1
    return respelled, duplicated, wrong
