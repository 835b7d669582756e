"""The one clock: every service takes a `Clock` (microseconds since the Unix
epoch) from the composition root, so tests can run settlement, routing and
the registry on a clock they set instead of on wall time."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
MICROS = 1_000_000


def system() -> int:
    """Wall time, microseconds since the Unix epoch."""
    return time.time_ns() // 1000


def seconds(clock: Clock) -> int:
    """The clock's time in whole Unix seconds (rounded down)."""
    return clock() // MICROS


class FakeClock:
    """A clock a test sets and moves; it stands still unless moved."""

    def __init__(self, at_us: int) -> None:
        self.at_us = at_us

    @classmethod
    def at(cls, unix_seconds: float) -> FakeClock:
        return cls(int(unix_seconds * MICROS))

    def __call__(self) -> int:
        return self.at_us

    def advance(self, seconds: float) -> None:
        self.at_us += int(seconds * MICROS)
