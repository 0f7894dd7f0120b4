"""``python -m aragora_repos`` runs the CLI."""

import sys

from aragora_repos.cli import main

sys.exit(main())
