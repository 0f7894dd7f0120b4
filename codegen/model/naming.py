"""Names in generated Python: snake_case methods, PascalCase classes, safe identifiers."""

from __future__ import annotations

import re

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    out = _CAMEL.sub("_", name).replace("-", "_").lower()
    out = re.sub(r"\W", "_", out)
    return safe(out)


def pascal(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[_\W]+", name) if p)


def upper(name: str) -> str:
    return snake(name).rstrip("_").upper()


#: Keywords and soft keywords as of Python 3.11, fixed here rather than read from the
#: running interpreter: 3.12 made ``type`` a soft keyword, and generated code must not
#: depend on the Python that runs the generator (``codegen check`` on 3.12 would call the
#: committed tree stale). Soft keywords stay valid names in later versions.
RESERVED = frozenset(
    [
        *("False", "None", "True", "and", "as", "assert", "async", "await", "break"),
        *("class", "continue", "def", "del", "elif", "else", "except", "finally", "for"),
        *("from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or"),
        *("pass", "raise", "return", "try", "while", "with", "yield"),
        *("_", "case", "match"),
        *("self", "cls"),
    ]
)


def safe(name: str) -> str:
    """Python keywords and soft keywords get a trailing underscore."""
    if name in RESERVED:
        return name + "_"
    if name[:1].isdigit():
        return "_" + name
    return name


def singular(table: str) -> str:
    """Model class name for a table: ``users`` -> ``User``, ``audit_log`` -> ``AuditLog``."""
    words = table.split("_")
    last = words[-1]
    if last.endswith("ies"):
        last = last[:-3] + "y"
    elif last.endswith(("sses", "xes", "ches", "shes")):
        last = last[:-2]
    elif last.endswith("s") and not last.endswith(("ss", "us")):
        last = last[:-1]
    return pascal("_".join([*words[:-1], last]))


def enum_member(value: str) -> str:
    name = re.sub(r"\W+", "_", value).strip("_").upper() or "EMPTY"
    return "_" + name if name[0].isdigit() else name
