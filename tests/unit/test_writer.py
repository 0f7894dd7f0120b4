"""codegen.writer: the only writer. All files or none, stale files gone, nothing left
behind; ``diff`` reports every change, including files the generator no longer makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegen.writer import diff, write


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_write_replaces_the_output_exactly(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    write(out, {"pkg/a.py": "a\n", "pkg/b.py": "b\n", "schema/x.sql": "x\n"})
    write(out, {"pkg/a.py": "a2\n"})
    assert _tree(out) == {"pkg/a.py": "a2\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated"]  # no staging, no .old


def test_a_failed_write_leaves_the_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "generated"
    write(out, {"pkg/a.py": "old\n"})
    real = Path.write_text
    calls = 0

    def failing(self: Path, data: str, *args: object, **kwargs: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(28, "No space left on device")
        return real(self, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OSError, match="No space left"):
        write(out, {"pkg/a.py": "new\n", "pkg/b.py": "new\n"})
    assert _tree(out) == {"pkg/a.py": "old\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated"]


def test_diff_names_changed_new_and_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    write(out, {"a.py": "same\n", "b.py": "old\n", "stale.py": "x\n"})
    (out / "__pycache__").mkdir()
    (out / "__pycache__" / "a.cpython-311.pyc").write_text("ignored")
    assert diff(out, {"a.py": "same\n", "b.py": "old\n", "stale.py": "x\n"}) == []
    lines = "".join(diff(out, {"a.py": "same\n", "b.py": "new\n", "c.py": "c\n"}))
    assert "-old\n+new\n" in lines
    assert "+++ b/generated/c.py" in lines and "+c\n" in lines
    assert "generated/stale.py: not produced by the generator" in lines
    assert "generated/a.py" not in lines  # unchanged, and its bytecode is not output


def test_diff_of_a_missing_output_lists_every_file(tmp_path: Path) -> None:
    lines = "".join(diff(tmp_path / "nothing", {"a.py": "a\n"}))
    assert "+++ b/generated/a.py" in lines
