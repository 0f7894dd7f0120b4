"""migrate-data against pgloader on the same SQLite file (``make bench-migrate``).

Builds a SQLite file of ``--rows`` rows (default 1,000,000) over four tables, in the loose
forms older SQLite code leaves (0/1 and 'true'/'t' booleans, ISO text, epoch seconds and
milliseconds in DATETIME columns, JSON text, BLOBs, infinities) with a small share of
adversarial rows (NUL in text, broken JSON, orphans). Each round runs every contender
once, in turn, into a fresh database with the same pre-created schema: migrate-data with
``--verify``, without it, its row path (``--no-columnar --verify``), and pgloader. The
figures are wall time (median and interquartile range over ``--repeat`` rounds), rows/s,
the peak RSS of the loader process, each migrate-data variant's speed relative to
pgloader per round (median and IQR), and whether the targets hold the same data (row
counts and the canonical checksum migrate-data's row path verifies).

Usage: ``python -m bench.migrate_data [--rows N] [--batch-size N] [--repeat N]``; pgloader
comes from the Debian package (``apt-get install pgloader``) and is skipped with a note
when absent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from aragora_repos.tools.convert import TargetColumn
from aragora_repos.tools.migrate_data import TablePlan, target_checksum_sql

RESULTS = Path(__file__).parent / "results"

TARGET = """
CREATE TABLE users (
    id BIGINT PRIMARY KEY, email TEXT NOT NULL, active BOOLEAN NOT NULL,
    created TIMESTAMPTZ, profile JSONB, avatar BYTEA
);
CREATE TABLE posts (
    id BIGINT PRIMARY KEY, user_id BIGINT REFERENCES users (id), body TEXT,
    score DOUBLE PRECISION, meta JSONB, created TIMESTAMPTZ
);
CREATE TABLE events (id BIGINT PRIMARY KEY, kind TEXT NOT NULL, payload JSONB, at TIMESTAMPTZ);
CREATE TABLE tags (id BIGINT PRIMARY KEY, post_id BIGINT REFERENCES posts (id), tag TEXT,
                   weight INTEGER);
"""
SOURCE = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, active BOOLEAN, created DATETIME,
                    profile TEXT, avatar BLOB);
CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER, body TEXT, score REAL,
                    meta TEXT, created DATETIME);
CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, payload TEXT, at DATETIME);
CREATE TABLE tags (id INTEGER PRIMARY KEY, post_id INTEGER, tag TEXT, weight INTEGER);
"""
SHARES = {"users": 0.10, "posts": 0.50, "events": 0.30, "tags": 0.10}


def build(path: Path, rows: int, *, adversarial: bool = True, seed: int = 1) -> dict[str, int]:
    rng = random.Random(seed)
    n = {t: int(rows * s) for t, s in SHARES.items()}
    db = sqlite3.connect(path)
    db.executescript(SOURCE)

    def moment(i: int) -> object:
        base = 1_600_000_000 + i * 7
        return [
            datetime.fromtimestamp(base, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            base,
            base * 1000 + i % 1000,
            datetime.fromtimestamp(base, UTC).isoformat(),
        ][i % 4 if adversarial else 0]

    def users() -> Any:
        for i in range(1, n["users"] + 1):
            email = f"user{i}@example.com" if i % 5003 or not adversarial else f"nul\x00{i}@x"
            active = [0, 1, "true", "t", "f"][i % 5] if adversarial else i % 2
            profile = json.dumps({"name": f"Ünïcode {i}", "tags": ["a", "b"], "n": i})
            yield (i, email, active, moment(i), profile, rng.randbytes(16) if i % 3 else None)

    def posts() -> Any:
        for i in range(1, n["posts"] + 1):
            bad = adversarial and i % 10007 == 0
            user = n["users"] + 99 if bad else rng.randint(1, n["users"])  # orphans
            broken = adversarial and i % 9001 == 0
            meta = "{broken" if broken else json.dumps({"len": i % 300, "lang": "en"})
            score = float("inf") if adversarial and i % 50000 == 0 else rng.random() * 100
            yield (i, user, f"post {i} — ✓ {'x' * (i % 50)}", score, meta, moment(i))

    def events() -> Any:
        for i in range(1, n["events"] + 1):
            yield (
                i,
                "tick",
                json.dumps({"seq": i}),
                moment(i) if not adversarial else 1_700_000_000_000 + i,
            )

    def tags() -> Any:
        for i in range(1, n["tags"] + 1):
            yield (i, rng.randint(1, n["posts"]), f"tag{i % 100}", i % 1000)

    for table, rows_of in (("users", users), ("posts", posts), ("events", events), ("tags", tags)):
        width = {"users": 6, "posts": 6, "events": 4, "tags": 4}[table]
        db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * width)})", rows_of())
    db.commit()
    db.close()
    return n


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def fresh(admin_dsn: str, name: str) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    dsn = with_database(admin_dsn, name)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(TARGET)
    finally:
        await conn.close()
    return dsn


