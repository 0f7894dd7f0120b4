"""A slow transactional migration, for the SIGKILL test."""

from tests.reliability.test_migrations import _slow

MIGRATIONS = _slow(transactional=True)
