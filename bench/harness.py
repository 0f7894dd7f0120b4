"""Timing harness: every figure is a ratio against the raw driver measured in the same run.

For each scenario, each round (31 by default) runs every contender once in a rotated
order (so no contender always runs first or last), timing ``inner`` calls after a
warm-up: CPU time of the process (every thread's) for SQLite, where all the work is in
this process, and wall time for PostgreSQL, where the server is in the loop. Each round
gives a ratio per contender (its time / the baseline's in the same round); reported are
the median ratio and its interquartile range over rounds, and a target counts as met only
when the whole range is within it. Results keep every round's times.
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
    reset: Call | None = None
    """Run before each contender's turn, untimed: bulk scenarios empty what the last turn
    inserted, so every contender writes into a table of the same size."""

    @property
    def clock(self) -> Callable[[], float]:
        return time.process_time if self.backend == "sqlite" else time.perf_counter


@dataclass
class Result:
    scenario: Scenario
    seconds: dict[str, list[float]]
    """Per contender, the time per call in each round."""
    ratios: dict[str, float]
    """Per contender, the median over rounds of its time / the baseline's."""
    iqr: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per contender, the interquartile range of the per-round ratios."""

    def median_us(self, name: str) -> float:
        return statistics.median(self.seconds[name]) * 1e6

    def met(self, name: str) -> bool | None:
        """Whether the contender's target holds over its whole interquartile range."""
        target = self.scenario.target.get(name)
        return None if target is None else self.iqr[name][1] <= target


async def _run_once(call: Call, n: int, clock: Callable[[], float] = time.perf_counter) -> float:
    probe = call()
    asynchronous = inspect.isawaitable(probe)
    if asynchronous:
        await probe  # type: ignore[misc]
    start = clock()
    if asynchronous:
        for _ in range(n):
            await call()  # type: ignore[misc]
    else:
        for _ in range(n):
            call()
    return (clock() - start) / n


async def measure(scenario: Scenario, rounds: int) -> Result:
    names = [c.name for c in scenario.contenders]
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(rounds):
        shift = rep % len(names)
        order = scenario.contenders[shift:] + scenario.contenders[:shift]
        for contender in order:
            if scenario.reset is not None:
                done = scenario.reset()
                if inspect.isawaitable(done):
                    await done
            gc.collect()
            seconds[contender.name].append(
                await _run_once(contender.call, scenario.inner, scenario.clock)
            )
    ratios: dict[str, float] = {}
    iqr: dict[str, tuple[float, float]] = {}
    for n in names:
        per_round = [a / b for a, b in zip(seconds[n], seconds[scenario.baseline], strict=True)]
        if len(per_round) >= 2:
            q1, median, q3 = statistics.quantiles(per_round, n=4)
        else:
            q1 = median = q3 = per_round[0]
        ratios[n], iqr[n] = median, (q1, q3)
    return Result(scenario, seconds, ratios, iqr)


def save(name: str, data: object) -> str:
    """Write ``data`` as JSON to ``bench/results/<name>.json``; return the text."""
    text = json.dumps(data, indent=2)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(text + "\n")
    return text
