"""A local stand-in for the Telegram Bot API, for end-to-end tests and the benchmark.

It speaks HTTP/1.1 on 127.0.0.1 (keep-alive, Content-Length or chunked bodies, form or JSON
parameters) so the bot under test goes through python-telegram-bot's real HTTPXRequest stack.
It behaves like Telegram where the bot depends on it and fails like Telegram otherwise:

- `getUpdates` confirms and drops updates below `offset` and holds the long poll for `timeout`;
- text is checked after HTML parsing (known tags only, properly nested, only the four named
  entities) and must be 1-4,096 characters; callback data must be 1-64 bytes; errors come back
  as Bot API error JSON with Telegram's wording ("Bad Request: can't parse entities: ...");
- an unknown token gets 401 Unauthorized, an unknown method 404, getUpdates while a webhook is
  set 409 Conflict;
- faults can be queued per method: drop the connection, hang, answer after processing too late
  (the client times out though the message was delivered) or drop it right after processing
  (a reset after delivery), 429 with retry_after, 500, 502 as Bot API JSON or as a proxy's
  HTML page; an outage answers every matching request with 502 until released; it can stop
  accepting connections altogether (connection refused); a person can block the bot (403);
- every call is recorded with the moment it arrived, so the benchmark can check the rates
  against Telegram's flood limits.

Everything the bot sends is recorded as `Output`s for the tests to read. A `User` plays a
person: it pushes messages and button presses as updates and waits, with a bounded timeout,
for the bot's answer.

Nothing here knows about the bot under test; it is shared by the tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

TOKEN = "123456789:AAHfakeTokenForTestsOnly_abcdefghijklmno"
BOT_ID = 123456789
BOT_USERNAME = "massage_helper_bot"
BOT_USER: dict[str, Any] = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "Back massage helper",
    "username": BOT_USERNAME,
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": True,
}
MAX_TEXT_CHARS = 4096
MAX_CALLBACK_DATA_BYTES = 64
# Tags Telegram's HTML parse mode accepts; anything else is "Unsupported start tag".
ALLOWED_TAGS = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "tg-emoji", "code", "pre", "blockquote",
})  # fmt: skip
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
# Parameters that arrive JSON-encoded (PTB encodes lists and objects, sends strings as is).
JSON_PARAMS = frozenset({"reply_markup", "commands", "results", "allowed_updates", "scope",
                         "link_preview_options", "reply_parameters", "entities"})
INT_PARAMS = frozenset({"chat_id", "message_id", "offset", "limit", "timeout", "cache_time"})

FaultKind = Literal[
    "drop", "hang", "late", "hold", "retry_after", "bad_gateway", "internal_error",
    "gateway_page", "outage",
]
# What nginx in front of an unwell Bot API server answers: HTML, not JSON.
GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)
BLOCKED = "Forbidden: bot was blocked by the user"
# Methods that put a message in a chat: what Telegram's flood limits count.
MESSAGE_METHODS = frozenset({"sendMessage", "editMessageText", "editMessageReplyMarkup"})


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[^<>]*)?)>")
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6}|[A-Za-z]+);")
_SPECIAL = re.compile(r"[<&]")


def parse_html(text: str) -> str:
    """The plain text of a Telegram HTML message, or ApiError as Telegram words it."""
    plain: list[str] = []
    stack: list[str] = []
    index = 0

    def offset(at: int) -> int:
        return len(text[:at].encode())

    def fail(reason: str) -> ApiError:
        return bad_request(f"can't parse entities: {reason}")

    while index < len(text):
        special = _SPECIAL.search(text, index)
        if special is None:
            plain.append(text[index:])
            break
        plain.append(text[index : special.start()])
        index = special.start()
        if text[index] == "<":
            tag = _TAG.match(text, index)
            if tag is None:
                raise fail(f"Unsupported start tag at byte offset {offset(index)}")
            closing, name = tag.group(1) == "/", tag.group(2).lower()
            if closing:
                if not stack:
                    raise fail(f"Unexpected end tag at byte offset {offset(index)}")
                if stack[-1] != name:
                    raise fail(
                        f'Unmatched end tag at byte offset {offset(index)}, expected '
                        f'"</{stack[-1]}>", found "</{name}>"'
                    )
                stack.pop()
            else:
                if name not in ALLOWED_TAGS:
                    raise fail(f'Unsupported start tag "{name}" at byte offset {offset(index)}')
                stack.append(name)
            index = tag.end()
        else:
            entity = _ENTITY.match(text, index)
            if entity is None:
                raise fail(f"Can't find end of the entity starting at byte offset {offset(index)}")
            name = entity.group(1)
            if name.startswith("#"):
                code = int(name[2:], 16) if name.startswith("#x") else int(name[1:])
                if code > 0x10FFFF:
                    raise fail(f"Invalid entity code at byte offset {offset(index)}")
                plain.append(chr(code))
            elif name in NAMED_ENTITIES:
                plain.append(NAMED_ENTITIES[name])
            else:
                raise fail(f'Unsupported HTML entity "&{name};" at byte offset {offset(index)}')
            index = entity.end()
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(plain)


def check_text(text: str, parse_mode: str | None) -> str:
    if parse_mode is not None and parse_mode.upper() != "HTML":
        raise bad_request(f"unsupported parse_mode {parse_mode!r}")
    plain = parse_html(text) if parse_mode else text
    if not plain.strip():
        raise bad_request("message text is empty")
    if utf16_len(plain) > MAX_TEXT_CHARS:
        raise bad_request("message is too long")
    return plain


def check_markup(markup: Any) -> dict[str, Any] | None:
    if markup is None:
        return None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list):
        raise bad_request("can't parse reply keyboard markup JSON object")
    for row in rows:
        for button in row:
            if not str(button.get("text", "")).strip():
                raise bad_request("BUTTON_TEXT_INVALID")
            if "callback_data" in button:
                size = len(str(button["callback_data"]).encode())
                if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                    raise bad_request("BUTTON_DATA_INVALID")
            elif "url" in button:
                if not re.match(r"^(https?|tg)://", str(button["url"])):
                    raise bad_request("BUTTON_URL_INVALID")
            elif not {"switch_inline_query", "switch_inline_query_current_chat"} & set(button):
                raise bad_request("can't find field \"callback_data\"")
    return markup


@dataclass(frozen=True)
class Output:
    """One message the bot sent or edited, as it stood right after that call."""

    kind: Literal["send", "edit"]
    chat_id: int
    message_id: int
    html: str
    text: str  # what the person sees: tags stripped, entities decoded
    parse_mode: str | None
    reply_markup: dict[str, Any] | None

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, callback_data or url) of every button, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [
            (button["text"], button.get("callback_data") or button.get("url", ""))
            for row in rows
            for button in row
        ]

    def data_of(self, label_part: str) -> str:
        """The callback data of the first button whose label contains `label_part`."""
        for label, data in self.buttons:
            if label_part.lower() in label.lower():
                return data
        raise AssertionError(f"no button like {label_part!r} in {self.buttons}")

    def as_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": self.message_id,
            "date": int(time.time()),
            "chat": chat_of(self.chat_id),
            "from": BOT_USER,
            "text": self.text,
        }
        if self.reply_markup:
            message["reply_markup"] = self.reply_markup
        return message


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    error: str = ""
    at: float = field(default_factory=time.monotonic)  # when the request arrived


@dataclass
class Fault:
    method: str
    kind: FaultKind
    seconds: float = 1.0
    times: int = 1
    chat_id: int | None = None  # only requests for this chat
    release: asyncio.Event | None = None  # "hold", "outage": until this is set


def chat_of(chat_id: int) -> dict[str, Any]:
    if chat_id < 0:
        return {"id": chat_id, "type": "supergroup", "title": "Family"}
    return {"id": chat_id, "type": "private", "first_name": "Ann"}


class _Drop(Exception):
    """Close the connection without answering."""


@dataclass
class StandIn:
    tokens: frozenset[str] = field(default=frozenset({TOKEN}), repr=False)  # secrets: no repr
    host: str = "127.0.0.1"
    port: int = 0
    updates: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    messages: dict[tuple[int, int], Output] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    answered_queries: dict[str, dict[str, Any]] = field(default_factory=dict)
    inline_answers: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    webhook: dict[str, Any] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    blocked: set[int] = field(default_factory=set)  # chats whose person blocked the bot
    # Keep at most about this many outputs and calls (benchmarks make hundreds of thousands).
    keep_outputs: int | None = None
    # Told of every call and every output the moment it happens (the benchmarks time them).
    observers: list[Callable[[Call | Output], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed: asyncio.Condition | None = None
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._pending_queries: set[str] = set()
        self._closed = asyncio.Event()
        self._redeliveries: list[dict[str, Any]] = []
        self.received: dict[str, int] = {}  # requests per method, counted on arrival
        self.content_types: dict[str, str] = {}  # the latest request's body type, per method

    # --- life cycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    async def start(self) -> StandIn:
        self._changed = asyncio.Condition()
        await self.accept_connections()
        return self

    async def stop(self) -> None:
        """Close everything; held long polls and hanging answers end at once."""
        self._closed.set()
        await self.refuse_connections()
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)

    async def __aenter__(self) -> StandIn:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def refuse_connections(self) -> None:
        """Stop listening and close every open connection: the next request is refused."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._connections):
            writer.close()
        self._connections.clear()
        if server is not None:
            await server.wait_closed()

    async def accept_connections(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    # --- the person's side -----------------------------------------------------------------

    def push(self, update: dict[str, Any]) -> int:
        """Queue an update as Telegram would; returns its update_id."""
        update_id = next(self._update_ids)
        self.updates.append({"update_id": update_id, **update})
        self._notify()
        return update_id

    def push_many(self, updates: list[dict[str, Any]]) -> list[int]:
        """Queue many updates with one wake-up (the benchmark queues thousands)."""
        ids = [next(self._update_ids) for _ in updates]
        for update_id, update in zip(ids, updates, strict=True):
            self.updates.append({"update_id": update_id, **update})
        self._notify()
        return ids

    def redeliver(self, update: dict[str, Any]) -> None:
        """Serve an update again with the id it already had, offset or not.

        Telegram does this when it believes the bot never got the update: the bot crashed
        before confirming the offset, or a webhook call was answered too late.
        """
        self._redeliveries.append(update)
        self._notify()

    def new_query_id(self, stale: bool = False) -> str:
        query_id = f"q{next(self._query_ids)}"
        if not stale:
            self._pending_queries.add(query_id)
        return query_id

    def new_message_id(self) -> int:
        return next(self._message_ids)

    def add_fault(
        self,
        method: str,
        kind: FaultKind,
        seconds: float = 1.0,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        self.faults.append(
            Fault(method=method, kind=kind, seconds=seconds, times=times, chat_id=chat_id)
        )

    def hold(self, method: str, chat_id: int | None = None) -> asyncio.Event:
        """Hold the next `method` request (for `chat_id`) until the returned event is set."""
        release = asyncio.Event()
        self.faults.append(Fault(method=method, kind="hold", chat_id=chat_id, release=release))
        return release

    def outage(self, method: str = "*", chat_id: int | None = None) -> asyncio.Event:
        """Answer every `method` request ("*": every method but getUpdates) with a 502 page
        until the returned event is set."""
        release = asyncio.Event()
        self.faults.append(Fault(method=method, kind="outage", chat_id=chat_id, release=release))
        return release

    def failures(self, method: str, chat_id: int | None = None) -> list[Call]:
        """The calls to `method` (in `chat_id`) that were answered with an error."""
        return [c for c in self.calls_to(method)
                if c.error and (chat_id is None or c.params.get("chat_id") == chat_id)]

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "the bot"
    ) -> None:
        assert self._changed is not None, "start the stand-in first"
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except TimeoutError:
                recent = "\n".join(f"  {c.method} {c.error}" for c in self.calls[-8:])
                raise AssertionError(
                    f"gave up after {timeout} s waiting for {what}; last calls:\n{recent}"
                ) from None

    def outputs_in(self, chat_id: int, since: int = 0) -> list[Output]:
        return [o for o in self.outputs[since:] if o.chat_id == chat_id]

    def sent_in(self, chat_id: int) -> list[Output]:
        return [o for o in self.outputs if o.chat_id == chat_id and o.kind == "send"]

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def unanswered_queries(self) -> set[str]:
        return set(self._pending_queries)

    def _notify(self) -> None:
        if self._changed is None:
            return
        changed = self._changed

        async def notify() -> None:
            async with changed:
                changed.notify_all()

        self._spawn(notify())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- HTTP ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # type: ignore[arg-type]
            task.add_done_callback(self._tasks.discard)  # type: ignore[arg-type]
        self._connections.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                _verb, target, _version = request_line.split(" ", 2)
                headers = {
                    key.strip().lower(): value.strip()
                    for key, _, value in (line.partition(":") for line in lines if line)
                }
                body = await self._read_body(reader, headers)
                try:
                    status, payload = await self._handle(target, headers, body)
                except _Drop:
                    return
                is_page = isinstance(payload, str)
                data = payload.encode() if is_page else json.dumps(payload).encode()
                kind = "text/html" if is_page else "application/json"
                writer.write(
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                    f"Content-Type: {kind}\r\nContent-Length: {len(data)}\r\n"
                    "Connection: keep-alive\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        except asyncio.CancelledError:
            # asyncio's stream machinery reports a cancelled connection task as an error.
            return
        finally:
            self._connections.discard(writer)
            writer.close()

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    return b"".join(chunks)
                chunks.append(chunk[:-2])
        return await reader.readexactly(int(headers.get("content-length", "0") or 0))

    async def _handle(
        self, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any] | str]:
        url = urlsplit(target)
        match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", url.path)
        if match is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        token, method = match.group(1), match.group(2)
        self.received[method] = self.received.get(method, 0) + 1
        self.content_types[method] = headers.get("content-type", "")
        if method == "getUpdates":
            self._notify()  # someone may be waiting for the bot to start polling
        if token not in self.tokens:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        try:
            params = self._params(url.query, headers.get("content-type", ""), body)
        except (ApiError, ValueError) as error:
            description = getattr(error, "description", f"Bad Request: {error}")
            return 400, {"ok": False, "error_code": 400, "description": description}
        fault = self._take_fault(method, params)
        if fault is not None and fault.kind == "hold" and fault.release is not None:
            await self._until(fault.release)
        if fault is not None and fault.kind in ("drop", "hang"):
            if fault.kind == "hang":
                await self._pause(fault.seconds)
            raise _Drop
        if fault is not None and fault.kind == "retry_after":
            seconds = max(1, round(fault.seconds))
            self._log(Call(method, params, "429"))
            return 429, {
                "ok": False, "error_code": 429,
                "description": f"Too Many Requests: retry after {seconds}",
                "parameters": {"retry_after": seconds},
            }
        if fault is not None and fault.kind == "bad_gateway":
            self._log(Call(method, params, "502"))
            return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}
        if fault is not None and fault.kind == "internal_error":
            self._log(Call(method, params, "500"))
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        if fault is not None and fault.kind in ("gateway_page", "outage"):
            self._log(Call(method, params, "502 page"))
            self._notify()
            return 502, GATEWAY_PAGE
        if method in MESSAGE_METHODS and params.get("chat_id") in self.blocked:
            self._log(Call(method, params, BLOCKED))
            self._notify()
            return 403, {"ok": False, "error_code": 403, "description": BLOCKED}
        try:
            result = await self._call(method.lower(), params)
        except ApiError as error:
            self._log(Call(method, params, error.description))
            self._notify()
            payload: dict[str, Any] = {
                "ok": False, "error_code": error.code, "description": error.description,
            }
            if error.parameters:
                payload["parameters"] = error.parameters
            return error.code, payload
        self._log(Call(method, params))
        self._notify()
        if fault is not None and fault.kind == "late":
            # Done, but the answer comes too late: the client times out not knowing it worked.
            await self._pause(fault.seconds)
            raise _Drop
        return 200, {"ok": True, "result": result}

    async def _until(self, event: asyncio.Event) -> None:
        """Wait for `event`, or for the stand-in to stop."""
        waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._closed.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    def _take_fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        for fault in list(self.faults):
            if fault.chat_id is not None and params.get("chat_id") != fault.chat_id:
                continue
            if fault.kind == "outage":
                if fault.release is not None and fault.release.is_set():
                    self.faults.remove(fault)
                    continue
                if (fault.method == "*" and method != "getUpdates") or fault.method == method:
                    return fault
                continue
            if fault.method.lower() == method.lower():
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
        raw: dict[str, Any] = dict(parse_qsl(query))
        if body:
            if content_type.startswith("application/json"):
                raw.update(json.loads(body))
            elif content_type.startswith("application/x-www-form-urlencoded"):
                raw.update(parse_qsl(body.decode(), keep_blank_values=True))
            else:
                raise bad_request(f"unsupported content type {content_type!r}")
        params: dict[str, Any] = {}
        for key, value in raw.items():
            if key in JSON_PARAMS and isinstance(value, str):
                value = json.loads(value)
            elif key in INT_PARAMS and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
                value = int(value)
            params[key] = value
        return params

    # --- Bot API methods -------------------------------------------------------------------

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            raise ApiError(404, "Not Found")
        return await handler(params)

    async def _api_getme(self, params: dict[str, Any]) -> Any:
        return BOT_USER

    async def _api_logout(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_close(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_deletewebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {}
        if str(params.get("drop_pending_updates", "")).lower() == "true":
            self.updates.clear()
        return True

    async def _api_setwebhook(self, params: dict[str, Any]) -> Any:
        if not str(params.get("url", "")).startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if (urlsplit(str(params["url"])).port or 443) not in (80, 88, 443, 8443):
            raise bad_request("bad webhook: Webhook can be set up only on ports 80, 88, 443 "
                              "or 8443")
        self.webhook = dict(params)
        return True

    async def _api_getwebhookinfo(self, params: dict[str, Any]) -> Any:
        return {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                "pending_update_count": len(self.updates)}

    async def _api_setmycommands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands = commands
        return True

    async def _api_getupdates(self, params: dict[str, Any]) -> Any:
        if self.webhook:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                           "use deleteWebhook to delete the webhook first")
        offset = params.get("offset")
        if isinstance(offset, int) and offset > 0:
            # Telegram forgets every update below the offset: they are confirmed.
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        limit = min(max(int(params.get("limit", 100) or 100), 1), 100)
        timeout = float(params.get("timeout", 0) or 0)
        if not (self.updates or self._redeliveries) and timeout > 0:
            assert self._changed is not None
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(
                            lambda: bool(self.updates or self._redeliveries)
                            or self._closed.is_set()
                        ),
                        timeout,
                    )
        if self._redeliveries:
            again, self._redeliveries = self._redeliveries[:limit], self._redeliveries[limit:]
            return again
        return self.updates[:limit]

    def _log(self, call: Call) -> None:
        self.calls.append(call)
        if self.keep_outputs is not None and len(self.calls) > 2 * self.keep_outputs:
            del self.calls[: -self.keep_outputs]
        for observe in self.observers:
            observe(call)

    def _record(self, output: Output) -> Output:
        for observe in self.observers:
            observe(output)
        self.outputs.append(output)
        self.messages[(output.chat_id, output.message_id)] = output
        if self.keep_outputs is not None and len(self.outputs) > 2 * self.keep_outputs:
            del self.outputs[: -self.keep_outputs]
            self.messages = {(o.chat_id, o.message_id): o for o in self.outputs}
        return output

    async def _api_sendmessage(self, params: dict[str, Any]) -> Any:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int):
            raise bad_request("chat not found")
        html = str(params.get("text", ""))
        parse_mode = params.get("parse_mode")
        text = check_text(html, parse_mode)
        markup = check_markup(params.get("reply_markup"))
        output = self._record(Output("send", chat_id, self.new_message_id(), html, text,
                                     parse_mode, markup))
        return output.as_message()

    def _existing(self, params: dict[str, Any]) -> Output:
        key = (params.get("chat_id"), params.get("message_id"))
        if key not in self.messages:
            raise bad_request("message to edit not found")
        return self.messages[key]  # type: ignore[index]

    async def _api_editmessagetext(self, params: dict[str, Any]) -> Any:
        current = self._existing(params)
        html = str(params.get("text", ""))
        parse_mode = params.get("parse_mode")
        text = check_text(html, parse_mode)
        markup = check_markup(params.get("reply_markup"))
        if text == current.text and html == current.html and markup == current.reply_markup:
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        output = self._record(Output("edit", current.chat_id, current.message_id, html, text,
                                     parse_mode, markup))
        return output.as_message()

    async def _api_editmessagereplymarkup(self, params: dict[str, Any]) -> Any:
        current = self._existing(params)
        markup = check_markup(params.get("reply_markup"))
        if markup == current.reply_markup:
            raise bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        output = self._record(Output("edit", current.chat_id, current.message_id, current.html,
                                     current.text, current.parse_mode, markup))
        return output.as_message()

    async def _api_answercallbackquery(self, params: dict[str, Any]) -> Any:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._pending_queries:
            raise bad_request(QUERY_TOO_OLD.removeprefix("Bad Request: "))
        if len(str(params.get("text", ""))) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._pending_queries.discard(query_id)
        self.answered_queries[query_id] = params
        return True

    async def _api_answerinlinequery(self, params: dict[str, Any]) -> Any:
        results = params.get("results")
        if not isinstance(results, list) or len(results) > 50:
            raise bad_request("RESULTS_TOO_MUCH")
        ids = [str(result.get("id", "")) for result in results]
        if len(set(ids)) != len(ids) or any(not 1 <= len(i.encode()) <= 64 for i in ids):
            raise bad_request("RESULT_ID_INVALID")
        for result in results:
            content = result.get("input_message_content") or {}
            check_text(str(content.get("message_text", "")), content.get("parse_mode"))
            check_markup(result.get("reply_markup"))
        self.inline_answers.append(params)
        return True


