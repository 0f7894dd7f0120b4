"""Timing harness: every figure is a ratio against the raw driver measured in the same run.

For each scenario, each repetition runs every contender once in a rotated order (so no
contender always runs first or last), timing ``inner`` calls after a warm-up; the
reported ratio is the median over repetitions of (contender time / baseline time).
"""

from __future__ import annotations

import gc
import inspect
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

Call = Callable[[], Awaitable[object] | object]


@dataclass
class Contender:
    name: str
    call: Call
    note: str = ""


@dataclass
class Scenario:
    backend: str
    name: str
    baseline: str
    contenders: list[Contender]
    inner: int
    unit: str = "call"
    per_call_items: int = 1
    target: dict[str, float] = field(default_factory=dict)
    """Contender name -> the highest acceptable ratio (issue targets)."""


@dataclass
class Result:
    scenario: Scenario
    seconds: dict[str, list[float]]
    ratios: dict[str, float]

    def median_us(self, name: str) -> float:
        return statistics.median(self.seconds[name]) * 1e6


async def _run_once(call: Call, n: int) -> float:
    probe = call()
    asynchronous = inspect.isawaitable(probe)
    if asynchronous:
        await probe  # type: ignore[misc]
    start = time.perf_counter()
    if asynchronous:
        for _ in range(n):
            await call()  # type: ignore[misc]
    else:
        for _ in range(n):
            call()
    return (time.perf_counter() - start) / n


async def measure(scenario: Scenario, repetitions: int) -> Result:
    names = [c.name for c in scenario.contenders]
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(repetitions):
        shift = rep % len(names)
        order = scenario.contenders[shift:] + scenario.contenders[:shift]
        for contender in order:
            gc.collect()
            seconds[contender.name].append(await _run_once(contender.call, scenario.inner))
    ratios = {
        n: statistics.median(
            a / b for a, b in zip(seconds[n], seconds[scenario.baseline], strict=True)
        )
        for n in names
    }
    return Result(scenario, seconds, ratios)


def save(name: str, data: object) -> str:
    """Write ``data`` as JSON to ``bench/results/<name>.json``; return the text."""
    text = json.dumps(data, indent=2)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(text + "\n")
    return text
