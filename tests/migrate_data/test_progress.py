"""The per-table progress display: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
import re

from aragora_repos.tools.migrate_data import Progress


def test_plain_lines_without_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(stream, tty=False)
    progress.start("posts", 1000, 200)
    progress.advance(300)  # within 5 s of the start: no line yet
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "posts: 1,000 rows, 200 done earlier"
    assert re.fullmatch(r"posts +500/1,000 rows +[\d,]+ rows/s ETA - done", lines[1])
    assert len(lines) == 2


def test_a_bar_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(stream, tty=True)
    progress.start("users", 100, 0)
    progress.shown -= 1  # as if the last redraw was a second ago
    progress.advance(50)
    progress.advance(50)  # within 0.1 s of the last redraw: drawn by finish()
    progress.finish()
    text = stream.getvalue()
    first, final = text.split("\r")[1:3]
    assert first.startswith("[##########          ] users") and "50/100 rows" in first
    assert re.search(r"ETA \d+ s", first)
    assert final.startswith("[" + "#" * 20 + "] users") and final.endswith("ETA -\x1b[K\n")
