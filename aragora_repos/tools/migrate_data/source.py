"""Reading the SQLite source in byte-bounded batches, with keys and positions."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from aragora_repos.backends.sqlite import Opener, open_read_only
from aragora_repos.errors import SQLITE_OPERATIONAL_ERROR
from aragora_repos.tools.canonical import row_converter, row_hasher
from aragora_repos.tools.convert import Reject, converter, sqlite_text
from aragora_repos.tools.migrate_data.plan import TablePlan
from aragora_repos.tools.migrate_data.state import RejectRow, quote

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]


@dataclass(slots=True)
class Batch:
    records: list[tuple[Any, ...]]
    sources: list[tuple[Any, ...]]
    """The source row of each record; its leading values are its position and key."""
    rejects: list[RejectRow]
    last_key: Any
    read: int
    counts: list[Counter[str]]
    width: int
    """How many leading values of a source row are its position (the rest up to ``lead``
    are its key)."""
    lead: int
    hashes: list[int] | None = None
    """The row hash of each record (verification), when the reader was asked for them."""

    def position(self, source: tuple[Any, ...]) -> str:
        return _position(source, self.width)

    def find(self, positions: set[str]) -> list[int]:
        """Indexes in ``sources`` of the rows at ``positions`` (as ``position`` writes
        them). Integer positions (rowids) are matched by value, without writing out the
        position of every row."""
        if not positions:
            return []
        if self.width == 1:
            values = [json.loads(p) for p in positions]
            if all(type(v) is int for v in values):
                wanted = set(values)
                return [i for i, s in enumerate(self.sources) if s[0] in wanted]
        return [i for i, s in enumerate(self.sources) if self.position(s) in positions]

    def key(self, source: tuple[Any, ...]) -> str:
        return _key(source, self.width, self.lead)


#: Bytes of text and blobs read into one batch at most (besides ``batch_size`` rows).
DEFAULT_BATCH_BYTES = 16 * 1024 * 1024


def _take(cursor: sqlite3.Cursor, budget: int | None) -> list[tuple[Any, ...]]:
    if budget is None:
        return cursor.fetchall()
    rows: list[tuple[Any, ...]] = []
    size = 0
    try:
        for row in cursor:
            rows.append(row)
            size += sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)
            if size >= budget:
                break
    finally:
        cursor.close()
    return rows


class SourceReader:
    """Reads one table in key order and converts each row; used from one thread."""

    def __init__(
        self,
        path: Path,
        table: TablePlan,
        *,
        hashes: bool = False,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        opener: Opener | None = None,
    ) -> None:
        self.table = table
        self.batch_bytes = batch_bytes
        self.hash_row = row_hasher(table.columns) if hashes else None
        self.db = _open_source(path, opener)
        names = ", ".join(quote(c.name) for c in table.columns)
        order = ", ".join(quote(c) if c != "rowid" else "rowid" for c in table.order_by)
        self.width = len(table.order_by)
        key_expr = ", ".join(quote(c) if c != "rowid" else "rowid" for c in table.key_columns)
        self.key_width = len(table.key_columns)
        head = f"SELECT {order}, {key_expr}, {names} FROM {quote(table.name)}"
        if self.width == 1:
            after = f"{order} > ?"
        else:
            after = f"({order}) > ({', '.join('?' * self.width)})"
        self.first = f"{head} ORDER BY {order} LIMIT ?"
        self.next = f"{head} WHERE {after} ORDER BY {order} LIMIT ?"
        typed = ", ".join(f"typeof({quote(c.name)}), {quote(c.name)}" for c in table.columns)
        self.raw_first = f"SELECT {order}, {key_expr}, {typed} FROM {quote(table.name)}"
        self.raw_first += f" ORDER BY {order} LIMIT ?"
        self.raw_next = f"SELECT {order}, {key_expr}, {typed} FROM {quote(table.name)}"
        self.raw_next += f" WHERE {after} ORDER BY {order} LIMIT ?"

    def close(self) -> None:
        self.db.close()

    def read_positions(self, positions: list[str], upto: Any = None) -> Batch:
        """The rows at these positions (as ``_position`` encodes them), converted; only
        those not after ``upto`` when it is given."""
        rows: list[tuple[Any, ...]] = []
        order = ", ".join(quote(c) if c != "rowid" else "rowid" for c in self.table.order_by)
        head = self.first.split(" ORDER BY ")[0]
        for start in range(0, len(positions), 200):
            chunk = [json.loads(p) for p in positions[start : start + 200]]
            if self.width == 1:
                where = f"{order} IN ({', '.join('?' * len(chunk))})"
                params: list[Any] = chunk
            else:
                one = "(" + ", ".join("?" * self.width) + ")"
                where = f"({order}) IN (VALUES {', '.join([one] * len(chunk))})"
                params = [v for p in chunk for v in p]
            if upto is not None:
                where += f" AND ({order}) <= ({', '.join('?' * self.width)})"
                params += list(upto) if self.width > 1 else [upto]
            typed_head = self.raw_first.split(" ORDER BY ")[0]
            rows.extend(
                self._rows(
                    f"{head} WHERE {where} ORDER BY {order}",
                    f"{typed_head} WHERE {where} ORDER BY {order}",
                    params,
                )
            )
        return self._convert(rows)

    def count(self) -> int:
        row = self.db.execute(f"SELECT count(*) FROM {quote(self.table.name)}").fetchone()
        return int(row[0])

    def _fetch(self, after: Any, size: int, upto: Any = None) -> list[tuple[Any, ...]]:
        """Up to ``size`` rows after position ``after``, and not after ``upto``."""
        params: tuple[Any, ...] = ()
        if after is not None:
            params = tuple(after) if self.width > 1 else (after,)
        sql, typed = (self.first, self.raw_first) if after is None else (self.next, self.raw_next)
        if upto is not None:
            order = ", ".join(quote(c) if c != "rowid" else "rowid" for c in self.table.order_by)
            bound = f"({order}) <= ({', '.join('?' * self.width)})"
            joiner = " AND " if after is not None else " WHERE "
            sql, typed = (
                q.replace(" ORDER BY ", f"{joiner}{bound} ORDER BY ", 1) for q in (sql, typed)
            )
            params += tuple(upto) if self.width > 1 else (upto,)
        return self._rows(sql, typed, (*params, size), budget=self.batch_bytes)

    def _rows(
        self, sql: str, typed_sql: str, params: Sequence[Any], *, budget: int | None = None
    ) -> list[tuple[Any, ...]]:
        """``sql``'s rows; when some text is not UTF-8, ``typed_sql``'s (each column with
        its ``typeof``) with valid text decoded and invalid text marked, so the row is
        rejected with its reason. With ``budget``, reading stops once the rows' text and
        blobs reach that many bytes (after at least one row): the next read continues
        after the last row's key, so a batch of large rows stays small."""
        try:
            return _take(self.db.execute(sql, params), budget)
        except SQLITE_OPERATIONAL_ERROR as exc:
            if "decode" not in str(exc):
                raise
        self.db.text_factory = bytes
        try:
            rows = _take(self.db.execute(typed_sql, params), budget)
        finally:
            self.db.text_factory = str
        lead = self.width + self.key_width
        out = []
        for row in rows:
            values: list[Any] = [_text(v) for v in row[:lead]]
            for i in range(lead, len(row), 2):
                kind, value = row[i], row[i + 1]
                values.append(sqlite_text(value) if kind == b"text" else value)
            out.append(tuple(values))
        return out

    def read(self, after: Any, size: int, upto: Any = None) -> Batch:
        return self._convert(self._fetch(after, size, upto))

    def _convert(self, rows: list[tuple[Any, ...]]) -> Batch:
        table = self.table
        counts = [Counter[str]() for _ in table.columns]
        lead = self.width + self.key_width
        convert_row = row_converter(
            table.columns, counts, lead, keep_documents=self.hash_row is not None
        )
        width = self.width
        records: list[tuple[Any, ...]] = []
        sources: list[tuple[Any, ...]] = []
        rejects: list[RejectRow] = []
        for row in rows:
            try:
                records.append(convert_row(row))
            except Reject:
                column, reason, value = self._why(row, lead, counts)
                rejects.append(
                    (_position(row, width), _key(row, width, lead), column, reason, value)
                )
                continue
            sources.append(row)
        last = None
        if rows:
            last = rows[-1][0] if width == 1 else list(rows[-1][:width])
        hashes = list(map(self.hash_row, records)) if self.hash_row is not None else None
        return Batch(records, sources, rejects, last, len(rows), counts, width, lead, hashes)

    def _why(
        self, row: tuple[Any, ...], lead: int, counts: list[Counter[str]]
    ) -> tuple[str | None, str, str | None]:
        """The column and reason of a rejected row; the rules its earlier columns applied
        are taken back out of ``counts``, which count converted rows only."""
        for i, column in enumerate(self.table.columns):
            applied: Counter[str] = Counter()
            value = row[lead + i]
            try:
                converter(column, applied)(value)
            except Reject as exc:
                return column.name, str(exc), _value_text(value)
            counts[i].subtract(applied)
        return None, "unknown", None


