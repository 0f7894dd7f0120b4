"""Every rule family's cases, run and checked against the rule each names.

A case's translation must be its expected text; without the rule it names, it must not
be (or, for a refusal, must not be refused for that construct); a case naming no rule
must need none. Every rule in ``RULES`` must be named by a case.
"""

from __future__ import annotations

import pytest

from codegen.dialects import sqlite
from codegen.dialects.sqlite import Untranslatable, translate_query
from tests.dialect import (
    test_casts_and_literals,
    test_json,
    test_numeric_and_containers,
    test_ordering,
    test_placeholders_and_lists,
    test_sqlglot_base,
    test_text,
    test_time,
)
from tests.dialect.support import Case, Refusal, translate_with, without

FAMILIES = (
    test_casts_and_literals,
    test_json,
    test_numeric_and_containers,
    test_ordering,
    test_placeholders_and_lists,
    test_sqlglot_base,
    test_text,
    test_time,
)
CASES: list[Case] = [c for f in FAMILIES for c in getattr(f, "CASES", [])]
REFUSALS: list[Refusal] = [c for f in FAMILIES for c in getattr(f, "REFUSALS", [])]


def _id(case: Case | Refusal) -> str:
    return f"{case.rule.__name__ if case.rule else 'sqlglot'}:{case.id}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_translation(case: Case) -> None:
    assert translate_query(case.pg, case.ctx) == case.expected


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_the_case_needs_its_rule(case: Case) -> None:
    if case.rule is None:
        for rule in sqlite.RULES:
            assert translate_with(case.pg, case.ctx, without(rule)) == case.expected, rule
        return
    assert translate_with(case.pg, case.ctx, without(case.rule)) != case.expected


@pytest.mark.parametrize("case", REFUSALS, ids=[_id(c) for c in REFUSALS])
def test_refusal_names_the_construct(case: Refusal) -> None:
    with pytest.raises(Untranslatable) as info:
        translate_query(case.pg, case.ctx)
    assert info.value.construct == case.construct
    assert str(info.value).startswith(f"cannot translate {case.construct} to sqlite:")


@pytest.mark.parametrize("case", REFUSALS, ids=[_id(c) for c in REFUSALS])
def test_the_refusal_is_its_rules(case: Refusal) -> None:
    try:
        translate_with(case.pg, case.ctx, without(case.rule))
    except Untranslatable as exc:
        refused_for: str | None = exc.construct
    else:
        refused_for = None
    assert refused_for != case.construct


def test_every_rule_is_named_by_a_case() -> None:
    everything: list[Case | Refusal] = [*CASES, *REFUSALS]
    named = {c.rule for c in everything if c.rule is not None}
    missing = [r.__name__ for r in sqlite.RULES if r not in named]
    assert missing == []
