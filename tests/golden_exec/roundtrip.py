"""Run the generated code of tests/golden/basic on one backend; print a canonical result.

Invoked in a subprocess with the generated package first on sys.path (it is also named
``aragora_db``), as ``python roundtrip.py sqlite <dir>`` or ``python roundtrip.py <dsn>``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import date
from pathlib import Path
from uuid import UUID

from aragora_db import Mood, connect
from aragora_db.authors import ImportAuthorsParams
from aragora_repos import Config, Secret
from tests.golden_exec.canonical import canonical


async def main(target: str, where: str) -> None:
    config = (
        Config(data_dir=Path(where))
        if target == "sqlite"
        else Config(backend="postgres", dsn=Secret(target))
    )
    db = await connect(config)
    await db.migrate()
    out: list[object] = []
    a = await db.authors.create_author(
        name="Ada",
        bio=None,
        mood=Mood.IN_BETWEEN,
        tags=["x", "é", ""],
        profile={"k": [1, {"n": None}]},
        external=UUID(int=7),
        born_on=date(1815, 12, 10),
    )
    b = await db.authors.create_author(
        name="Bob", bio="b", mood=Mood.SAD, tags=[], profile="s", external=None, born_on=None
    )
    out += [a, b, await db.authors.get_author(id=a.id), await db.authors.count_authors()]
    out.append(await db.authors.list_authors(moods=[Mood.SAD, Mood.IN_BETWEEN]))
    out.append(
        await db.authors.import_authors(
            [ImportAuthorsParams(f"n{i}", Mood.HAPPY, [str(i)]) for i in range(3)]
        )
    )
    out.append(await db.authors.rename_author(name="Ada L.", id=a.id))
    out.append(await db.authors.touch_authors(ids=[a.id, b.id, 999]))
    out.append(await db.authors.latest_bio())
    await db.authors.delete_author(id=b.id)
    out.append(await db.authors.list_authors(moods=list(Mood)))
    print(json.dumps(canonical(out), sort_keys=True))
    await db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
