"""bench.charts draws the ratio chart from a run's per-round ranges and the migrate-data
chart from results of several sizes, and writes the same SVG for the same figures."""

from __future__ import annotations

import json
from pathlib import Path

from bench import charts


def _run(tmp: Path) -> None:
    (tmp / "20260101_000000.json").write_text(
        json.dumps(
            {
                "machine": {"date": "2026-01-01 00:00 UTC"},
                "rounds": 31,
                "scenarios": [
                    {
                        "backend": "sqlite",
                        "name": "fetch one row",
                        "baseline": "raw sqlite3",
                        "ratios": {"raw sqlite3": 1.0, "generated sync": 1.15, "ORM": 20.0},
                        "iqr": {
                            "raw sqlite3": [1.0, 1.0],
                            "generated sync": [1.07, 1.24],
                            "ORM": [18.0, 22.0],
                        },
                        "targets": {"generated sync": 1.05},
                    }
                ],
            }
        )
    )
    for rows, ours, theirs in ((10_000, 20_000, 14_000), (1_000_000, 80_000, 190_000)):
        (tmp / f"migrate_data_{rows}.json").write_text(
            json.dumps(
                {
                    "clean": {
                        "rows": rows,
                        "migrate_data": {"rows_per_s": ours},
                        "pgloader": {"rows_per_s": theirs},
                    }
                }
            )
        )


def test_charts_are_drawn_from_the_results(tmp_path: Path) -> None:
    _run(tmp_path)
    run = charts.newest_run(tmp_path)
    assert run is not None
    ratios = charts.ratios_chart(run, tmp_path / "charts").read_text()
    assert "fetch one row — generated sync" in ratios and "raw sqlite3 —" not in ratios
    migrate = charts.migrate_chart(tmp_path, tmp_path / "charts")
    assert migrate is not None
    text = migrate.read_text()
    assert "190,000" in text and "20,000" in text
    again = charts.ratios_chart(run, tmp_path / "again").read_text()
    assert again == ratios  # no date, a fixed id salt: same figures, same file
