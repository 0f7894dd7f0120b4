"""Data tools on top of the runtime core: bringing data in and between layouts.

``migrate_data`` copies a SQLite file into PostgreSQL (typed, resumable, verifiable);
``convert`` holds its value conversion rules and ``canonical`` the canonical forms its
verification compares; ``import_sqlite`` writes a migration from
someone else's SQLite schema; ``layout`` finds Aragora's database files and consolidates
the legacy layout; ``backup_sets`` takes, prunes, verifies and restores backup sets;
``slugs`` derives Aragora's debate slugs. The core (:mod:`aragora_repos`) never imports
this package; the CLI builds on both.
"""
