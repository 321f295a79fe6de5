"""The Telegram front end: python-telegram-bot handlers that render what the core says.

Every handler asks `Conversation` (which has already saved its state when it returns) and
renders the answer: HTML with everything escaped, buttons as versioned callback data, long
texts split, timers as one job-queue job per chat. Nothing here decides what to say.

How it copes when Telegram or the network fails
------------------------------------------------

- Start-up. PTB gives up on the first network fault. `serve` retries `getMe` with exponential
  backoff (`TelegramOptions.startup_retry`) and then stops with one line on stderr; a token
  Telegram rejects is not retried (it will not start working), and the line never contains
  the token (PTB's own InvalidToken message does, so it is not shown).
- Sending. `ResilientRequest` (bot/telegram_net.py) repeats a request only when it never left
  this machine (connection refused, connect or pool timeout), a bounded number of times with
  backoff. A send that timed out after it was written may have been delivered, so it is
  logged and not repeated: a person seeing "Step 3" twice is worse than a log line. 429s are
  retried by PTB's AIORateLimiter after the `retry_after` Telegram asks for.
- Redelivery. Telegram redelivers updates it thinks were not received (a crash before the
  offset was confirmed, a webhook answered too late). A TypeHandler in group -1 records each
  update_id in the store and stops a repeat before any handler sees it. The id is recorded
  before handling: acting at most once is the safe side when acting means messages.
- Slow calls. Updates are handled concurrently, so one slow send does not stall every other
  person; `ChatOrderedProcessor` gives each chat an asyncio.Lock, taken in arrival order
  before a concurrency slot, so one chat's updates, button presses and timer fires stay in
  order. Core calls run on the event loop itself: each takes well under a millisecond
  (a match, one SQLite commit in WAL mode), and handing them to a worker thread cost more
  CPU per update than it saved (measured with bench/bench_telegram.py).
- Backlogs. After an outage Telegram may hold thousands of updates; PTB would turn each
  into a task at once. `PendingLimitQueue` lets at most `max_pending_updates` in at a time,
  so the rest waits at Telegram and memory stays flat.
- Harmless complaints ("message is not modified", "query is too old") are logged at debug.
  Anything else reaches the one error handler, which logs the update id, chat and handler
  (never the token: see bot/logging_setup.py) and tells the person once that something went
  wrong.
- Restart. The core persists every session; at start-up `post_init` sends what
  `Conversation.restore()` returns and re-arms its timers. A button on a message sent before
  a crash is routed like any other, so Next on the last step message carries on.

Which presses edit the message they are on: session controls, checklist ticks, settings and
the browse menu change the screen they belong to, so the first reply replaces that message;
everything else (an answer, a new menu) is sent as a new message so the chat keeps its
history. When a timer ends the bot always sends a new message, so the phone notifies.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatType
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    BaseUpdateProcessor,
    CallbackContext,
    CallbackQueryHandler,
    InlineQueryHandler,
    JobQueue,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import HTTPXRequest

from bot.clock import Clock, SystemClock
from bot.conversation import (
    COMMANDS,
    SOMETHING_WENT_WRONG,
    Conversation,
    build_conversation,
)
from bot.knowledge import KnowledgeError
from bot.logging_setup import Redactor, configure_logging, install_redaction
from bot.replies import ArmTimer, CancelTimer, Response, TimerOrder
from bot.settings import Settings, SettingsError
from bot.store import StoreError
from bot.telegram_net import Backoff, ReplyBot, ResilientRequest, is_harmless
from bot.telegram_render import OutgoingMessage, decode_callback, inline_result, render_reply

log = logging.getLogger(__name__)

# Handlers see the ReplyBot that build_application gives the application.
Context = CallbackContext[ReplyBot, dict[Any, Any], dict[Any, Any], dict[Any, Any]]

# The one admin command (ADMIN_IDS): load an edited knowledge base without a restart.
ADMIN_RELOAD = "reload"
# Handed to the core for a button that is not ours (old version, forged, over 64 bytes): no
# action has this shape, so the core answers with its "that button is from an old message".
NOT_OUR_BUTTON = "?"
# First part of an action (before ":") whose reply replaces the pressed message.
EDIT_IN_PLACE = frozenset({"s", "ck", "hf", "kind"})
ALLOWED_UPDATES = ("message", "callback_query", "inline_query")
INLINE_CACHE_SECONDS = 300
# What a message is when it is not text, in the order to test (an animation is a document too).
ATTACHMENT_KINDS = (
    "animation", "sticker", "photo", "video", "video_note", "voice", "audio", "document",
    "venue", "location", "contact", "poll", "dice", "game", "story",
)  # fmt: skip
EXIT_FAILURE = 1


def timer_job_name(chat_id: int) -> str:
    return f"timer:{chat_id}"


@dataclass(frozen=True)
class RateLimits:
    """PTB's AIORateLimiter settings; the defaults are Telegram's published flood limits."""

    overall_per_second: float = 30
    group_per_minute: float = 20
    max_retries: int = 3  # 429s waited out and retried before giving up


@dataclass(frozen=True)
class TelegramOptions:
    """Network behaviour; production defaults, and tests make the waits tiny."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    write_timeout: float = 10.0
    pool_timeout: float = 3.0
    poll_timeout: float = 10.0  # how long one getUpdates long poll waits for news
    # Four updates at a time keep one slow call from stalling everyone and reach Telegram's
    # 30 messages a second at ~100 ms a call; more only cost CPU in httpx's connection pool
    # (measured with bench/bench_telegram.py). Two spare connections for timers.
    concurrent_updates: int = 4
    connection_pool_size: int = 6
    # Updates taken in but not yet handled; a chat waiting on its lock holds one, so this is
    # also how many messages one chat could queue before it delays others.
    max_pending_updates: int = 128
    send_retry: Backoff = field(default_factory=lambda: Backoff(attempts=3, first_delay=0.5))
    startup_retry: Backoff = field(default_factory=lambda: Backoff(attempts=5, first_delay=1.0))
    rate_limits: RateLimits = field(default_factory=RateLimits)


