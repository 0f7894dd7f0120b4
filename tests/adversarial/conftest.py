"""Fixtures shared with the data-movement tests."""

from __future__ import annotations

from tests.migrate_data.conftest import target_dsn

__all__ = ["target_dsn"]
