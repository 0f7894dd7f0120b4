"""The PostgreSQL backend (asyncpg): pools, replicas, transactions, migrations."""

from aragora_repos.backends.postgres.database import PostgresDatabase
from aragora_repos.backends.postgres.driver import connect_one
from aragora_repos.backends.postgres.migrate import COUNT_TABLES
from aragora_repos.backends.postgres.session import Listener, Notification, Session

__all__ = [
    "COUNT_TABLES",
    "Listener",
    "Notification",
    "PostgresDatabase",
    "Session",
    "connect_one",
]
