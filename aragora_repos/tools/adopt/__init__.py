"""Adopt an existing installation: its SQLite stores, in whichever layout, mapped into
this project's schema and copied into its SQLite database or PostgreSQL."""

from aragora_repos.tools.adopt.run import AdoptedTable, AdoptReport, adopt
from aragora_repos.tools.adopt.sources import Found, SourceFile, find_sources

__all__ = ["AdoptReport", "AdoptedTable", "Found", "SourceFile", "adopt", "find_sources"]
