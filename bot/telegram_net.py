"""How the bot talks to the Bot API: cheaply when all is well, carefully when it is not.

Out of the box python-telegram-bot retries nothing but 429s (and only with its rate limiter).
The rule here is about duplicates: a request may be repeated only when Telegram cannot have
acted on it. `outcome_of` sorts every failure into one of these:

- Never sent (`Outcome.NEVER_SENT`): connection refused, DNS failure, a connect timeout, no
  free connection in the pool, the connection failing while the request was still being
  written, or Telegram (or the proxy in front of it) answering 5xx, which says the method was
  not carried out. Safe to repeat: `ResilientRequest` repeats these a few times at once,
  and the outbox (bot/telegram_outbox.py) keeps repeating with backoff.
- Unknown (`Outcome.UNKNOWN`): a read timeout, or the connection dropping after the request
  was written. Telegram may well have delivered the message and only the answer got lost.
  What to do is the caller's choice; the outbox counts such a send as delivered.
- Refused for good (`REFUSED`: 400, except the harmless ones below), the chat is gone
  (`CHAT_GONE`: 403 blocked or kicked, chat not found or migrated), or wait (`RETRY_AFTER`:
  429 with the `retry_after` Telegram asks for).

A body that is not the Bot API's JSON (an HTML error page from a proxy) never reaches PTB's
parser, which would log the page at ERROR: it becomes a one-line error of its status.

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
import enum
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httpx
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest, RequestData

log = logging.getLogger(__name__)

HARMLESS_BAD_REQUESTS = (
    "message is not modified",
    "query is too old",
    "query id is invalid",
)
# The connection failed before the request was complete: the server cannot have acted on it.
NEVER_SENT = (
    httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError,
    httpx.WriteTimeout,
)  # fmt: skip
# A 400 that means the chat itself is gone, like a 403.
CHAT_GONE_BAD_REQUESTS = ("chat not found", "user not found", "peer_id_invalid")
# A 400 on an edit that means the message cannot be edited: send a new one instead.
EDIT_TARGET_GONE = (
    "message to edit not found", "message can't be edited", "message_id_invalid",
    # The message is not of a kind this edit can change (a photo for editMessageText): a
    # new message shows the screen instead.
    "there is no text in the message to edit", "there is no media in the message to edit",
)  # fmt: skip
JSON_HEADERS = {"Content-Type": "application/json"}
# A link in an answer should stay a link, not grow a preview card bigger than the answer.
NO_PREVIEW = {"is_disabled": True}  # LinkPreviewOptions as JSON


@dataclass(frozen=True)
class Backoff:
    """`attempts` tries in all (None: no end), waiting `first_delay`, then `factor` times
    longer each time, never longer than `max_delay`."""

    attempts: int | None
    first_delay: float
    factor: float = 2.0
    max_delay: float = 30.0

    def delays(self) -> Iterator[float]:
        """The waits between attempts: one fewer than the attempts."""
        count = itertools.count() if self.attempts is None else range(max(0, self.attempts - 1))
        delay = self.first_delay
        for _ in count:
            yield min(delay, self.max_delay)
            delay = min(delay * self.factor, self.max_delay)

    def delay(self, failures: int) -> float:
        """The wait after `failures` failures in a row (1 or more)."""
        return min(self.first_delay * self.factor ** max(0, failures - 1), self.max_delay)


class ServerError(NetworkError):
    """Telegram, or a proxy in front of it, answered 5xx: the method was not carried out."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status


class NotBotApi(TelegramError):
    """The server answered, but not as the Bot API does: the base URL is probably wrong."""


class Outcome(enum.Enum):
    NEVER_SENT = "never sent"  # safe to repeat
    UNKNOWN = "unknown"  # the request went out and its answer was lost
    RETRY_AFTER = "retry after"  # 429: wait as told, then repeat
    CHAT_GONE = "chat gone"  # blocked, kicked, deleted: nothing more can reach it
    EDIT_TARGET_GONE = "edit target gone"  # send a new message instead
    HARMLESS = "harmless"  # "not modified", "query is too old": as good as done
    REFUSED = "refused"  # a 400 that repeating will not change


