"""A migrator process: ``python -m tests.reliability.migrator TARGET START [MODULE]``.

Waits until the wall-clock time START so that all processes begin together, applies
the migrations of MODULE (default: the sample set) to TARGET (a SQLite path or a
PostgreSQL DSN) and prints the versions it applied as JSON.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import time
from pathlib import Path

from aragora_repos import Config, Secret, open_async


async def main(target: str, start: float, module: str) -> None:
    migrations = importlib.import_module(module).MIGRATIONS
    config = (
        Config(backend="postgres", dsn=Secret(target), pool_max=2)
        if target.startswith("postgres")
        else Config(sqlite_path=Path(target), timeout=30)
    )
    time.sleep(max(0.0, start - time.time()))
    db = await open_async(config)
    try:
        applied = await db.migrate(migrations)
    finally:
        await db.close()
    print(json.dumps(applied), flush=True)


if __name__ == "__main__":
    asyncio.run(
        main(
            sys.argv[1],
            float(sys.argv[2]),
            sys.argv[3] if len(sys.argv) > 3 else "tests.reliability.sample_migrations",
        )
    )