def _text(value: Any) -> Any:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def _position(row: tuple[Any, ...], width: int) -> str:
    return json.dumps(row[0] if width == 1 else list(row[:width]), default=_json_default)


def _key(row: tuple[Any, ...], width: int, lead: int) -> str:
    return json.dumps(
        row[width] if lead - width == 1 else list(row[width:lead]), default=_json_default
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


def _value_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return "x'" + value[:64].hex() + ("...'" if len(value) > 64 else "'")
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def present(db: sqlite3.Connection, table: str, column: str, values: list[Any]) -> set[Any]:
    """Those of ``values`` that ``table.column`` holds, asked 500 at a time."""
    found: set[Any] = set()
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        found.update(
            r[0]
            for r in db.execute(
                f"SELECT {quote(column)} FROM {quote(table)} "
                f"WHERE {quote(column)} IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
        )
    return found & set(values)


def source_has(
    source: Path, table: str, column: str, values: list[Any], opener: Opener | None = None
) -> set[Any]:
    """Those of ``values`` that ``table.column`` of the source file holds (integers and
    text: a key of another type is looked up in the target only); none when the source
    has no such table or column."""
    db = _open_source(source, opener)
    try:
        return present(db, table, column, [v for v in values if type(v) in (int, str)])
    except SQLITE_OPERATIONAL_ERROR:
        return set()
    finally:
        db.close()


def _open_source(path: Path, opener: Opener | None = None) -> sqlite3.Connection:
    """The source, read-only; an encrypted one with ``opener``'s key (default: the
    environment's)."""
    return open_read_only(path, check_same_thread=False, opener=opener)


# --- progress display -------------------------------------------------------------------
