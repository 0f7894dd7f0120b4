"""Where a run's connections go: the target database, through the pooler in front of it.

A run opens up to six connections: its lock, two copiers, a read-back per copier and
the row path's verifier (these three with ``--verify``). Behind a pooler each one needs a server
connection of the pool, and one of them (the lock's open transaction) holds its server
connection for the whole run. A pool too small for that would leave the run waiting on
itself until the pooler gives up (PgBouncer's ``query_wait_timeout``, 120 s by
default): every connection here asks for its server connection first, within
:data:`POOL_WAIT` seconds, and the run is refused with the reason instead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from aragora_repos import errors
from aragora_repos.backends.postgres import connect_one
from aragora_repos.config import POOLERS, Secret

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

#: Seconds a connection opened behind a pooler waits for a server connection.
POOL_WAIT = 10.0

#: How long a run waits for the lock of its source before refusing to start.
RUN_LOCK_WAIT = "2s"


def run_lock_name(source_id: str) -> str:
    """What the advisory lock of a run of ``source_id`` is keyed by (hashed in SQL)."""
    return f"aragora_migrate:{source_id}"


@dataclass(frozen=True)
class Target:
    """The target database's DSN, the pooler in front of it (``ARAGORA_POSTGRES_POOLER``)
    and, past the pooler, the server itself (``ARAGORA_POSTGRES_DIRECT_DSN``), where the
    run's lock is taken when it is given."""

    dsn: Secret
    pooler: str = "none"
    direct: Secret | None = None

    def __post_init__(self) -> None:
        if self.pooler not in POOLERS:
            raise errors.ConfigError(
                f"pooler must be one of {', '.join(POOLERS)}, got {self.pooler!r}"
            )

    async def connect(self) -> Connection:
        """A connection for copying or reading back: behind a transaction pooler no
        statement is prepared under a name, and the pooler is asked for a server
        connection before the connection is handed out.

        Raises:
            MigrationError: the pool gave no server connection within :data:`POOL_WAIT`.
        """
        conn = await connect_one(self.dsn, pooler=self.pooler)
        if self.pooler != "none":
            await _served(conn, self.pooler)
        return conn

    async def lock(self, source_id: str) -> Connection:
        """A connection whose open transaction holds the lock of ``source_id`` in this
        database for the run.

        Two runs of one source at once would each copy the rows the other has not
        committed yet and record the other's rows as duplicates; the second is refused
        instead. A transaction-level lock: a transaction pooler keeps the server
        connection for the run, and a killed run's lock ends with its connection. With
        a direct DSN the lock is taken there and takes nothing from the pool.

        Raises:
            MigrationError: another run of this source into this database holds the
                lock, or the pool gave no server connection in time.
        """
        if self.direct is not None:
            conn = await connect_one(self.direct)
        else:
            conn = await self.connect()
        try:
            # A killed run's server session may take a moment to notice: wait that long.
            await conn.execute(f"BEGIN; SET LOCAL lock_timeout = '{RUN_LOCK_WAIT}'")
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", run_lock_name(source_id)
            )
        except asyncpg.LockNotAvailableError:
            await conn.close()
            raise errors.MigrationError(
                f"migrate-data: another run is copying {source_id} into this database; "
                "wait for it to end (or stop it: a killed run resumes where it stopped)"
            ) from None
        except BaseException:
            await conn.close()
            raise
        return conn


async def _served(conn: Connection, pooler: str) -> None:
    """Wait for the pooler to give ``conn`` a server connection, at most POOL_WAIT s."""
    try:
        async with asyncio.timeout(POOL_WAIT):
            await conn.execute("SELECT 1")
    except TimeoutError:
        conn.terminate()  # its query may still wait in the pooler's queue
        need = (
            "2 per run (the run's lock holds one while the copies share the rest)"
            if pooler == "transaction"
            else "6 per run (its lock, two copiers, their read-backs and a verifier each hold one)"
        )
        raise errors.MigrationError(
            f"migrate-data: the {pooler} pooler gave no server connection within "
            f"{POOL_WAIT:g} s; the run needs at least {need} (PgBouncer's "
            "default_pool_size), or ARAGORA_POSTGRES_DIRECT_DSN for its lock"
        ) from None
    except BaseException:
        conn.terminate()
        raise