class HandlerFailed(Exception):
    """Raised from a handler's own exception so the error handler can name the handler."""

    def __init__(self, handler: str) -> None:
        super().__init__(handler)
        self.handler = handler


class StartupFailed(Exception):
    """The bot could not start; the message is one line for the operator, without secrets."""


@dataclass
class _LockEntry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class ChatLocks:
    """One lock per chat, kept only while someone holds or waits for it."""

    entries: dict[int, _LockEntry] = field(default_factory=dict)

    @asynccontextmanager
    async def hold(self, chat_id: int) -> AsyncIterator[None]:
        entry = self.entries.setdefault(chat_id, _LockEntry())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self.entries[chat_id]


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Updates run concurrently, but one chat's updates one at a time and in arrival order.

    The chat's lock is taken before a concurrency slot, so a chat that sends fifty messages
    waits on its own lock without holding fifty slots that other people need. PTB starts one
    task per update in arrival order and nothing awaits before the lock, so the lock's FIFO
    order is the arrival order.
    """

    def __init__(self, max_concurrent_updates: int, locks: ChatLocks) -> None:
        super().__init__(max_concurrent_updates)
        self.locks = locks

    async def process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:  # inline queries belong to no chat
            await super().process_update(update, coroutine)
            return
        async with self.locks.hold(chat.id):
            await super().process_update(update, coroutine)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        await coroutine

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""


class PendingLimitQueue(asyncio.Queue):  # type: ignore[type-arg]
    """The queue from PTB's updater to the application, holding at most `limit` updates.

    With concurrent updates PTB turns every update it takes from this queue into a task at
    once, so a backlog (thousands of messages after an outage) would all sit in memory as
    tasks. Here taking an update waits for a slot, freed when PTB marks one done
    (`task_done`), and the queue itself is bounded, so the updater stops polling while the
    bot catches up: the backlog waits at Telegram, not in our memory.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(maxsize=limit)
        self._slots = asyncio.Semaphore(limit)

    async def get(self) -> Any:
        await self._slots.acquire()
        try:
            return await super().get()
        except BaseException:
            self._slots.release()
            raise

    def task_done(self) -> None:
        super().task_done()
        self._slots.release()


