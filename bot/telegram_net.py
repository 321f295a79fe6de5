"""How the bot talks to the Bot API: cheaply when all is well, carefully when it is not.

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

Cost per message (measured with bench/bench_telegram.py). PTB form-encodes every call,
percent-escaping each byte of a long HTML answer and its JSON keyboard in Python, and turns
every answer Telegram gives into a `Message`; for a reply with buttons the two together cost
more than finding the answer. `ResilientRequest` sends parameters as one JSON body (the Bot
API takes JSON for every method but uploads, which stay multipart), and `ReplyBot` sends and
edits messages without parsing the echo of what it sent, which nothing here reads.

Two Bot API complaints are harmless by nature and only logged at debug: "message is not
modified" (an edit that changes nothing, e.g. a double tap) and "query is too old" (a button
pressed long ago, or while the bot was down, can no longer be answered).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from telegram.error import BadRequest, NetworkError, TimedOut
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest, RequestData

log = logging.getLogger(__name__)

HARMLESS_BAD_REQUESTS = (
    "message is not modified",
    "query is too old",
    "query id is invalid",
)
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
JSON_HEADERS = {"Content-Type": "application/json"}
# A link in an answer should stay a link, not grow a preview card bigger than the answer.
NO_PREVIEW = {"is_disabled": True}  # LinkPreviewOptions as JSON


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


def _given(value: Any, default: float | None) -> float | None:
    """A timeout passed to a call, or the client's own when the call left it at PTB's default."""
    return default if value is HTTPXRequest.DEFAULT_NONE else value


class ResilientRequest(HTTPXRequest):
    """HTTPXRequest that repeats a request only when it provably never left this machine,
    and sends parameters as JSON."""

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
                if request_data is None or request_data.contains_files:  # uploads: multipart
                    return await super().do_request(
                        url,
                        method,
                        request_data=request_data,
                        read_timeout=read_timeout,
                        write_timeout=write_timeout,
                        connect_timeout=connect_timeout,
                        pool_timeout=pool_timeout,
                    )
                defaults = self._client.timeout
                timeout = httpx.Timeout(
                    connect=_given(connect_timeout, defaults.connect),
                    read=_given(read_timeout, defaults.read),
                    write=_given(write_timeout, defaults.write),
                    pool=_given(pool_timeout, defaults.pool),
                )
                return await self._post_json(url, request_data, timeout)
            except NetworkError as error:
                delay = next(delays, None)
                if delay is None or not never_sent(error):
                    raise
                log.debug(
                    "%s was not sent (%s); trying again in %.2f s",
                    endpoint_of(url), type(error.__cause__).__name__, delay,
                )
                await self._sleep(delay)

    async def _post_json(
        self, url: str, request_data: RequestData, timeout: httpx.Timeout
    ) -> tuple[int, bytes]:
        """One POST with the parameters as a JSON body; httpx errors become PTB's, as
        HTTPXRequest does it, so retries and error handling see no difference."""
        if self._client.is_closed:
            raise RuntimeError("This ResilientRequest is not initialized")
        body = json.dumps(request_data.parameters, ensure_ascii=False).encode()
        try:
            response = await self._client.post(
                url, content=body, headers={**JSON_HEADERS, "User-Agent": self.USER_AGENT},
                timeout=timeout,
            )
        except httpx.TimeoutException as error:
            raise TimedOut(f"httpx.{type(error).__name__}") from error
        except httpx.HTTPError as error:
            raise NetworkError(f"httpx.{type(error).__name__}: {error}") from error
        return response.status_code, response.content


class ReplyBot(ExtBot[None]):
    """PTB's ExtBot, plus a send and an edit that do not parse the message Telegram echoes.

    They go through the same `_post` as PTB's own methods (rate limiter, retries, errors), so
    only the unused `Message` is skipped. The keyboard is the Bot API's JSON (a dict), as
    bot/telegram_render.py builds it. Links get no preview card.
    """

    async def send_text(
        self,
        chat_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
    ) -> None:
        await self._post(
            "sendMessage", {"chat_id": chat_id, **_text(text, parse_mode, reply_markup)}
        )

    async def edit_text(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
    ) -> None:
        await self._post(
            "editMessageText",
            {"chat_id": chat_id, "message_id": message_id,
             **_text(text, parse_mode, reply_markup)},
        )


def _text(
    text: str, parse_mode: str | None, reply_markup: dict[str, Any] | None
) -> dict[str, Any]:
    """The parameters a sent and an edited message share."""
    return {
        "text": text,
        "parse_mode": parse_mode,
        "reply_markup": reply_markup,
        "link_preview_options": NO_PREVIEW,
    }
