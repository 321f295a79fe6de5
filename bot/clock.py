"""Clocks for the core: every time the core reads comes from one of these, so tests never sleep."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
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
    """Wall time sped up `speed` times from an anchor: the clock read `clock_at` when the wall
    read `wall_at` (by default, now). A 3-minute step lasts 0.18 s at speed 1000.

    The clock is a function of wall time, not of when this process started, so a run given
    the anchor the last one used (`anchor`, `carry_on`) reads the same times for the same
    moments: deadlines saved by one run line up in the next, across a kill -9.
    """

    speed: float
    wall_at: float = field(default_factory=time.time)
    clock_at: float | None = None  # None: the wall time at the anchor
    wall: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.clock_at is None:
            self.clock_at = self.wall_at

    def now(self) -> float:
        return self.at(self.wall())

    def at(self, wall: float) -> float:
        """The clock's time when the wall clock reads `wall`."""
        assert self.clock_at is not None
        return self.clock_at + (wall - self.wall_at) * self.speed

    def real_seconds(self, clock_seconds: float) -> float:
        return clock_seconds / self.speed

    def anchor(self) -> str:
        """What `carry_on` needs to read the same times in another run."""
        return json.dumps({"speed": self.speed, "wall_at": self.wall_at,
                           "clock_at": self.clock_at})


def carry_on(saved: str | None, speed: float, wall: Callable[[], float] = time.time
             ) -> ScaledClock:
    """A clock at `speed` that goes on from the saved anchor's: the same time now as the saved
    clock would read, running at the new speed from here. Nothing saved (or something
    unreadable): the wall time, sped up."""
    now = wall()
    try:
        data = json.loads(saved) if saved else None
        previous = ScaledClock(float(data["speed"]), float(data["wall_at"]),
                               float(data["clock_at"])) if data else None
    except (ValueError, TypeError, KeyError):
        previous = None
    clock_now = previous.at(now) if previous is not None else now
    if not math.isfinite(clock_now):
        clock_now = now
    return ScaledClock(speed, wall_at=now, clock_at=clock_now, wall=wall)


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
