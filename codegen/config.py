"""Load and validate ``sqlc.yaml``; every problem points at the file, line and column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from codegen.errors import CodegenError, Problem

CONFIG_NAME = "sqlc.yaml"


@dataclass(frozen=True, slots=True)
class Config:
    """What the generator needs from ``sqlc.yaml``; paths are relative to ``root``."""

    root: Path
    schema_dir: str
    queries_dir: str
    json_out: str
    json_filename: str

    @property
    def request_path(self) -> Path:
        return self.root / self.json_out / self.json_filename


def _mark(node: yaml.Node, name: str, message: str) -> Problem:
    return Problem(name, node.start_mark.line + 1, node.start_mark.column + 1, message)


def _mapping_get(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            found: yaml.Node = v
            return found
    return None


def load_config(root: Path) -> Config:
    """Read ``root/sqlc.yaml``; raise :class:`CodegenError` listing every problem."""
    path = root / CONFIG_NAME
    name = CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CodegenError([Problem(name, 1, 1, f"cannot read config: {exc.strerror}")]) from exc
    try:
        doc = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise CodegenError([Problem(name, line, col, f"invalid yaml: {exc.problem}")]) from exc
    if not isinstance(doc, yaml.MappingNode):
        raise CodegenError([Problem(name, 1, 1, "config must be a mapping")])

    problems: list[Problem] = []
    version = _mapping_get(doc, "version")
    if not isinstance(version, yaml.ScalarNode) or version.value != "2":
        where = version or doc
        problems.append(_mark(where, name, 'expected version: "2"'))
    sql = _mapping_get(doc, "sql")
    if not isinstance(sql, yaml.SequenceNode) or len(sql.value) != 1:
        problems.append(_mark(sql or doc, name, "expected exactly one entry under sql"))
        raise CodegenError(problems)
    entry = sql.value[0]

    def scalar(parent: yaml.Node, key: str) -> str | None:
        node = _mapping_get(parent, key)
        if not isinstance(node, yaml.ScalarNode) or not node.value:
            problems.append(_mark(node or parent, name, f"expected a value for {key}"))
            return None
        return str(node.value)

    engine = _mapping_get(entry, "engine")
    if not isinstance(engine, yaml.ScalarNode) or engine.value != "postgresql":
        problems.append(_mark(engine or entry, name, 'engine must be "postgresql"'))
    schema = scalar(entry, "schema")
    queries = scalar(entry, "queries")
    for key, value in (("schema", schema), ("queries", queries)):
        if value is not None and not (root / value).is_dir():
            node = _mapping_get(entry, key)
            assert node is not None
            problems.append(_mark(node, name, f"{key} directory {value!r} does not exist"))
    gen = _mapping_get(entry, "gen")
    json_node = _mapping_get(gen, "json") if gen is not None else None
    out = filename = None
    if json_node is None:
        problems.append(_mark(gen or entry, name, "expected gen.json (sqlc's JSON request)"))
    else:
        out = scalar(json_node, "out")
        filename_node = _mapping_get(json_node, "filename")
        filename = "codegen_request.json"
        if isinstance(filename_node, yaml.ScalarNode) and filename_node.value:
            filename = str(filename_node.value)
    if problems:
        raise CodegenError(problems)
    assert schema and queries and out and filename
    return Config(root, schema, queries, out, filename)
