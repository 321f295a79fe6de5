"""How the bot talks to the Bot API when the network or Telegram misbehaves.

Out of the box python-telegram-bot retries nothing but 429s (and only with its rate limiter).
The rule here is about duplicates: a request may be repeated only when Telegram cannot have
acted on it.

- Connection refused, DNS failure, a connect timeout, or no free connection in the pool
  (`httpx.ConnectError`, `ConnectTimeout`, `PoolTimeout`): the request never left this
  machine, so it is retried a bounded number of times with exponential backoff.
- A read timeout, or the connection dropping after the request was written: Telegram may
  well have delivered the message and only the answer got lost. Sending again would show the
  person the same message twice, so these are not retried; the caller logs them and moves on.
- 429 Too Many Requests is retried by PTB's `AIORateLimiter` (`max_retries`), which waits the
  `retry_after` Telegram asks for.

Two Bot API complaints are harmless by nature and only logged at debug: "message is not
modified" (an edit that changes nothing, e.g. a double tap) and "query is too old" (a button
pressed long ago, or while the bot was down, can no longer be answered).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from telegram.error import BadRequest, NetworkError
from telegram.request import HTTPXRequest, RequestData

log = logging.getLogger(__name__)

HARMLESS_BAD_REQUESTS = (
    "message is not modified",
    "query is too old",
    "query id is invalid",
)
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Backoff:
    """`attempts` tries in all, waiting `first_delay`, then `factor` times longer each time."""

    attempts: int
    first_delay: float
    factor: float = 2.0
    max_delay: float = 30.0

    def delays(self) -> Iterator[float]:
        """The waits between attempts: one fewer than the attempts."""
        delay = self.first_delay
        for _ in range(max(0, self.attempts - 1)):
            yield min(delay, self.max_delay)
            delay *= self.factor

    @property
    def total_delay(self) -> float:
        return sum(self.delays())


def never_sent(error: BaseException) -> bool:
    """True when the request cannot have reached Telegram, so repeating it is safe."""
    return isinstance(error, NetworkError) and isinstance(error.__cause__, NEVER_SENT)


def is_harmless(error: BaseException) -> bool:
    if not isinstance(error, BadRequest):
        return False
    message = error.message.lower()
    return any(phrase in message for phrase in HARMLESS_BAD_REQUESTS)


def endpoint_of(url: str) -> str:
    """The Bot API method of a request URL, e.g. "sendMessage": never the token before it."""
    return url.rstrip("/").rsplit("/", 1)[-1]


class ResilientRequest(HTTPXRequest):
    """HTTPXRequest that repeats a request only when it provably never left this machine."""

    def __init__(
        self,
        backoff: Backoff,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._backoff = backoff
        self._sleep = sleep  # tests pass their own to act between attempts, not to wait

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        write_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        connect_timeout: Any = HTTPXRequest.DEFAULT_NONE,
        pool_timeout: Any = HTTPXRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        delays = self._backoff.delays()
        while True:
            try:
                return await super().do_request(
                    url,
                    method,
                    request_data=request_data,
                    read_timeout=read_timeout,
                    write_timeout=write_timeout,
                    connect_timeout=connect_timeout,
                    pool_timeout=pool_timeout,
                )
            except NetworkError as error:
                delay = next(delays, None)
                if delay is None or not never_sent(error):
                    raise
                log.debug(
                    "%s was not sent (%s); trying again in %.2f s",
                    endpoint_of(url), type(error.__cause__).__name__, delay,
                )
                await self._sleep(delay)
