"""refuse_json_equality: json/jsonb compared with = has no faithful SQLite form (jsonb
equality ignores key order and spacing; text equality does not), so it is refused."""

from __future__ import annotations

from codegen.dialects.sqlite import refuse_json_equality
from tests.dialect.support import Refusal

REFUSALS = [
    Refusal(
        "json_equality",
        refuse_json_equality,
        "SELECT a FROM t WHERE a::jsonb = '{}'::jsonb",
        "CAST(a AS JSONB) = CAST('{}' AS JSONB)",
    ),
]
