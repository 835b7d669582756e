"""Interleaved, same-process timing: candidates take turns each round, on the
same fixed-seed inputs, and each is reported as the median per-round ratio
against its yardstick. Timing noise on a shared machine hits both sides of a
ratio in the same round, so ratios are far steadier than raw times."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Comparison:
    name: str
    candidate: str
    yardstick: str
    target: float
    ratios: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def met(self) -> bool:
        return self.median >= self.target


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_rounds(
    candidates: dict[str, Callable[[], Any]],
    comparisons: list[Comparison],
    rounds: int,
    check: Callable[[dict[str, Any]], None],
) -> dict[str, list[float]]:
    """Runs every candidate once per round (rotating the order), checks their
    outputs agree, and appends each comparison's ratio for the round."""
    names = list(candidates)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        outputs = {}
        for name in order:
            elapsed, outputs[name] = timed(candidates[name])
            seconds[name].append(elapsed)
        check(outputs)
        for c in comparisons:
            c.ratios.append(seconds[c.yardstick][-1] / seconds[c.candidate][-1])
    return seconds
