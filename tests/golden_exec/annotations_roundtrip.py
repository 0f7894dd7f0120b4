"""Run the generated code of tests/golden/annotations on one backend, every annotation
kind, and print a canonical result (``python annotations_roundtrip.py sqlite <dir>`` or
``python annotations_roundtrip.py <dsn>``). On SQLite the synchronous API runs the same
calls afterwards and must give the same answers."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from aragora_db import NoteState, SyncDatabase, connect
from aragora_db.notes import CopyNotesParams, LabelNotesParams
from aragora_repos import Config, Secret
from tests.golden_exec.canonical import canonical


async def main(target: str, where: str) -> list[object]:
    config = (
        Config(data_dir=Path(where))
        if target == "sqlite"
        else Config(backend="postgres", dsn=Secret(target))
    )
    db = await connect(config)
    await db.migrate()
    n = db.notes
    first = await n.add_note(title="one", body=None, labels=["a", "b"], meta={"k": [1]})
    second = await n.add_note(title="two", body="text", labels=[], meta="s")
    assert first is not None and second is not None
    out: list[object] = [first, second]
    out.append(await n.get_note(id=first.id))
    out.append(await n.get_note(id=-1))
    out.append(await n.list_notes(ids=[second.id, first.id, 99]))
    out.append(await n.copy_notes([CopyNotesParams(f"c{i}", None, [str(i)], {}) for i in range(3)]))
    out.append(await n.label_notes([LabelNotesParams(first.id, ["z"])]))
    await n.publish(id=second.id)
    out.append(await n.note_titles(state=NoteState.PUBLISHED))
    out.append(await n.count_notes())
    out.append([await n.note_body(id=first.id), await n.note_body(id=second.id)])
    out.append(await n.note_body(id=-1))
    out.append(await n.retitle(id=first.id, title="uno"))
    out.append(await n.delete_drafts())
    out.append(await n.note_titles(state=NoteState.PUBLISHED))
    await db.close()
    return out


def sync_main(where: str) -> list[object]:
    """The same calls through the synchronous API, on a second SQLite file."""
    config = Config(data_dir=Path(where))
    with SyncDatabase.open(config) as db:
        db.migrate()
        n = db.notes
        first = n.add_note(title="one", body=None, labels=["a", "b"], meta={"k": [1]})
        second = n.add_note(title="two", body="text", labels=[], meta="s")
        assert first is not None and second is not None
        out: list[object] = [first, second, n.get_note(id=first.id), n.get_note(id=-1)]
        out.append(n.list_notes(ids=[second.id, first.id, 99]))
        out.append(n.copy_notes([CopyNotesParams(f"c{i}", None, [str(i)], {}) for i in range(3)]))
        out.append(n.label_notes([LabelNotesParams(first.id, ["z"])]))
        n.publish(id=second.id)
        out.append(n.note_titles(state=NoteState.PUBLISHED))
        out.append(n.count_notes())
        out.append([n.note_body(id=first.id), n.note_body(id=second.id)])
        out.append(n.note_body(id=-1))
        out.append(n.retitle(id=first.id, title="uno"))
        out.append(n.delete_drafts())
        out.append(n.note_titles(state=NoteState.PUBLISHED))
        return out


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
    if sys.argv[1] == "sqlite":
        assert canonical(sync_main(sys.argv[2] + "-sync")) == canonical(result)
    print(json.dumps(canonical(result)))
