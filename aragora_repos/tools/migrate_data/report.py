"""What a copy reports: per table and in total, as text and JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class TableReport:
    table: str
    source_rows: int = 0
    migrated: int = 0
    skipped: int = 0
    errors: int = 0
    already_done: int = 0
    """Rows committed by earlier runs (resume), not copied again."""
    batches: int = 0
    seconds: float = 0.0
    conversions: dict[str, dict[str, int]] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    """Sequence name -> the value its next call returns, for those this run moved."""
    verified: bool | None = None
    verify_detail: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.migrated / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class DataMigrationReport:
    source: str
    dry_run: bool = False
    tables: dict[str, TableReport] = field(default_factory=dict)
    unmatched_tables: list[str] = field(default_factory=list)
    """Source tables with no table of the same name in the target (not copied)."""
    dropped_columns: dict[str, list[str]] = field(default_factory=dict)
    """Source columns with no target column (not copied): empty ones, or excluded."""
    left_behind: dict[str, int] = field(default_factory=dict)
    """Rows (``table``) or non-NULL values (``table.column``) the user excluded."""
    reject_file: str | None = None
    foreign_keys: list[str] = field(default_factory=list)
    """Foreign keys set aside during the copy and added back (validated) afterwards."""
    seconds: float = 0.0

    @property
    def total_migrated(self) -> int:
        return sum(t.migrated for t in self.tables.values())

    @property
    def total_skipped(self) -> int:
        return sum(t.skipped for t in self.tables.values())

    @property
    def total_errors(self) -> int:
        return sum(t.errors for t in self.tables.values())

    @property
    def verified(self) -> bool | None:
        results = [t.verified for t in self.tables.values() if t.verified is not None]
        return None if not results else all(results)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            total_migrated=self.total_migrated,
            total_skipped=self.total_skipped,
            total_errors=self.total_errors,
            verified=self.verified,
        )
        for name, table in self.tables.items():
            data["tables"][name]["rows_per_second"] = round(table.rows_per_second, 1)
        return data

    def render(self) -> str:
        lines = [
            f"{'table':<28} {'source':>10} {'migrated':>10} {'skipped':>9} {'errors':>7}  verify"
        ]
        for t in self.tables.values():
            check = {None: "-", True: "ok", False: "MISMATCH"}[t.verified]
            lines.append(
                f"{t.table:<28} {t.source_rows:>10,} {t.migrated:>10,} {t.skipped:>9,} "
                f"{t.errors:>7,}  {check}"
            )
            if t.verify_detail and not t.verified:
                lines.append(f"    {t.verify_detail}")
        lines.append(
            f"total: {self.total_migrated:,} migrated, {self.total_skipped:,} skipped, "
            f"{self.total_errors:,} errors in {self.seconds:.1f} s"
            + (" (dry run: nothing written)" if self.dry_run else "")
        )
        for name, count in self.left_behind.items():
            what = "non-NULL values" if "." in name else "rows"
            lines.append(f"left behind (excluded): {name}: {count:,} {what}")
        for name, columns in self.dropped_columns.items():
            lines.append(f"note: {name}: source columns {', '.join(columns)} have no target column")
        if self.foreign_keys:
            lines.append(f"foreign keys added back and validated: {', '.join(self.foreign_keys)}")
        if self.total_errors and self.reject_file:
            lines.append(f"rejected rows: {self.reject_file}")
        return "\n".join(lines)


# --- plan -------------------------------------------------------------------------------