def guarded(name: str, callback: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
    """Wrap a handler so its failure reaches the error handler labelled with its name."""

    async def run(*args: Any) -> None:
        try:
            await callback(*args)
        except ApplicationHandlerStop:
            raise
        except Exception as error:
            raise HandlerFailed(name) from error

    run.__name__ = name
    return run


def attachment_kind(message: Message) -> str | None:
    for kind in ATTACHMENT_KINDS:
        if getattr(message, kind, None):
            return kind
    return None


def parse_command(message: Message, username: str) -> tuple[str, str, bool] | None:
    """(command, arguments, addressed by @name) of a command message meant for this bot."""
    text = message.text or ""
    entity = message.entities[0] if message.entities else None
    if entity is None or entity.type != MessageEntity.BOT_COMMAND or entity.offset != 0:
        return None
    word = text[1 : entity.length]  # commands are ASCII, so UTF-16 length is the str length
    name, _, target = word.partition("@")
    if target and target.lower() != username.lower():
        return None  # /start@other_bot in a group
    return name.lower(), text[entity.length :].strip(), bool(target)


def addressed_text(message: Message, bot_id: int, username: str) -> str | None:
    """The text meant for the bot: all of it in private, in groups only a mention or a reply."""
    text = message.text or ""
    if message.chat.type == ChatType.PRIVATE:
        return text
    mention = f"@{username}".lower()
    mentioned = any(
        (entity.type == MessageEntity.MENTION and value.lower() == mention)
        or (entity.type == MessageEntity.TEXT_MENTION and entity.user is not None
            and entity.user.id == bot_id)
        for entity, value in message.parse_entities(
            [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
        ).items()
    )
    if not (mentioned or is_replying_to(message, bot_id)):
        return None
    return re.sub(re.escape(mention), " ", text, flags=re.IGNORECASE).strip()


def is_replying_to(message: Message, bot_id: int) -> bool:
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == bot_id


@dataclass
class TelegramFrontEnd:
    """The handlers, bound to one conversation and one clock."""

    conversation: Conversation
    clock: Clock
    knowledge_dir: Path
    admin_ids: frozenset[int] = frozenset()
    locks: ChatLocks = field(default_factory=ChatLocks)

    def is_admin(self, message: Message) -> bool:
        # Only in a private chat: a reload's report is not for a group to read.
        return (
            message.chat.type == ChatType.PRIVATE
            and message.from_user is not None
            and message.from_user.id in self.admin_ids
        )

    # --- wiring ----------------------------------------------------------------------------

    def install(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        app.add_handler(TypeHandler(Update, guarded("dedupe", self.drop_duplicates)), group=-1)
        new_message = filters.UpdateType.MESSAGE
        app.add_handler(
            MessageHandler(new_message & filters.COMMAND, guarded("command", self.on_command))
        )
        app.add_handler(
            MessageHandler(new_message & filters.TEXT, guarded("text", self.on_text))
        )
        app.add_handler(CallbackQueryHandler(guarded("button", self.on_button)))
        app.add_handler(InlineQueryHandler(guarded("inline", self.on_inline)))
        app.add_handler(MessageHandler(new_message, guarded("other", self.on_other)))
        # Edited messages, channel posts and the rest match no handler: quietly ignored.
        app.add_error_handler(self.on_error)

    async def post_init(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        """At start-up: the command menu, then every session the core brings back."""
        try:
            await app.bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
        except TelegramError as error:
            log.warning("could not set the command menu: %s", error)
        restored = self.conversation.restore()
        for chat_id, response in restored:
            try:
                async with self.locks.hold(chat_id):
                    await self.deliver(app.bot, app.job_queue, chat_id, response)
            except TelegramError as error:
                log.warning("could not restore chat %s: %s", chat_id, error)
        if restored:
            log.info("restored %d guided session(s)", len(restored))

    # --- handlers (each runs under its chat's lock: see ChatOrderedProcessor) ------------------

    async def drop_duplicates(self, update: Update, context: Context) -> None:
        if not self.conversation.store.mark_update_seen(update.update_id):
            log.info("update %s was delivered again; ignoring the repeat", update.update_id)
            raise ApplicationHandlerStop

    async def on_command(self, update: Update, context: Context) -> None:
        message = update.message
        assert message is not None
        parsed = parse_command(message, context.bot.username)
        if parsed is None:
            return
        command, args, addressed = parsed
        known = command in {name for name, _ in COMMANDS}
        if message.chat.type != ChatType.PRIVATE and not (known or addressed):
            return  # an unknown /command in a group is probably for another bot
        chat_id = message.chat.id
        if command == "start":
            response = self.conversation.handle_start(chat_id, args)
        elif command == ADMIN_RELOAD and self.is_admin(message):
            response = self.conversation.reload(self.knowledge_dir)
        else:
            response = self.conversation.handle_command(chat_id, command, args)
        await self.deliver(context.bot, context.job_queue, chat_id, response)

    async def on_text(self, update: Update, context: Context) -> None:
        message = update.message
        assert message is not None
        text = addressed_text(message, context.bot.id, context.bot.username)
        if text is None:
            return
        chat_id = message.chat.id
        response = self.conversation.handle_text(chat_id, text)
        await self.deliver(context.bot, context.job_queue, chat_id, response)

    async def on_other(self, update: Update, context: Context) -> None:
        message = update.message
        assert message is not None
        kind = attachment_kind(message)
        if kind is None:
            return  # a service message: someone joined, a title changed, a pin
        if message.chat.type != ChatType.PRIVATE and not is_replying_to(message, context.bot.id):
            return
        chat_id = message.chat.id
        response = self.conversation.unsupported(chat_id, kind)
        await self.deliver(context.bot, context.job_queue, chat_id, response)

    async def on_button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None
        # Answered first, so the spinner stops even if what follows fails.
        await self.answer_query(query.answer())
        message = query.message
        if message is None:
            return  # a button on an inline-mode message: we put none there
        chat_id = message.chat.id
        action = decode_callback(query.data)
        response = self.conversation.handle_action(chat_id, action or NOT_OUR_BUTTON)
        editable = action is not None and action.partition(":")[0] in EDIT_IN_PLACE
        await self.deliver(
            context.bot, context.job_queue, chat_id, response,
            edit=message if editable and isinstance(message, Message) else None,
        )

    async def on_inline(self, update: Update, context: Context) -> None:
        query = update.inline_query
        assert query is not None
        topics = self.conversation.inline_answers(query.query) if query.query.strip() else []
        await self.answer_query(
            query.answer(
                [inline_result(topic) for topic in topics], cache_time=INLINE_CACHE_SECONDS
            )
        )

    async def on_timer(self, context: Context) -> None:
        job = context.job
        assert job is not None and job.chat_id is not None
        chat_id, token = job.chat_id, str(job.data)
        # A timer is not an update, so it takes its chat's lock itself.
        async with self.locks.hold(chat_id):
            response = self.conversation.handle_timer(chat_id, token)
            await self.deliver(context.bot, context.job_queue, chat_id, response)

    async def on_error(self, update: object, context: Context) -> None:
        error = context.error
        handler = "unknown"
        if isinstance(error, HandlerFailed):
            handler, error = error.handler, error.__cause__ or error
        elif context.job is not None:
            handler = "timer"
        if error is None:
            return
        if is_harmless(error):
            log.debug("harmless Bot API complaint in %s: %s", handler, error)
            return
        update_id = update.update_id if isinstance(update, Update) else None
        chat_id: int | None = None
        if isinstance(update, Update) and update.effective_chat is not None:
            chat_id = update.effective_chat.id
        elif context.job is not None:
            chat_id = context.job.chat_id
        log.error(
            "handler %s failed on update %s in chat %s: %s: %s",
            handler, update_id, chat_id, type(error).__name__, error,
            exc_info=(type(error), error, error.__traceback__),
        )
        if chat_id is None:
            return
        try:
            await context.bot.send_message(chat_id, SOMETHING_WENT_WRONG)
        except TelegramError as apology_error:
            # Once: if even the apology fails, the log is all that is left.
            log.warning("could not tell chat %s that something failed: %s", chat_id, apology_error)

    # --- rendering ---------------------------------------------------------------------------

    async def deliver(
        self,
        bot: ReplyBot,
        job_queue: JobQueue[Any] | None,
        chat_id: int,
        response: Response,
        edit: Message | None = None,
    ) -> None:
        """Arm or cancel the timer, then send the replies (the first may replace `edit`)."""
        # The timer first: the core's state already says a step is running, and a failed
        # send must not leave that step without its timer.
        self.apply_timer(job_queue, chat_id, response.timer)
        for reply in response.replies:
            messages = render_reply(reply)
            for message in messages:
                target, edit = edit, None
                if target is not None and len(messages) == 1 and await self.edit(
                    bot, target, message
                ):
                    continue
                if not await self.send(bot, chat_id, message):
                    return

    def apply_timer(
        self, job_queue: JobQueue[Any] | None, chat_id: int, order: TimerOrder | None
    ) -> None:
        if order is None:
            return
        assert job_queue is not None, "the application is built with a job queue"
        name = timer_job_name(chat_id)
        for job in job_queue.get_jobs_by_name(name):
            job.schedule_removal()
        if isinstance(order, CancelTimer):
            return
        assert isinstance(order, ArmTimer)
        delay = self.clock.real_seconds(max(0.0, order.due_at - self.clock.now()))
        job_queue.run_once(
            guarded("timer", self.on_timer), when=delay, data=order.token, name=name,
            chat_id=chat_id,
        )

    async def send(self, bot: ReplyBot, chat_id: int, message: OutgoingMessage) -> bool:
        """Send one message; False when the chat is gone and nothing more should be sent."""
        try:
            await bot.send_text(
                chat_id, message.html, parse_mode=message.parse_mode, reply_markup=message.markup
            )
        except TimedOut:
            log.warning(
                "sending to chat %s timed out; not sending again, it may have arrived", chat_id
            )
        except Forbidden as error:
            log.info("chat %s does not accept messages (%s); stopping there", chat_id, error)
            return False
        return True

    async def edit(self, bot: ReplyBot, target: Message, message: OutgoingMessage) -> bool:
        """Replace `target` with `message`; False when it cannot be edited (send instead)."""
        try:
            await bot.edit_text(
                target.chat.id,
                target.message_id,
                message.html,
                parse_mode=message.parse_mode,
                reply_markup=message.markup,
            )
        except BadRequest as error:
            if is_harmless(error):
                log.debug("edit of message %s changed nothing", target.message_id)
                return True
            log.info("could not edit message %s (%s); sending instead", target.message_id, error)
            return False
        except TimedOut:
            # An edit is idempotent, and it most likely went through; a new message would not be.
            log.warning("editing message %s timed out", target.message_id)
        return True

    @staticmethod
    async def answer_query(answering: Awaitable[Any]) -> None:
        try:
            await answering
        except BadRequest as error:
            if not is_harmless(error):
                raise
            log.debug("query could not be answered: %s", error)
        except TimedOut:
            log.debug("answering a query timed out")


def build_application(
    settings: Settings,
    conversation: Conversation,
    clock: Clock,
    options: TelegramOptions | None = None,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The PTB Application with our handlers, network behaviour and start-up restore."""
    options = options or TelegramOptions()
    install_redaction((settings.token, settings.webhook_secret))
    front = TelegramFrontEnd(
        conversation=conversation,
        clock=clock,
        knowledge_dir=settings.knowledge_dir,
        admin_ids=settings.admin_ids,
    )
    timeouts = {
        "connect_timeout": options.connect_timeout,
        "read_timeout": options.read_timeout,
        "write_timeout": options.write_timeout,
        "pool_timeout": options.pool_timeout,
    }
    limits = options.rate_limits
    bot = ReplyBot(
        token=settings.token,
        base_url=settings.base_url,
        base_file_url=settings.base_file_url,
        request=ResilientRequest(
            options.send_retry, connection_pool_size=options.connection_pool_size, **timeouts
        ),
        # The updater retries polling by itself, with its own backoff.
        get_updates_request=HTTPXRequest(connection_pool_size=1, **timeouts),
        rate_limiter=AIORateLimiter(
            overall_max_rate=limits.overall_per_second,
            overall_time_period=1,
            group_max_rate=limits.group_per_minute,
            group_time_period=60,
            max_retries=limits.max_retries,
        ),
    )
    app = (
        ApplicationBuilder()
        .bot(bot)
        .concurrent_updates(ChatOrderedProcessor(options.concurrent_updates, front.locks))
        .update_queue(PendingLimitQueue(options.max_pending_updates))
        .job_queue(JobQueue())
        .post_init(front.post_init)
        .build()
    )
    front.install(app)
    return app


async def with_startup_retries(
    action: Callable[[], Awaitable[Any]], backoff: Backoff, where: str, doing: str
) -> None:
    """Run a start-up call, retried with backoff on network faults; StartupFailed otherwise.

    PTB has retries of its own for start-up, but it logs a traceback when they run out; the
    operator should get one line instead.
    """
    delays = backoff.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            await action()
            return
        except InvalidToken:
            # PTB's message repeats the token; ours must not.
            raise StartupFailed(
                f"Telegram rejected the bot token (401 Unauthorized) at {where}: check "
                "TELEGRAM_BOT_TOKEN, as @BotFather gives it"
            ) from None
        except BadRequest as error:
            raise StartupFailed(f"Telegram refused to {doing}: {error}") from None
        except TelegramError as error:  # network faults, timeouts, 429, 5xx
            delay = next(delays, None)
            if delay is None:
                raise StartupFailed(
                    f"cannot reach the Telegram Bot API at {where} to {doing} after "
                    f"{attempt} attempts: {error}"
                ) from None
            log.debug("start-up attempt %d failed (%s); next in %.2f s", attempt, error, delay)
            await asyncio.sleep(delay)


async def prepare_webhook(
    app: Application[Any, Any, Any, Any, Any, Any],
    settings: Settings,
    options: TelegramOptions,
    where: str,
) -> None:
    """Set the webhook, or delete it for polling, with our retries and one-line failures.

    PTB's updater repeats this call when it starts; by then it has just worked, and if it
    fails after all, PTB's own retries take over.
    """
    retry = options.startup_retry
    if settings.uses_webhook:
        await with_startup_retries(
            lambda: app.bot.set_webhook(
                settings.webhook_url,
                secret_token=settings.webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
            ),
            retry, where, f"set the webhook to {settings.webhook_url}",
        )
    else:
        await with_startup_retries(app.bot.delete_webhook, retry, where, "delete the webhook")


async def serve(
    app: Application[Any, Any, Any, Any, Any, Any],
    settings: Settings,
    options: TelegramOptions,
    stop: asyncio.Event,
) -> None:
    """Start the application, run until `stop` is set, then shut down in order."""
    where = urlsplit(settings.base_url).netloc or settings.base_url
    try:
        await with_startup_retries(app.initialize, options.startup_retry, where, "start")
    except BaseException:
        # Nothing started, but the HTTP client may hold a connection open.
        await app.bot.request.shutdown()
        raise
    updater = app.updater
    assert updater is not None
    try:
        await prepare_webhook(app, settings, options, where)
        if app.post_init is not None:
            await app.post_init(app)
        try:
            if settings.uses_webhook:
                await updater.start_webhook(
                    listen=settings.webhook_listen,
                    port=settings.webhook_port,
                    url_path=settings.webhook_path,
                    webhook_url=settings.webhook_url,
                    secret_token=settings.webhook_secret,
                    allowed_updates=ALLOWED_UPDATES,
                    bootstrap_retries=options.startup_retry.attempts - 1,
                )
            else:
                await updater.start_polling(
                    timeout=options.poll_timeout,
                    allowed_updates=ALLOWED_UPDATES,
                    bootstrap_retries=options.startup_retry.attempts - 1,
                    error_callback=_polling_error,
                )
        except OSError as error:
            raise StartupFailed(
                f"cannot listen for the webhook on {settings.webhook_listen}:"
                f"{settings.webhook_port}: {error.strerror or error}"
            ) from None
        except TelegramError as error:
            # The webhook call failed after working a moment ago; PTB's message has no token.
            mode = "set the webhook" if settings.uses_webhook else "start polling"
            raise StartupFailed(f"cannot {mode} at {where}: {error}") from None
        await app.start()
        log.info("bot @%s is running (%s)", app.bot.username,
                 "webhook" if settings.uses_webhook else "long polling")
        await stop.wait()
    finally:
        if updater.running:
            await updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()


def _polling_error(error: TelegramError) -> None:
    # PTB keeps polling with backoff; one line is enough, a traceback per blip is not.
    log.warning("polling for updates failed: %s: %s", type(error).__name__, error)


async def _run(settings: Settings, conversation: Conversation, clock: Clock,
               options: TelegramOptions) -> None:
    app = build_application(settings, conversation, clock, options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Signal handlers can only be set from the main thread (tests run us in a worker).
        with suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    await serve(app, settings, options, stop)


def _fail(message: str, redact: Redactor, err: TextIO) -> int:
    print(f"massage-bot: {redact(message)}", file=err)
    return EXIT_FAILURE


def run_bot(
    settings: Settings,
    options: TelegramOptions | None = None,
    clock: Clock | None = None,
    err: TextIO | None = None,
) -> int:
    """`massage-bot run`: serve until SIGINT/SIGTERM; failures end with one line on stderr."""
    err = err if err is not None else sys.stderr
    redact = configure_logging(settings.log_level, (settings.token, settings.webhook_secret))
    try:
        settings.require_token()
    except SettingsError as error:
        return _fail(str(error), redact, err)
    clock = clock if clock is not None else SystemClock()
    try:
        conversation = build_conversation(settings, clock)
    except KnowledgeError as error:
        for problem in error.problems:
            print(problem, file=err)
        return _fail(
            f"refusing to start: {len(error.problems)} problem(s) in the knowledge base "
            f"{settings.knowledge_dir}", redact, err,
        )
    except StoreError as error:
        return _fail(str(error), redact, err)
    try:
        asyncio.run(_run(settings, conversation, clock, options or TelegramOptions()))
    except StartupFailed as error:
        return _fail(str(error), redact, err)
    except KeyboardInterrupt:
        pass
    finally:
        conversation.store.close()
    return 0

