"""A slow migration that cannot run in a transaction (PostgreSQL), for the SIGKILL test."""

from tests.reliability.test_migrations import _slow

MIGRATIONS = _slow(transactional=False)
