"""Clocks for the core: every time the core reads comes from one of these, so tests never sleep."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch, as the session engine sees time."""
        ...

    def real_seconds(self, clock_seconds: float) -> float:
        """How long to really wait for `clock_seconds` of clock time to pass."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds


@dataclass
class ScaledClock:
    """Wall time sped up `speed` times: a 3-minute step lasts 0.18 s at speed 1000."""

    speed: float
    origin: float = field(default_factory=time.time)
    _started: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return self.origin + (time.monotonic() - self._started) * self.speed

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds / self.speed


@dataclass
class FakeClock:
    """A clock that moves only when told to."""

    current: float = 1_800_000_000.0

    def now(self) -> float:
        return self.current

    def real_seconds(self, clock_seconds: float) -> float:
        return 0.0

    def advance(self, seconds: float) -> None:
        self.current += seconds
