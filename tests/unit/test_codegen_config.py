"""codegen.config: sqlc.yaml configures the generator with keys sqlc itself accepts
(``name`` per sql entry, top-level ``options.aragora.out``); mistakes point at their line."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegen.config import load_config
from codegen.errors import CodegenError

ENTRY = """  - {name}engine: "postgresql"
    schema: "{schema}"
    queries: "{queries}"
    gen:
      json:
        out: "build/{json}"
        filename: "request.json"
"""


def project(tmp_path: Path, *entries: str, head: str = "") -> Path:
    for sub in ("a/schema", "a/queries", "b/schema", "b/queries"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    (tmp_path / "sqlc.yaml").write_text(f'version: "2"\n{head}sql:\n' + "".join(entries))
    return tmp_path


def entry(name: str | None, where: str = "a", json: str | None = None) -> str:
    named = f'name: "{name}"\n    ' if name is not None else ""
    return ENTRY.format(
        name=named, schema=f"{where}/schema", queries=f"{where}/queries", json=json or where
    )


def problems(root: Path) -> list[str]:
    with pytest.raises(CodegenError) as info:
        load_config(root)
    return [str(p) for p in info.value.problems]


def test_one_unnamed_entry_is_aragora_db_in_generated(tmp_path: Path) -> None:
    config = load_config(project(tmp_path, entry(None)))
    (only,) = config.entries
    assert (config.out, only.package, only.schema_out) == ("generated", "aragora_db", "schema")


def test_several_entries_are_several_packages(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        entry("notes_db"),
        entry("billing", "b"),
        head='options:\n  aragora:\n    out: "src/gen"\n',
    )
    config = load_config(root)
    assert config.out == "src/gen" and config.packages == ("notes_db", "billing")
    assert [e.schema_out for e in config.entries] == ["schema/notes_db", "schema/billing"]
    assert [e.schema_dir for e in config.entries] == ["a/schema", "b/schema"]


def test_mistakes_point_at_their_line(tmp_path: Path) -> None:
    assert problems(project(tmp_path, entry("notes_db"), entry(None, "b"))) == [
        "sqlc.yaml:11:5: expected a value for name"
    ]
    assert problems(project(tmp_path, entry("class"))) == [
        "sqlc.yaml:3:11: name 'class' is not a Python package name"
    ]
    assert problems(project(tmp_path, entry("x"), entry("x", "b"))) == [
        "sqlc.yaml:11:11: package 'x' is generated twice"
    ]
    assert problems(project(tmp_path, entry("x"), entry("y", "b", json="a"))) == [
        "sqlc.yaml:16:7: each sql entry needs its own gen.json out and filename"
    ]
    head = 'options:\n  aragora:\n    out: "../elsewhere"\n'
    assert problems(project(tmp_path, entry(None), head=head)) == [
        "sqlc.yaml:4:10: options.aragora.out must be a directory inside the project"
    ]