# --- building updates the way Telegram shapes them -------------------------------------------

_COMMAND = re.compile(r"^/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?")
_MENTION = re.compile(r"@[A-Za-z0-9_]{5,32}")


def _entities(text: str) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    command = _COMMAND.match(text)
    if command:
        entities.append({"type": "bot_command", "offset": 0, "length": command.end()})
    for mention in _MENTION.finditer(text):
        if command and mention.start() < command.end():
            continue
        entities.append({
            "type": "mention",
            "offset": utf16_len(text[: mention.start()]),
            "length": utf16_len(mention.group()),
        })
    return entities


@dataclass
class User:
    """A person talking to the bot in one chat (private unless `chat_id` is negative)."""

    api: StandIn
    user_id: int
    chat_id: int = 0
    first_name: str = "Ann"
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.chat_id:
            self.chat_id = self.user_id

    @property
    def person(self) -> dict[str, Any]:
        return {"id": self.user_id, "is_bot": False, "first_name": self.first_name}

    def message(self, **content: Any) -> dict[str, Any]:
        return {
            "message_id": self.api.new_message_id(),
            "date": int(time.time()),
            "chat": chat_of(self.chat_id),
            "from": self.person,
            **content,
        }

    def text_update(self, text: str, reply_to: Output | None = None) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        entities = _entities(text)
        if entities:
            content["entities"] = entities
        if reply_to is not None:
            content["reply_to_message"] = reply_to.as_message()
        return {"message": self.message(**content)}

    async def send(self, update: dict[str, Any], expect: int = 1) -> list[Output]:
        """Push `update` and wait for `expect` outputs (sends or edits) in this chat."""
        since = len(self.api.outputs)
        self.api.push(update)
        return await self.expect(expect, since)

    async def say(self, text: str, expect: int = 1, reply_to: Output | None = None) -> list[Output]:
        return await self.send(self.text_update(text, reply_to=reply_to), expect)

    async def expect(self, count: int, since: int) -> list[Output]:
        await self.api.wait_for(
            lambda: len(self.api.outputs_in(self.chat_id, since)) >= count,
            self.timeout,
            what=f"{count} message(s) in chat {self.chat_id}",
        )
        return self.api.outputs_in(self.chat_id, since)

    def press_update(self, on: Output, data: str, stale: bool = False) -> dict[str, Any]:
        current = self.api.messages.get((on.chat_id, on.message_id), on)
        return {
            "callback_query": {
                "id": self.api.new_query_id(stale=stale),
                "from": self.person,
                "chat_instance": f"ci{self.chat_id}",
                "data": data,
                "message": current.as_message(),
            }
        }

    async def press(
        self, on: Output, label: str, expect: int = 1, stale: bool = False
    ) -> list[Output]:
        """Press the button labelled like `label` on message `on`; wait for the outcome."""
        return await self.send(self.press_update(on, on.data_of(label), stale=stale), expect)

    async def press_data(self, on: Output, data: str, expect: int = 1) -> list[Output]:
        return await self.send(self.press_update(on, data), expect)


