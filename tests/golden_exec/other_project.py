"""Run the two packages another project generated (``notes_db`` and ``tags_db``), each on
its own database: ``python other_project.py sqlite <dir>`` or ``python other_project.py
<notes dsn> <tags dsn>``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import notes_db
import tags_db

from aragora_repos import Config, Secret


async def main(target: str, where: str) -> list[object]:
    if target == "sqlite":
        config, tags_config = Config(data_dir=Path(where)), Config(data_dir=Path(where) / "tags")
    else:
        config = Config(backend="postgres", dsn=Secret(target))
        tags_config = Config(backend="postgres", dsn=Secret(where))
    notes = await notes_db.connect(config)
    await notes.migrate()
    added = await notes.notes.add_note(title="t", body=None, labels=["x"], meta={})
    assert added is not None
    out: list[object] = [await notes.notes.count_notes(), added.labels]
    await notes.close()
    tags = await tags_db.connect(tags_config)
    await tags.migrate()
    await tags.tags.add_tag(name="red")
    out.append([t.name for t in await tags.tags.list_tags()])
    await tags.close()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))))
