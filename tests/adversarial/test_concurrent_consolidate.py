"""Eight processes consolidating the same legacy directory at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent


def test_eight_consolidations_at_once_copy_each_row_once(tmp_path: Path) -> None:
    source = tmp_path / "legacy"
    source.mkdir()
    for name in ("debates.db", "traces.db", "agent_elo.db"):
        db = sqlite3.connect(source / name)
        db.execute(f'CREATE TABLE "{name[:-3]}_rows" (id INTEGER PRIMARY KEY, body TEXT)')
        db.executemany(
            f'INSERT INTO "{name[:-3]}_rows" VALUES (?, ?)',
            [(i, f"{name}-{i}") for i in range(500)],
        )
        db.commit()
        db.close()
    code = (
        "import sys; from aragora_repos import cli; "
        f"sys.exit(cli.main(['consolidate', '--migrate', '--source', {str(source)!r}]))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    assert [r[0] for r in results] == [0] * 8, [r[1][1] for r in results if r[0]]
    counts = {}
    for target, table in (
        ("core.db", "debates_rows"),
        ("core.db", "traces_rows"),
        ("analytics.db", "agent_elo_rows"),
    ):
        db = sqlite3.connect(source / target)
        counts[table] = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        db.close()
    assert counts == {"debates_rows": 500, "traces_rows": 500, "agent_elo_rows": 500}
    backups = list((source / "backup").iterdir())
    assert len(backups) == 8 and len({b.name for b in backups}) == 8
