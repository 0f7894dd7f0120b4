"""Charts of the benchmark results, next to their tables: ``python -m bench.charts``
(run by ``make bench`` and ``make bench-migrate``).

* ``bench/results/charts/ratios.svg``: for the newest ``bench.run`` results, each
  contender's ratio to the raw driver per scenario, the dot at the median over rounds and
  the bar across its interquartile range, with the scenario's target where it has one
  (a target is met when the whole bar is left of its mark).
* ``bench/results/charts/migrate_data.svg``: migrate-data's and pgloader's throughput on
  the clean data set over the source's size, from every ``bench.migrate_data`` result
  (the newest per size).

SVGs are written without a date and with a fixed id salt, so a chart changes only when
its figures do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RESULTS = Path(__file__).parent / "results"
CHARTS = RESULTS / "charts"
_RUN = re.compile(r"\d{8}_\d{6}\.json")
matplotlib.rcParams["svg.hashsalt"] = "aragora-repos"
matplotlib.rcParams["font.size"] = 9


def newest_run(results: Path = RESULTS) -> dict[str, Any] | None:
    """The newest ``bench.run`` results that hold per-round interquartile ranges."""
    for path in sorted((p for p in results.glob("*.json") if _RUN.fullmatch(p.name)), reverse=True):
        data = json.loads(path.read_text())
        if all("iqr" in s for s in data.get("scenarios", [])) and data.get("scenarios"):
            return dict(data)
    return None


def ratios_chart(run: dict[str, Any], out: Path) -> Path:
    rows: list[tuple[str, float, float, float, float | None, bool]] = []
    for s in run["scenarios"]:
        for name, ratio in s["ratios"].items():
            if name == s["baseline"]:
                continue
            low, high = s["iqr"][name]
            target = s["targets"].get(name)
            rows.append(
                (
                    f"{s['backend']}: {s['name']} — {name}",
                    ratio,
                    low,
                    high,
                    target,
                    name.startswith("generated"),
                )
            )
    height = max(3.0, 0.22 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(14, height))
    ys = list(range(len(rows)))[::-1]
    for y, (_, ratio, low, high, target, ours) in zip(ys, rows, strict=True):
        colour = "tab:blue" if ours else "tab:gray"
        ax.plot([low, high], [y, y], color=colour, linewidth=3, solid_capstyle="butt")
        ax.plot([ratio], [y], "o", color=colour, markersize=4)
        if target is not None:
            met = high <= target
            ax.plot([target], [y], "|", color="tab:green" if met else "tab:red", markersize=12)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(ys)
    ax.set_yticklabels([r[0] for r in rows])
    ax.set_xlabel(
        "time / raw driver's time in the same round (log scale): dot at the median, bar "
        "across the interquartile range; | the target (green: met over the whole range)"
    )
    machine = run.get("machine", {})
    ax.set_title(
        f"Ratio to the raw driver, {run.get('rounds', '?')} interleaved rounds "
        f"({machine.get('date', '')})\nblue: generated code; grey: other contenders",
        loc="left",
    )
    ax.grid(axis="x", which="both", linewidth=0.3)
    fig.tight_layout()
    return _save(fig, out / "ratios.svg")


def migrate_chart(results: Path, out: Path) -> Path | None:
    by_size: dict[int, dict[str, Any]] = {}
    for path in sorted(results.glob("migrate_data_*.json")):
        clean = json.loads(path.read_text()).get("clean")
        if clean and "pgloader" in clean:
            by_size[int(clean["rows"])] = clean  # the newest per size wins
    if not by_size:
        return None
    sizes = sorted(by_size)
    fig, ax = plt.subplots(figsize=(7, 4))
    for tool, colour in (("migrate_data", "tab:blue"), ("pgloader", "tab:gray")):
        rates = [by_size[n][tool]["rows_per_s"] for n in sizes]
        ax.plot(sizes, rates, "o-", color=colour, label=tool.replace("_", "-"))
        for n, rate in zip(sizes, rates, strict=True):
            ax.annotate(f"{rate:,.0f}", (n, rate), textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log")
    ax.set_xlabel("rows in the SQLite source (clean data set, 4 tables)")
    ax.set_ylabel("rows per second (median of the runs)")
    ax.set_title("migrate-data (with --verify) against pgloader")
    ax.legend()
    ax.grid(linewidth=0.3)
    fig.tight_layout()
    return _save(fig, out / "migrate_data.svg")


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    return path


def main() -> None:
    written = []
    run = newest_run()
    if run is not None:
        written.append(ratios_chart(run, CHARTS))
    chart = migrate_chart(RESULTS, CHARTS)
    if chart is not None:
        written.append(chart)
    for path in written:
        print(f"wrote {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
