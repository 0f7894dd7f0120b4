"""``aragora-repos``: migrations, schema checks and health from the command line.

Both forms work::

    aragora-repos migrate --status | --dry-run | --migrate | --rollback | --rollback-to N
                          | --create "Add user lockout fields" | --repair  [--no-backup]
    aragora-repos migrate status | plan | up | down [--to N] | create NAME | repair
    aragora-repos check [--database-url URL]     # drift between the database and sql/
    aragora-repos backup [--verify] [--keep-days N] | restore PATH [--no-backup]
    aragora-repos schema-diff --base REF         # Markdown review of schema changes
    aragora-repos migrate-data --sqlite-path .nomic/core.db [--verify] [--dry-run] ...
    aragora-repos consolidate --dry-run | --migrate | --verify --source DIR [--target DIR]
    aragora-repos import-sqlite FILE.db|SCHEMA.sql [--schema-dir sql/schema] [--print]
    aragora-repos adopt --source DIR|FILE [--target sqlite|postgres] [--dry-run] [--verify]

The backend comes from the environment (see ``aragora_repos.config``) unless
``--database-url`` is given. What the CLI works on is passed in as an :class:`App`: a
generated package's ``__main__`` (``python -m aragora_db``, the ``aragora-repos``
script) passes its migrations, its expected schema and, where the generator is
installed, the schema review; the runtime never imports either by name.
"""

from aragora_repos.cli.args import UsageError, parser
from aragora_repos.cli.main import main
from aragora_repos.cli.migrate import App, schema_dir, status

__all__ = ["App", "UsageError", "main", "parser", "schema_dir", "status"]