def run_measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) of the process tree, exit code."""
    wrapper = [
        sys.executable,
        "-c",
        "import resource, subprocess, sys;"
        "rc = subprocess.call(sys.argv[1:]);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
        "sys.exit(rc)",
    ]
    started = time.perf_counter()
    done = subprocess.run(wrapper + argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    peak = int(done.stderr.strip().splitlines()[-1]) if done.stderr.strip() else 0
    if done.returncode not in (0, 3):
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
    return seconds, peak, done.returncode


async def checksums(dsn: str) -> dict[str, tuple[int, int]]:
    conn = await asyncpg.connect(dsn)
    out = {}
    try:
        for table in SHARES:
            rows = await conn.fetch(
                "SELECT a.attname, t.typname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
                "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = $1::regclass AND a.attnum > 0 ORDER BY a.attnum",
                table,
            )
            plan = TablePlan(table, [TargetColumn(r[0], r[1], r[2], r[3]) for r in rows], [], [])
            row = await conn.fetchrow(target_checksum_sql("public", plan))
            assert row is not None
            out[table] = (int(row[0]), int(row[1]))
    finally:
        await conn.close()
    return out


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if len(ordered) < 2:
        return ordered[0], ordered[0], ordered[0]
    q = statistics.quantiles(ordered, n=4, method="inclusive")
    return q[0], statistics.median(ordered), q[2]


async def compare(
    admin: str, source: Path, work: Path, batch_size: int, repeat: int
) -> dict[str, Any]:
    """Each round runs every contender once, in turn, each into a fresh database:
    migrate-data with and without ``--verify``, its row path (``--no-columnar``, with
    ``--verify``) and pgloader. Reported per contender: the median seconds with the
    interquartile range, rows/s, the largest peak RSS; and per round the ratio of
    pgloader's time to each migrate-data variant's (above 1: faster than pgloader)."""
    total = sum(
        r[0]
        for r in sqlite3.connect(source)
        .execute(" UNION ALL ".join(f"SELECT count(*) FROM {t}" for t in SHARES))
        .fetchall()
    )
    results: dict[str, Any] = {"rows": total}
    rejects = work / "rejects.jsonl"

    def ours(*flags: str) -> Callable[[str], list[str]]:
        return lambda dsn: [
            sys.executable,
            "-m",
            "aragora_repos",
            "migrate-data",
            "--sqlite-path",
            str(source),
            "--postgres-dsn",
            dsn,
            "--batch-size",
            str(batch_size),
            "--json",
            "--reject-file",
            str(rejects),
            *flags,
        ]

    script = work / "load.pgl"

    def load(dsn: str) -> list[str]:
        script.write_text(
            f"LOAD DATABASE FROM sqlite://{source} INTO {dsn}\n"
            "WITH data only, create no tables, create no indexes, reset sequences;\n"
        )
        return [str(pgloader), "--root-dir", str(work / "pgl"), str(script)]

    contenders: dict[str, Callable[[str], list[str]]] = {
        "migrate_data": ours("--verify"),
        "migrate_data_no_verify": ours(),
        "migrate_data_row_path": ours("--verify", "--no-columnar"),
    }
    pgloader = shutil.which("pgloader")
    if pgloader is None:
        results["pgloader"] = "not installed (apt-get install pgloader)"
        print("  pgloader: not installed; apt-get install pgloader")
    else:
        contenders["pgloader"] = load
    runs: dict[str, list[tuple[float, int, int]]] = {name: [] for name in contenders}
    databases: dict[str, str] = {}
    rejected: dict[str, int] = {}
    for _ in range(repeat):
        for name, argv in contenders.items():
            databases[name] = await fresh(admin, f"bench_{name}")
            if rejects.exists():
                rejects.unlink()
            runs[name].append(run_measured(argv(databases[name])))
            if name != "pgloader":
                rejected[name] = sum(1 for _ in rejects.open()) if rejects.exists() else 0
    for name, measured in runs.items():
        seconds = [round(r[0], 2) for r in measured]
        low, median, high = _quartiles(seconds)
        entry: dict[str, Any] = {
            "seconds": round(median, 2),
            "iqr": [round(low, 2), round(high, 2)],
            "runs": seconds,
            "rows_per_s": round(total / median),
            "peak_rss_mib": round(max(r[1] for r in measured) / 1024, 1),
            "exit": measured[-1][2],
        }
        if name in rejected:
            entry["rejected"] = rejected[name]
        if name != "pgloader" and "pgloader" in runs:
            ratios = [p[0] / m[0] for p, m in zip(runs["pgloader"], measured, strict=True)]
            r_low, r_median, r_high = _quartiles(ratios)
            entry["speedup_vs_pgloader"] = round(r_median, 2)
            entry["speedup_iqr"] = [round(r_low, 2), round(r_high, 2)]
        results[name] = entry
        print(
            f"  {name}: {median:.2f} s (IQR {low:.2f}-{high:.2f}), {total / median:,.0f} rows/s, "
            f"peak RSS {entry['peak_rss_mib']:.0f} MiB, exit {entry['exit']}"
            + (f", {entry['rejected']} rejected" if "rejected" in entry else "")
            + (
                f", {entry['speedup_vs_pgloader']:.2f}x pgloader "
                f"(IQR {entry['speedup_iqr'][0]:.2f}-{entry['speedup_iqr'][1]:.2f})"
                if "speedup_vs_pgloader" in entry
                else ""
            )
        )
    if "pgloader" in databases:
        a, b = await checksums(databases["migrate_data"]), await checksums(databases["pgloader"])
        results["target_rows"] = {
            "migrate_data": {t: a[t][0] for t in SHARES},
            "pgloader": {t: b[t][0] for t in SHARES},
        }
        results["same_target_data"] = {t: a[t] == b[t] for t in SHARES}
        print(
            f"  rows loaded: migrate-data {results['target_rows']['migrate_data']}, "
            f"pgloader {results['target_rows']['pgloader']}; same data per table: "
            f"{results['same_target_data']}"
        )
    paths = [databases[n] for n in ("migrate_data", "migrate_data_row_path")]
    first, second = await checksums(paths[0]), await checksums(paths[1])
    results["columnar_equals_row_path"] = first == second
    print(f"  columnar path and row path load the same data: {first == second}")
    for name in databases:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "bench_{name}" WITH (FORCE)')
        finally:
            await conn.close()
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="rounds (median and IQR)")
    args = parser.parse_args()
    admin = os.environ.get(
        "ARAGORA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    admin = with_database(admin, "postgres")
    results: dict[str, Any] = {"batch_size": args.batch_size, "repeat": args.repeat}
    for variant in ("clean", "adversarial"):
        work = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
        source = work / "source.db"
        sizes = build(source, args.rows, adversarial=variant == "adversarial")
        print(
            f"{variant} source: {sum(sizes.values()):,} rows, "
            f"{source.stat().st_size / 1e6:.0f} MB {sizes}"
        )
        results[variant] = await compare(admin, source, work, args.batch_size, args.repeat)
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    (RESULTS / f"migrate_data_{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
