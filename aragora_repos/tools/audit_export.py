"""``aragora-repos export-audit`` and ``verify-audit``: a time range of the audit log as
JSON Lines or CSV, chained by hashes, and the check that finds what changed.

Each exported entry carries ``prev_hash`` (the previous entry's hash; the first entry's
is the hash of the export's header, which names the range) and ``hash``, the SHA-256 of
``prev_hash`` and the entry's canonical JSON (sorted keys, UTC timestamps with
microseconds, compact separators). A trailer records the number of entries and the last
hash. ``verify-audit FILE`` recomputes the chain: an edited, removed, inserted or
reordered entry, or a file cut short, is reported with the entry where the chain breaks.
``verify-audit FILE --against-database`` also reads the same range from the database and
names every entry that is missing there, different, or new since the export.

In the database itself the audit log is append-only (triggers; see
:mod:`codegen.analysis.append_only`), so only retention removes entries, oldest first.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from aragora_repos.errors import DatabaseError
from aragora_repos.files import replacing

FORMAT = "aragora-audit-export"
VERSION = 1
FIELDS = (
    "id",
    "timestamp",
    "user_id",
    "org_id",
    "action",
    "resource_type",
    "resource_id",
    "details",
    "ip_address",
    "user_agent",
)


class AuditError(DatabaseError):
    """An export that does not verify; the message names the entry."""


class _AuditReads(Protocol):
    def list_audit_events_in_range_iter(
        self, *, start_time: datetime, end_time: datetime
    ) -> AsyncIterator[Any]: ...


class Audited(Protocol):
    @property
    def audit(self) -> _AuditReads: ...


def _utc(value: datetime) -> str:
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(entry: dict[str, Any]) -> str:
    """The text an entry's hash covers."""
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _entry(row: Any) -> dict[str, Any]:
    values = dataclasses.asdict(row)
    out = {name: values[name] for name in FIELDS}
    out["timestamp"] = _utc(out["timestamp"])
    return out


def _link(prev: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256((prev + "\n" + canonical(entry)).encode()).hexdigest()


def _header(since: datetime, until: datetime) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "since": _utc(since), "until": _utc(until)}


def _genesis(header: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(header).encode()).hexdigest()


@dataclass(slots=True)
class ExportReport:
    path: Path
    entries: int
    last_hash: str

    def render(self) -> str:
        return (
            f"exported {self.entries:,} audit entries to {self.path} (last hash {self.last_hash})"
        )