def outcome_of(error: BaseException) -> Outcome:
    """What a failed Bot API call means for repeating it (see the module docstring)."""
    if isinstance(error, RetryAfter):
        return Outcome.RETRY_AFTER
    if isinstance(error, Forbidden | ChatMigrated):
        return Outcome.CHAT_GONE
    if isinstance(error, BadRequest):
        message = error.message.lower()
        if any(phrase in message for phrase in HARMLESS_BAD_REQUESTS):
            return Outcome.HARMLESS
        if any(phrase in message for phrase in EDIT_TARGET_GONE):
            return Outcome.EDIT_TARGET_GONE
        if any(phrase in message for phrase in CHAT_GONE_BAD_REQUESTS):
            return Outcome.CHAT_GONE
        return Outcome.REFUSED
    if never_sent(error):
        return Outcome.NEVER_SENT
    return Outcome.UNKNOWN


def never_sent(error: BaseException) -> bool:
    """True when the request cannot have reached Telegram, so repeating it is safe."""
    if isinstance(error, ServerError):
        return True
    return isinstance(error, NetworkError) and isinstance(error.__cause__, NEVER_SENT)


def is_harmless(error: BaseException) -> bool:
    return isinstance(error, BadRequest) and outcome_of(error) is Outcome.HARMLESS


def describe(error: BaseException) -> str:
    """One line about a failed call for a log or the operator: the error's kind and text."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def checked_response(code: int, payload: bytes) -> tuple[int, bytes]:
    """The answer as PTB may parse it; 5xx and bodies that are not JSON become clean errors.

    PTB logs an unparsable body (a proxy's HTML error page) whole, with a traceback, at
    ERROR; here it becomes one line of its HTTP status.
    """
    if HTTPStatus.OK <= code < HTTPStatus.MULTIPLE_CHOICES:
        if not payload.lstrip().startswith(b"{"):
            raise NotBotApi(f"the server answered {code} with a body that is not the Bot API's")
        return code, payload
    try:
        phrase = f"{HTTPStatus(code).phrase} ({code})"
    except ValueError:
        phrase = f"HTTP {code}"
    try:
        parsed = json.loads(payload)
        description = str(parsed.get("description") or phrase) if isinstance(parsed, dict) else ""
    except ValueError:
        parsed, description = None, ""
    if code >= HTTPStatus.INTERNAL_SERVER_ERROR:
        raise ServerError(code, description or phrase)
    if not isinstance(parsed, dict):
        error = {"ok": False, "error_code": code, "description": phrase}
        return code, json.dumps(error).encode()
    return code, payload


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
        retried_by_caller: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._backoff = backoff
        self._sleep = sleep  # tests pass their own to act between attempts, not to wait
        # Methods whose caller repeats them itself (the outbox: it must know, at any moment,
        # whether a message is on the wire): tried once here.
        self._retried_by_caller = retried_by_caller

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
        once = endpoint_of(url) in self._retried_by_caller
        delays = iter(()) if once else self._backoff.delays()
        while True:
            try:
                if request_data is None or request_data.contains_files:  # uploads: multipart
                    answer = await super().do_request(
                        url,
                        method,
                        request_data=request_data,
                        read_timeout=read_timeout,
                        write_timeout=write_timeout,
                        connect_timeout=connect_timeout,
                        pool_timeout=pool_timeout,
                    )
                else:
                    defaults = self._client.timeout
                    timeout = httpx.Timeout(
                        connect=_given(connect_timeout, defaults.connect),
                        read=_given(read_timeout, defaults.read),
                        write=_given(write_timeout, defaults.write),
                        pool=_given(pool_timeout, defaults.pool),
                    )
                    answer = await self._post_json(url, request_data, timeout)
                return checked_response(*answer)
            except NetworkError as error:
                delay = next(delays, None)
                if delay is None or not never_sent(error):
                    raise
                log.debug(
                    "%s was not carried out (%s); trying again in %.2f s",
                    endpoint_of(url), describe(error), delay,
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
