"""Load and validate ``sqlc.yaml``; every problem points at the file, line and column.

The generator is configured in sqlc's own file, with keys sqlc accepts: each ``sql``
entry is one generated package, named by the entry's ``name`` (default ``aragora_db``
when there is one entry); the top-level ``options: {aragora: {out: DIR}}`` sets the output
directory (default ``generated``). With several entries, each package's schema snapshots
go to ``<out>/schema/<name>/``; with one, to ``<out>/schema/``.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from .errors import CodegenError, Problem

CONFIG_NAME = "sqlc.yaml"
DEFAULT_PACKAGE = "aragora_db"
DEFAULT_OUT = "generated"


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``sql`` entry: one generated package. Paths are relative to ``root``."""

    root: Path
    schema_dir: str
    queries_dir: str
    json_out: str
    json_filename: str
    package: str = DEFAULT_PACKAGE
    schema_out: str = "schema"
    """Where the package's schema snapshots go, inside the output directory."""

    @property
    def request_path(self) -> Path:
        return self.root / self.json_out / self.json_filename


@dataclass(frozen=True, slots=True)
class Config:
    """What the generator needs from ``sqlc.yaml``."""

    root: Path
    entries: tuple[Entry, ...]
    out: str = DEFAULT_OUT

    @property
    def schema_dir(self) -> str:
        """The first package's schema directory (the schema review reads one)."""
        return self.entries[0].schema_dir

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(e.package for e in self.entries)


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
    if not isinstance(sql, yaml.SequenceNode) or not sql.value:
        problems.append(_mark(sql or doc, name, "expected at least one entry under sql"))
        raise CodegenError(problems)
    out = _out_dir(doc, problems)
    several = len(sql.value) > 1
    entries: list[Entry] = []
    for node in sql.value:
        entry = _entry(root, node, several, problems)
        if entry is None:
            continue
        for earlier in entries:
            if entry.package == earlier.package:
                where = _mapping_get(node, "name") or node
                problems.append(_mark(where, name, f"package {entry.package!r} is generated twice"))
            if entry.request_path == earlier.request_path:
                where = _mapping_get(node, "gen") or node
                problems.append(
                    _mark(where, name, "each sql entry needs its own gen.json out and filename")
                )
        entries.append(entry)
    if problems:
        raise CodegenError(problems)
    return Config(root, tuple(entries), out)


def _out_dir(doc: yaml.Node, problems: list[Problem]) -> str:
    options = _mapping_get(doc, "options")
    ours = _mapping_get(options, "aragora") if options is not None else None
    node = _mapping_get(ours, "out") if ours is not None else None
    if node is None:
        return DEFAULT_OUT
    value = str(node.value) if isinstance(node, yaml.ScalarNode) else ""
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts:
        problems.append(
            _mark(node, CONFIG_NAME, "options.aragora.out must be a directory inside the project")
        )
        return DEFAULT_OUT
    return value


def _entry(root: Path, entry: yaml.Node, several: bool, problems: list[Problem]) -> Entry | None:
    name = CONFIG_NAME
    before = len(problems)

    def scalar(parent: yaml.Node, key: str) -> str | None:
        node = _mapping_get(parent, key)
        if not isinstance(node, yaml.ScalarNode) or not node.value:
            problems.append(_mark(node or parent, name, f"expected a value for {key}"))
            return None
        return str(node.value)

    engine = _mapping_get(entry, "engine")
    if not isinstance(engine, yaml.ScalarNode) or engine.value != "postgresql":
        problems.append(_mark(engine or entry, name, 'engine must be "postgresql"'))
    package = DEFAULT_PACKAGE
    package_node = _mapping_get(entry, "name")
    if package_node is not None or several:
        package = scalar(entry, "name") or DEFAULT_PACKAGE
        if package_node is not None and (not package.isidentifier() or keyword.iskeyword(package)):
            problems.append(
                _mark(package_node, name, f"name {package!r} is not a Python package name")
            )
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
    if len(problems) > before:
        return None
    assert schema and queries and out and filename
    schema_out = f"schema/{package}" if several else "schema"
    return Entry(root, schema, queries, out, filename, package, schema_out)
