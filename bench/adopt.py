"""adopt on a large legacy installation, into both targets (``make bench-adopt``).

Builds a legacy data directory (users.db, agora_memory.db, consensus_memory.db, the shapes
of ``tests/migrate_data/legacy.py``) whose audit log holds ``--rows`` rows (default
1,000,000; a third of them without a resource type, so a mapping rule runs on every third
row), then times ``adopt --verify`` into the project's SQLite file and into a fresh
PostgreSQL database. Reports wall time, source rows, rows in the target and rules applied;
written to ``bench/results/adopt_<date>.json``.

Usage: ``python -m bench.adopt [--rows N] [--dsn DSN]`` (default DSN: the environment's
ARAGORA_TEST_POSTGRES_DSN, else the local server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from aragora_db import MIGRATIONS
from aragora_db.schema import EXPECTED
from aragora_repos import Config, Secret
from aragora_repos.tools.adopt import AdoptReport, adopt
from tests.migrate_data import legacy


def build(directory: Path, rows: int) -> int:
    legacy.legacy_layout(directory)
    db = sqlite3.connect(directory / "users.db")
    db.executemany(
        "INSERT INTO audit_log (timestamp, user_id, org_id, action, resource_type, "
        "resource_id, details, ip_address) VALUES (?, ?, 'o1', ?, ?, ?, ?, '10.0.0.1')",
        (
            (
                f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}T{i % 24:02d}:00:00",
                f"u{i % 20}",
                "login" if i % 2 else "debate.create",
                None if i % 3 == 0 else "debate",
                str(i),
                json.dumps({"n": i}),
            )
            for i in range(rows - 60)
        ),
    )
    db.commit()
    db.close()
    return legacy.source_rows(directory)


def summary(report: AdoptReport, seconds: float) -> dict[str, object]:
    return {
        "seconds": round(seconds, 2),
        "stage_seconds": round(report.stage_seconds, 2),
        "copy_seconds": round(report.copy_seconds, 2),
        "source_rows": sum(t.rows for t in report.tables),
        "in_target": sum(t.in_target for t in report.tables),
        "rejected": report.rejected,
        "verified": report.verified,
        "exit_code": report.exit_code(),
        "rules": {f"{t.file}:{t.table}": t.rules for t in report.tables if t.rules},
    }


async def main(rows: int, dsn: str) -> dict[str, object]:
    out: dict[str, object] = {"rows": rows, "date": datetime.now(UTC).isoformat()}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "nomic"
        started = time.perf_counter()
        out["source_rows"] = build(source, rows)
        out["build_seconds"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        report = await adopt(
            source, Config(data_dir=Path(tmp) / "sqlite"), MIGRATIONS, EXPECTED, verify=True
        )
        out["sqlite"] = summary(report, time.perf_counter() - started)
        name = f"bench_adopt_{os.getpid()}"
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            target = dsn.rsplit("/", 1)[0] + "/" + name
            config = Config(backend="postgres", dsn=Secret(target), data_dir=Path(tmp) / "pg")
            started = time.perf_counter()
            report = await adopt(
                source, config, MIGRATIONS, EXPECTED, target="postgres", verify=True
            )
            out["postgres"] = summary(report, time.perf_counter() - started)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--dsn",
        default=os.environ.get(
            "ARAGORA_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    result = asyncio.run(main(args.rows, args.dsn))
    print(json.dumps(result, indent=2))
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    day = datetime.now(UTC).strftime("%Y%m%d")
    (results / f"adopt_{day}.json").write_text(json.dumps(result, indent=2) + "\n")
