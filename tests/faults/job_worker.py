"""One worker process of the job-queue fault test: ``job_worker.py BACKEND TARGET NAME``
(BACKEND sqlite with TARGET a data directory, or postgres with TARGET a DSN). It runs
passes of ``work_once`` until no job is queued or running; each job's effect is a row of
``job_effects`` written in the job's completion transaction."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from aragora_db import connect
from aragora_repos import Config, Secret
from aragora_repos.tools.jobs import work_once


async def main(backend: str, target: str, name: str) -> None:
    config = (
        Config(data_dir=Path(target))
        if backend == "sqlite"
        else Config(backend="postgres", dsn=Secret(target), pool_max=2)
    )
    db = await connect(config)
    insert = (
        "INSERT INTO job_effects (job_id, worker) VALUES (?, ?)"
        if backend == "sqlite"
        else "INSERT INTO job_effects (job_id, worker) VALUES ($1, $2)"
    )

    async def handler(job: Any) -> Any:
        await db.backend.execute(insert, (job.id, name))
        return {"by": name}

    try:
        while True:
            report = await work_once(
                db,
                handler,
                queue="fault",
                worker=name,
                batch=20,
                visibility_ms=2000,
                base_backoff_ms=10,
            )
            if report.claimed == 0:
                counts = {
                    c.status: c.jobs for c in await db.jobs.count_jobs_by_status(queue="fault")
                }
                if not counts.get("queued") and not counts.get("running"):
                    return
                await asyncio.sleep(0.05)  # nothing ready: leases of killed workers run out
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