# --- running our bot against the stand-in ----------------------------------------------------
# (Imported lazily so the benchmark can use the stand-in for a bare PTB bot too.)


@dataclass(frozen=True)
class BotFixture:
    """Our bot's Application serving in a task of the current event loop."""

    app: Any
    conversation: Any
    settings: Any
    task: asyncio.Task[None]
    stop: asyncio.Event

    async def close(self, timeout: float = 15.0) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout)
        self.conversation.store.close()


def bot_settings(api: StandIn, data_dir: Any, **overrides: Any) -> Any:
    from pathlib import Path

    from bot.settings import load_settings

    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": api.base_url,
        "TELEGRAM_BASE_FILE_URL": api.base_url.replace("/bot", "/file/bot"),
        "DATA_DIR": str(data_dir),
        "KNOWLEDGE_DIR": str(Path(__file__).resolve().parent.parent / "knowledge"),
        "LOG_LEVEL": "DEBUG",
        **overrides,
    }
    return load_settings(env, dotenv=None)


def fast_options(**overrides: Any) -> Any:
    """Production behaviour with every wait made tiny."""
    from bot.telegram_app import TelegramOptions
    from bot.telegram_flood import FloodLimits
    from bot.telegram_net import Backoff
    from bot.telegram_outbox import OutboxOptions

    values: dict[str, Any] = {
        # Sessions run thousands of times faster than life here; Telegram's per-chat limit
        # of a message a second would hold their steps back (tests of the limits set them).
        "flood": FloodLimits.unlimited(),
        "outbox": OutboxOptions(retry=Backoff(attempts=None, first_delay=0.02, max_delay=0.2)),
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "write_timeout": 2.0,
        "pool_timeout": 1.0,
        "poll_timeout": 2.0,
        "send_retry": Backoff(attempts=6, first_delay=0.02),
        "startup_retry": Backoff(attempts=3, first_delay=0.02),
        "prune_every_seconds": 3600.0,
        **overrides,
    }
    return TelegramOptions(**values)


async def start_bot(
    api: StandIn,
    settings: Any,
    knowledge: Any,
    clock: Any,
    options: Any | None = None,
) -> BotFixture:
    """Build our Application on `settings` (store file included) and serve it in a task."""
    from bot.conversation import Conversation
    from bot.matcher import Matcher
    from bot.misses import MissesPolicy
    from bot.store import Store
    from bot.telegram_app import build_application, serve

    conversation = Conversation(  # as bot.conversation.build_conversation, on a given KB
        knowledge=knowledge,
        matcher=Matcher(knowledge),
        store=Store.open(settings.database_path),
        clock=clock,
        misses_policy=MissesPolicy.from_settings(settings, "telegram"),
    )
    options = options or fast_options()
    app = build_application(settings, conversation, clock, options)
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(serve(app, settings, options, stop))
    return BotFixture(app=app, conversation=conversation, settings=settings, task=task, stop=stop)