async def export_audit(
    db: Audited,
    path: Path,
    *,
    since: datetime,
    until: datetime,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> ExportReport:
    """Write the entries with ``since <= timestamp < until`` (in timestamp, id order) to
    ``path`` (replaced whole, 0600), chained; see the module docstring."""
    header = _header(since, until)
    prev = _genesis(header)
    count = 0
    with replacing(path) as f:
        writer = csv.writer(f) if format == "csv" else None
        if writer is not None:
            writer.writerow(["#" + canonical(header)])
            writer.writerow([*FIELDS, "prev_hash", "hash"])
        else:
            f.write(canonical(header) + "\n")
        rows = db.audit.list_audit_events_in_range_iter(start_time=since, end_time=until)
        async for row in rows:
            entry = _entry(row)
            digest = _link(prev, entry)
            if writer is not None:
                writer.writerow(
                    [
                        *(_cell(n, entry[n]) for n in FIELDS),
                        prev,
                        digest,
                    ]
                )
            else:
                f.write(canonical({**entry, "prev_hash": prev, "hash": digest}) + "\n")
            prev = digest
            count += 1
        trailer = {"entries": count, "last_hash": prev}
        if writer is not None:
            writer.writerow(["#" + canonical(trailer)])
        else:
            f.write(canonical(trailer) + "\n")
    return ExportReport(path, count, prev)


@dataclass(slots=True)
class VerifyReport:
    path: Path
    entries: int
    since: datetime
    until: datetime
    ids: list[int] = field(default_factory=list)
    hashes: dict[int, str] = field(default_factory=dict)
    """Entry id -> the hash of its content alone (for the comparison with the database)."""
    database: list[str] = field(default_factory=list)
    """Differences from the database, when compared."""

    def render(self) -> str:
        lines = [f"{self.path}: {self.entries:,} entries, the chain holds"]
        if self.database:
            lines += [f"  database: {d}" for d in self.database]
        return "\n".join(lines)


def _jsonl(text: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line)
        except ValueError:
            raise AuditError(f"line {number}: not JSON") from None
        if not isinstance(value, dict):
            raise AuditError(f"line {number}: not an object")
        yield value


def _csv(text: str) -> Iterator[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    for number, row in enumerate(reader, 1):
        if len(row) == 1 and row[0].startswith("#"):
            yield json.loads(row[0][1:])
            continue
        if row == [*FIELDS, "prev_hash", "hash"]:
            continue
        if len(row) != len(FIELDS) + 2:
            raise AuditError(f"row {number}: expected {len(FIELDS) + 2} columns, got {len(row)}")
        cells = dict(zip([*FIELDS, "prev_hash", "hash"], row, strict=True))
        entry: dict[str, Any] = {n: _uncell(n, cells[n]) for n in FIELDS}
        entry["prev_hash"], entry["hash"] = cells["prev_hash"], cells["hash"]
        yield entry


def _cell(name: str, value: Any) -> str:
    """A CSV cell: NULL is ``\\N``, a text starting with a backslash gets one more, so
    every value reads back as it was (an empty text stays empty, not NULL)."""
    if value is None:
        return "\\N"
    if name == "details":
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    text = str(value)
    return "\\" + text if text.startswith("\\") else text


def _uncell(name: str, cell: str) -> Any:
    if cell == "\\N":
        return None
    if name == "details":
        return json.loads(cell)
    if name == "id":
        return int(cell)
    return cell[1:] if cell.startswith("\\") else cell


def verify_file(path: Path) -> VerifyReport:
    """Recompute the chain of an export; raise :class:`AuditError` where it breaks."""
    text = path.read_text(encoding="utf-8")
    try:
        items = list(_csv(text) if path.suffix == ".csv" else _jsonl(text))
    except (ValueError, KeyError) as exc:
        raise AuditError(f"{path}: unreadable: {exc}") from None
    if not items or items[0].get("format") != FORMAT:
        raise AuditError(f"{path}: not an audit export (no header)")
    header = items[0]
    if items[-1].keys() != {"entries", "last_hash"}:
        raise AuditError(f"{path}: no trailer: the export was cut short")
    trailer = items[-1]
    prev = _genesis(header)
    report = VerifyReport(
        path,
        0,
        datetime.fromisoformat(header["since"]),
        datetime.fromisoformat(header["until"]),
    )
    for position, item in enumerate(items[1:-1], 1):
        entry: dict[str, Any] = {name: item.get(name) for name in FIELDS}
        if item.get("prev_hash") != prev:
            raise AuditError(
                f"{path}: entry {position} (id {entry['id']}): the chain breaks before it "
                "(an entry was removed, inserted or moved)"
            )
        digest = _link(prev, entry)
        if item.get("hash") != digest:
            raise AuditError(f"{path}: entry {position} (id {entry['id']}) was changed")
        report.ids.append(int(entry["id"]))
        report.hashes[int(entry["id"])] = _link("", entry)
        prev = digest
        report.entries += 1
    if trailer["entries"] != report.entries or trailer["last_hash"] != prev:
        raise AuditError(
            f"{path}: the trailer says {trailer['entries']} entries ending in "
            f"{str(trailer['last_hash'])[:12]}..., the file has {report.entries} "
            f"ending in {prev[:12]}..."
        )
    return report


async def verify_against(db: Audited, report: VerifyReport) -> list[str]:
    """The entries of the export's range that differ between the file and the database."""
    seen: dict[int, str] = {}
    rows = db.audit.list_audit_events_in_range_iter(start_time=report.since, end_time=report.until)
    async for row in rows:
        entry = _entry(row)
        seen[int(entry["id"])] = _link("", entry)
    out = [f"entry {i} is missing" for i in report.ids if i not in seen]
    out += [f"entry {i} differs" for i in report.ids if i in seen and seen[i] != report.hashes[i]]
    out += [f"entry {i} is not in the export" for i in sorted(set(seen) - set(report.hashes))]
    report.database = out or ["matches the export"]
    return out
