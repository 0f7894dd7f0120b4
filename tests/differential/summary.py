"""The differential suite's one-page summary: per store, the queries, the calls made on
both backends, how many gave the same result or the same error class, and any mismatch,
as a table (``build/fidelity-summary.md``) and a chart (``build/fidelity.svg``) beside the
per-query report (``build/fidelity.md``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tests.differential.harness import Call, Tally


def write_summary(
    calls: Sequence[Call], tally: Tally, headline: str, folder: Path, stem: str
) -> Path:
    stores: dict[str, Counter[str]] = {}
    failing: list[str] = []
    for call in calls:
        key = f"{call.store}.{call.query}"
        row = stores.setdefault(call.store, Counter())
        row["queries"] += 1
        row["calls"] += tally.runs[key]
        row["same result"] += tally.both_ok[key]
        row["same error"] += tally.both_error[key]
        row["mismatches"] += len(tally.mismatches.get(key, []))
        if tally.mismatches.get(key):
            failing.append(key)
    lines = [
        "# Fidelity: SQLite against PostgreSQL, one page",
        "",
        headline,
        "",
        f"![calls per store](./{stem}.svg)",
        "",
        "| store | queries | calls | same result | same error | mismatches |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for store, row in sorted(stores.items()):
        lines.append(
            f"| {store} | {row['queries']} | {row['calls']:,} | {row['same result']:,} | "
            f"{row['same error']:,} | {row['mismatches']} |"
        )
    lines += [
        "",
        "Queries with a mismatch: " + (", ".join(failing) if failing else "none") + ".",
        "",
        "Per query, with the first mismatches of each: `fidelity.md`.",
    ]
    folder.mkdir(exist_ok=True)
    _chart(stores, folder / f"{stem}.svg")
    page = folder / f"{stem}-summary.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def _chart(stores: dict[str, Counter[str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "aragora-repos"
    names = sorted(stores)
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(names) + 1.2))
    ys = list(range(len(names)))[::-1]
    left = [0.0] * len(names)
    for part, colour in (
        ("same result", "tab:blue"),
        ("same error", "tab:cyan"),
        ("mismatches", "tab:red"),
    ):
        widths = [float(stores[n][part]) for n in names]
        ax.barh(ys, widths, left=left, color=colour, label=part)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_yticks(ys)
    ax.set_yticklabels(names)
    ax.set_xlabel("calls made on both backends")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
