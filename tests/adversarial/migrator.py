"""A migrator process for the concurrent backup test.

``python -m tests.adversarial.migrator TARGET BACKUP_ROOT``: opens TARGET (a SQLite path
or a PostgreSQL DSN), prints ``ready``, waits for a line on stdin (so that every process
starts together), migrates with a backup under BACKUP_ROOT and prints JSON: the versions
it applied and the backup it took.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from aragora_repos import Config, Secret, open_async
from tests.adversarial.drop_column import MIGRATIONS


async def main(target: str, root: str) -> None:
    config = (
        Config(backend="postgres", dsn=Secret(target), pool_max=2)
        if target.startswith("postgres")
        else Config(sqlite_path=Path(target), timeout=60)
    )
    db = await open_async(config)
    backups: list[str | None] = []
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        applied = await db.migrate(
            MIGRATIONS,
            backup_to=Path(root),
            on_backup=lambda where: backups.append(str(where) if where else None),
        )
    finally:
        await db.close()
    print(json.dumps({"applied": applied, "backups": backups}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
