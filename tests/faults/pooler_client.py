"""One application process of the pooler load test: ``pooler_client.py DSN DIRECT POOLER
WORKER SECONDS``. Its own pool of 10 runs mixed reads, writes and run_in_transaction
until SECONDS pass, then prints one JSON line: operations, errors by type, latencies,
and the keys whose writes were acknowledged."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aragora_repos import CommitOutcomeUnknown, Config, DatabaseError, Secret, open_async


async def main(dsn: str, direct: str, pooler: str, worker: int, seconds: float) -> None:
    config = Config(
        backend="postgres",
        dsn=Secret(dsn),
        pool_max=10,
        pooler=pooler,  # type: ignore[arg-type]
        direct_dsn=Secret(direct),
    )
    db = await open_async(config)
    acked: list[str] = []
    unknown: list[str] = []
    errors: dict[str, int] = {}
    latencies: list[float] = []
    until = time.monotonic() + seconds

    async def task(t: int) -> None:
        n = 0
        while time.monotonic() < until:
            n += 1
            key = f"{worker}-{t}-{n}"
            started = time.perf_counter()
            try:
                if n % 3 == 0:

                    async def both(key: str = key) -> None:
                        await db.execute("INSERT INTO pooled_rows (key) VALUES ($1)", (key,))
                        await db.fetchrow("SELECT count(*) FROM pooled_rows", (), readonly=True)

                    await db.run_in_transaction(both)
                else:
                    await db.execute("INSERT INTO pooled_rows (key) VALUES ($1)", (key,))
                acked.append(key)
                row = await db.fetchrow(
                    "SELECT count(*) FROM pooled_rows WHERE key = $1", (key,), readonly=True
                )
                if row is None or row[0] != 1:
                    errors["read-after-write"] = errors.get("read-after-write", 0) + 1
            except CommitOutcomeUnknown:
                unknown.append(key)
            except DatabaseError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(task(t) for t in range(10)))
    await db.close()
    print(
        json.dumps({"acked": acked, "unknown": unknown, "errors": errors, "latencies": latencies})
    )


if __name__ == "__main__":
    dsn, direct, pooler, worker, seconds = sys.argv[1:6]
    asyncio.run(main(dsn, direct, pooler, int(worker), float(seconds)))
