"""Telegram's flood limits, kept by the bot before Telegram has to enforce them with 429s.

Telegram's bot FAQ ("My bot is hitting limits, how do I avoid this?") gives three: about 30
messages a second overall, about one a second in one chat (short bursts are tolerated), and
20 a minute in one group. They count messages sent and edited. Answering a button press
(answerCallbackQuery) or an inline query, and getUpdates, are not messages, so nothing here
delays those: the spinner on a pressed button stops at once however busy the bot is.

The overall and the group limits are counts in a window ("30 in a second", "20 in a
minute"), so they are kept as sliding windows: never more than that many in any second or
minute. (A token bucket of 30 would let up to 59 through in some second: a full bucket's
30, then 29 refilled; measured at the stand-in, bench/bench_telegram_load.py.) A message
counts for JITTER_SECONDS longer than the window: requests overtake each other on the way,
and counted only for the second itself, 30 that left in one second arrived as up to 33 in
one (same benchmark). The chat limit is a token bucket, since Telegram tolerates short
bursts there: up to `capacity` messages at once, then `rate` a second.

`FloodLimiter` only answers "how long until chat X may send?" and records sends; the outbox
(bot/telegram_outbox.py) decides who goes next, so that it can put a person's reply ahead of
timer notices while they wait.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# How much longer a sent message counts against a window than the window itself.
JITTER_SECONDS = 0.1


@dataclass(frozen=True)
class FloodLimits:
    """Rates of 0 mean no limit (the throughput benchmark and sped-up tests use that)."""

    overall_per_second: int = 30
    chat_per_second: float = 1.0
    # Three at once: the most one reply of the core takes (an answer split in parts, or an
    # answer and the session's reminder) goes out together; then one a second.
    chat_burst: int = 3
    group_per_minute: int = 20

    @classmethod
    def unlimited(cls) -> FloodLimits:
        return cls(overall_per_second=0, chat_per_second=0, chat_burst=0, group_per_minute=0)


@dataclass
class TokenBucket:
    rate: float  # tokens a second; 0: no limit
    capacity: float
    tokens: float
    stamp: float  # when `tokens` was counted

    @classmethod
    def full(cls, rate: float, capacity: float, now: float) -> TokenBucket:
        capacity = max(1.0, capacity)
        return cls(rate=rate, capacity=capacity, tokens=capacity, stamp=now)

    def _level(self, now: float) -> float:
        return min(self.capacity, self.tokens + (now - self.stamp) * self.rate)

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0: now)."""
        if self.rate <= 0:
            return 0.0
        level = self._level(now)
        return 0.0 if level >= 1.0 else (1.0 - level) / self.rate

    def take(self, now: float) -> None:
        if self.rate > 0:
            self.tokens = self._level(now) - 1.0
            self.stamp = now

    def is_full(self, now: float) -> bool:
        return self.rate <= 0 or self._level(now) >= self.capacity


@dataclass
class SlidingWindow:
    """At most `limit` events in any `period` seconds (0: no limit)."""

    limit: int
    period: float
    times: deque[float] = field(default_factory=deque)

    def _forget(self, now: float) -> None:
        while self.times and self.times[0] <= now - self.period:
            self.times.popleft()

    def wait(self, now: float) -> float:
        if self.limit <= 0:
            return 0.0
        self._forget(now)
        return 0.0 if len(self.times) < self.limit else self.times[0] + self.period - now

    def take(self, now: float) -> None:
        if self.limit > 0:
            self._forget(now)
            self.times.append(now)

    def is_empty(self, now: float) -> bool:
        self._forget(now)
        return not self.times


def is_group(chat_id: int) -> bool:
    """Groups, supergroups and channels have negative ids; private chats positive ones."""
    return chat_id < 0


@dataclass
class FloodLimiter:
    limits: FloodLimits = field(default_factory=FloodLimits)
    now: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.overall = SlidingWindow(round(self.limits.overall_per_second), 1.0 + JITTER_SECONDS)
        self._chats: dict[int, TokenBucket] = {}
        self._groups: dict[int, SlidingWindow] = {}
        self._held: dict[int, float] = {}  # chat: until when Telegram told us to wait (429)

    def overall_wait(self) -> float:
        return self.overall.wait(self.now())

    def chat_wait(self, chat_id: int) -> float:
        """Seconds until `chat_id` may have its next message, leaving the overall limit aside."""
        now = self.now()
        wait = max(0.0, self._held.get(chat_id, now) - now)
        chat = self._chats.get(chat_id)
        if chat is not None:
            wait = max(wait, chat.wait(now))
        group = self._groups.get(chat_id)
        if group is not None:
            wait = max(wait, group.wait(now))
        return wait

    def take(self, chat_id: int) -> None:
        """Count one message to `chat_id` against every limit it falls under."""
        now = self.now()
        limits = self.limits
        self.overall.take(now)
        if limits.chat_per_second > 0:
            chat = self._chats.get(chat_id)
            if chat is None:
                chat = self._chats[chat_id] = TokenBucket.full(
                    limits.chat_per_second, limits.chat_burst, now
                )
            chat.take(now)
        if limits.group_per_minute > 0 and is_group(chat_id):
            group = self._groups.get(chat_id)
            if group is None:
                group = self._groups[chat_id] = SlidingWindow(
                    round(limits.group_per_minute), 60.0 + JITTER_SECONDS
                )
            group.take(now)

    def hold(self, chat_id: int, seconds: float) -> None:
        """Telegram answered 429 for `chat_id`: nothing more to it for `seconds`."""
        until = self.now() + seconds
        self._held[chat_id] = max(until, self._held.get(chat_id, until))

    def forget_idle(self) -> int:
        """Drop the state of chats back at full allowance (it is what a new chat gets)."""
        now = self.now()
        before = len(self._chats) + len(self._groups) + len(self._held)
        self._chats = {c: b for c, b in self._chats.items() if not b.is_full(now)}
        self._groups = {c: w for c, w in self._groups.items() if not w.is_empty(now)}
        self._held = {c: until for c, until in self._held.items() if until > now}
        return before - len(self._chats) - len(self._groups) - len(self._held)
