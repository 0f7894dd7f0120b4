"""A migrator process: ``python -m tests.reliability.migrator TARGET [MODULE]``.

Opens TARGET (a SQLite path or a PostgreSQL DSN), prints ``ready`` and waits for a line
on stdin, so that a test can start many processes together without sleeping; then
applies the migrations of MODULE (default: the sample set), printing ``statement: ...``
before each statement it runs, and finally the versions it applied as JSON.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path

from aragora_repos import Config, Secret, open_async


async def main(target: str, module: str) -> None:
    migrations = importlib.import_module(module).MIGRATIONS
    config = (
        Config(backend="postgres", dsn=Secret(target), pool_max=2)
        if target.startswith("postgres")
        else Config(sqlite_path=Path(target), timeout=30)
    )
    db = await open_async(config)
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        applied = await db.migrate(
            migrations, on_statement=lambda s: print(f"statement: {s[:60]}", flush=True)
        )
    finally:
        await db.close()
    print(json.dumps(applied), flush=True)


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "tests.reliability.sample_migrations"
        )
    )
