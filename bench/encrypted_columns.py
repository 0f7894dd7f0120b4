"""What an encrypted column costs per value, on both backends, through the generated code.

``python -m bench.encrypted_columns [--rounds 31]`` (part of ``make bench``): two
databases of one backend hold the same 1,000 integrations of one organization. In one,
``integrations.config`` is sealed with the column key (AES-256-GCM); in the other, the
same generated code runs with a ring that stores the plaintext padded to the sealed
length and returns it unchanged, so the rows, the SQL, the bytes on the wire and the
JSON work are identical and only the cipher differs. Every round times a 1,000-row read
(``list_integrations_for_org``) and 500 upserts in one transaction on each database,
back to back with the order alternating, and takes the difference in CPU time per value
(the process's, every thread's: the cipher runs in the client, and the server's work is
the same on both). Reported: the median cost per value in microseconds and its
interquartile range. Target: under 5 us per value (the whole interquartile range under
it), for reads end to end and for the seal step a write adds before the driver (timed
alone, the same call on both backends; a deterministic seal, AES-SIV, is timed the same
way). The upsert end to end is reported without a target: it seals the value and opens
it again from ``RETURNING *``, so it carries both steps, and its own variation between
rounds is larger than either. Results go to ``bench/results/encrypted_columns.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from aragora_db import Database, connect
from aragora_repos import JSON, Config, Secret
from aragora_repos.keyring import OVERHEAD, KeyRing, RowKey
from bench.harness import save

ROWS = 1000
WRITES = 500
TARGET_US = 5.0
KEY = hashlib.sha256(b"bench column key").digest()


class PlainRing(KeyRing):
    """The same calls and stored sizes as a sealing ring, without the cipher. The padding
    is random, as a nonce is, so an upsert of the same text writes changed bytes on both
    sides."""

    __slots__ = ()

    def seal(
        self,
        plaintext: bytes,
        table: str,
        column: str,
        row: RowKey,
        *,
        deterministic: bool = False,
    ) -> bytes:
        return os.urandom(OVERHEAD) + plaintext

    def open(self, value: bytes, table: str, column: str, row: RowKey) -> bytes:
        return bytes(value)[OVERHEAD:]


def _config(where: str | Path, keys: KeyRing) -> Config:
    if isinstance(where, Path):
        return Config(data_dir=where, encryption=keys)
    return Config(backend="postgres", dsn=Secret(where), pool_max=2, encryption=keys)


async def _fill(db: Database) -> None:
    await db.migrate()
    await db.orgs.create_organization(
        id="org", name="Org", slug="org", tier="free", owner_id=None, settings={}
    )
    async with db.transaction():
        for i in range(ROWS):
            await db.integrations.upsert_integration(
                id=f"i{i}",
                org_id="org",
                provider=f"p{i:04d}",
                config=_config_value(i),
                enabled=True,
            )


def _config_value(i: int) -> JSON:
    return {"access_token": f"xoxb-{i:08d}-" + "t" * 40, "team": "T0123", "scopes": ["chat"]}


async def _time(call: Callable[[], Awaitable[object]]) -> float:
    gc.collect()
    start = time.process_time()
    await call()
    return time.process_time() - start


async def measure(plain: Database, sealed: Database, rounds: int) -> dict[str, dict[str, object]]:
    def read(db: Database) -> Callable[[], Awaitable[object]]:
        return lambda: db.integrations.list_integrations_for_org(org_id="org")

    def write(db: Database) -> Callable[[], Awaitable[object]]:
        async def go() -> None:
            async with db.transaction():
                for i in range(WRITES):
                    await db.integrations.upsert_integration(
                        id="x",
                        org_id="org",
                        provider=f"p{i:04d}",
                        config=_config_value(i),
                        enabled=True,
                    )

        return go

    out: dict[str, dict[str, object]] = {}
    for name, make, values, target in (
        ("read, per value (1,000-row list)", read, ROWS, True),
        (f"write, per value ({WRITES} upserts, one transaction)", write, WRITES, False),
    ):
        for db in (plain, sealed):
            await make(db)()  # warm up
        out[name] = await _rounds(
            {"plain": make(plain), "sealed": make(sealed)}, values, rounds, target
        )
    return out


async def _rounds(
    calls: dict[str, Callable[[], Awaitable[object]]], values: int, rounds: int, target: bool
) -> dict[str, object]:
    costs, plain_us = [], []
    for r in range(rounds):
        pair = list(calls.items())
        if r % 2:
            pair.reverse()
        got = {label: await _time(call) for label, call in pair}
        costs.append((got["sealed"] - got["plain"]) / values * 1e6)
        plain_us.append(got["plain"] / values * 1e6)
    q1, median, q3 = statistics.quantiles(costs, n=4)
    result: dict[str, object] = {
        "cost_us": round(median, 2),
        "iqr_low": round(q1, 2),
        "iqr_high": round(q3, 2),
        "plain_us_per_value": round(statistics.median(plain_us), 2),
        "rounds": rounds,
        "per_round_us": [round(c, 3) for c in costs],
    }
    if target:
        result |= {"target_us": TARGET_US, "met": float(q3 < TARGET_US)}
    return result


async def seal_step(rounds: int) -> dict[str, object]:
    """What a generated write adds before the driver: the seal of each value (the same
    call on every backend), 1,000 values per round."""
    values = [_config_value(i) for i in range(ROWS)]

    def sealing(ring: KeyRing) -> Callable[[], Awaitable[object]]:
        async def go() -> None:
            for i, v in enumerate(values):
                ring.seal_json(v, "integrations", "config", ("org", f"p{i:04d}"))

        return go

    return await _rounds(
        {"plain": sealing(PlainRing(KEY)), "sealed": sealing(KeyRing(KEY))}, ROWS, rounds, True
    )


async def deterministic_step(rounds: int) -> dict[str, object]:
    """The same for a deterministic column (AES-SIV): a share link's token, 1,000 per
    round."""
    tokens = [f"{i:08d}" + "k" * 35 for i in range(ROWS)]

    def sealing(ring: KeyRing) -> Callable[[], Awaitable[object]]:
        async def go() -> None:
            for t in tokens:
                ring.seal_text(t, "share_links", "token", (), deterministic=True)

        return go

    return await _rounds(
        {"plain": sealing(PlainRing(KEY)), "sealed": sealing(KeyRing(KEY))}, ROWS, rounds, True
    )


@asynccontextmanager
async def _pair(where: tuple[str | Path, str | Path]) -> AsyncIterator[tuple[Database, Database]]:
    async with AsyncExitStack() as stack:
        dbs = []
        for place, ring in zip(where, (PlainRing(KEY), KeyRing(KEY)), strict=True):
            db = await connect(_config(place, ring))
            stack.push_async_callback(db.close)
            await _fill(db)
            dbs.append(db)
        yield dbs[0], dbs[1]


async def run(rounds: int) -> dict[str, object]:
    from tests.pg_server import find_server, fresh_database

    results: dict[str, object] = {
        "write, per value: the seal step": await seal_step(rounds),
        "deterministic seal (a token or its lookup), per value": await deterministic_step(rounds),
    }
    with tempfile.TemporaryDirectory() as tmp:
        async with _pair((Path(tmp) / "plain", Path(tmp) / "sealed")) as (plain, sealed):
            print("  sqlite", flush=True)
            results["sqlite"] = await measure(plain, sealed, rounds)
    with find_server() as server:
        if server is None:
            raise SystemExit("no PostgreSQL server for the benchmarks")
        with fresh_database(server.admin_dsn) as a, fresh_database(server.admin_dsn) as b:
            async with _pair((a, b)) as (plain, sealed):
                print("  postgresql", flush=True)
                results["postgresql"] = await measure(plain, sealed, rounds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.encrypted_columns")
    parser.add_argument("--rounds", type=int, default=31)
    args = parser.parse_args()
    print(save("encrypted_columns", asyncio.run(run(args.rounds))))


if __name__ == "__main__":
    main()
