"""Peak memory of reading N audit rows: a :many list against its streaming form.

Usage: ``python -m bench.stream_memory TARGET fill|list|iter N``, TARGET a data directory
(SQLite) or a PostgreSQL DSN; ``fill`` first, then ``list`` and ``iter`` each in a process
of its own (peak RSS is per process)."""

import asyncio
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aragora_db
from aragora_db.audit import AppendAuditEventsParams
from aragora_repos import Config, Secret

N = int(sys.argv[3])


async def main(target: str, mode: str) -> None:
    config = (
        Config(backend="postgres", dsn=Secret(target))
        if target.startswith("postgresql")
        else Config(data_dir=Path(target))
    )
    db = await aragora_db.connect(config)
    await db.migrate()
    if mode == "fill":
        start = datetime(2024, 1, 1, tzinfo=UTC)
        await db.audit.append_audit_events(
            AppendAuditEventsParams(
                start + timedelta(seconds=i),
                "u",
                "o1",
                "login",
                "session",
                str(i),
                {"i": i, "pad": "x" * 100},
                None,
                None,
            )
            for i in range(N)
        )
        await db.close()
        return
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if mode == "list":
        n = len(await db.audit.list_audit_events_by_org(org_id="o1", off=0, lim=N))
    else:
        n = 0
        async for _ in db.audit.list_audit_events_by_org_iter(org_id="o1", off=0, lim=N):
            n += 1
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"{mode}: {n} rows, peak RSS +{(after - before) / 1024:.0f} MiB, "
        f"{time.perf_counter() - t:.1f} s"
    )
    await db.close()


asyncio.run(main(sys.argv[1], sys.argv[2]))
