"""The Telegram front end: python-telegram-bot handlers that render what the core says.

Every handler asks `Conversation` and renders the answer: HTML with everything escaped,
buttons as versioned callback data, long texts split, one timer per chat on the job queue.
Nothing here decides what to say. Handlers do not send: they store what to show in the
outbox (bot/telegram_outbox.py), in the same SQLite transaction as the core's new state and
the update's dedupe mark, and the outbox's sender delivers it.

How it copes when Telegram or the network fails
------------------------------------------------

- Start-up. PTB gives up on the first network fault. `serve` keeps trying `getMe` through
  network faults and 5xx, with capped exponential backoff (`TelegramOptions.startup_retry`),
  one INFO line per retry as it is decided ("retrying in 4 s (attempt 3, no limit)"), and
  SIGTERM ends the wait at once; what will not heal ends it at once with one line on stderr: a
  token Telegram rejects (401), a base URL that is not the Bot API (404, or not JSON), a
  webhook Telegram refuses. No line carries the token or a proxy's HTML page.
- Sending. Handlers and timers return as soon as their messages are stored; the outbox
  retries what cannot have been delivered, keeps each chat's order and Telegram's flood
  limits, puts replies ahead of timer notices, shows only a session's newest screen after an
  outage and never repeats a send whose delivery is unknown (its docstring has the rules).
  A 403 (the person blocked the bot, or it left the group) ends the chat's session and timer
  quietly; the next message from that chat starts afresh.
- Button presses. The press is handled first; the spinner's answerCallbackQuery goes in a
  task of its own afterwards, best-effort: if it fails, the press has still done its job.
- Redelivery. Telegram redelivers updates it thinks were not received (a crash before the
  offset was confirmed, a webhook answered too late). Each update id is recorded in the
  transaction that handles it, so a repeat is stopped, and an update whose handling failed
  (rolled back) counts as not seen.
- Order. Updates are handled concurrently; `ChatOrderedProcessor` gives each chat an
  asyncio.Lock, taken in arrival order, so one chat's updates stay in order. A handler's
  core call and outbox write run without awaiting, so a timer firing for the same chat can
  never interleave with them.
- Backlogs. After an outage Telegram may hold thousands of updates; PTB would turn each
  into a task at once. `PendingLimitQueue` lets at most `max_pending_updates` in at a time,
  so the rest waits at Telegram and memory stays flat.
- Errors. Anything unexpected reaches the one error handler, which logs the update id,
  chat and handler (never the token: see bot/logging_setup.py) and, through the outbox,
  tells the person once that something went wrong.
- Timers at scale. `ChatTimers` keeps its own map from chat to job, so arming, cancelling and
  firing never scan the job queue; a timer's callback never awaits, so stopping the bot
  cancels pending timers quietly. APScheduler's one-second misfire grace is switched off: a
  timer that fires late (a busy moment) still fires.
- Restart. The outbox goes first. Then every saved session comes back (`restore_chat`) a
  few hundred at a time in a background task, so polling starts at once: a chat whose person
  writes before its turn is restored right then, ahead of the reply. Overdue timers' notices
  go through the outbox at the flood limit, after people's replies and timers ending now.
- Groups. A session belongs to whoever started it (`session_owners` in the store): another
  member's press on it gets a short alert and changes nothing, and their typed session
  commands get a short note.
- Retention. A job prunes the store on a schedule (`Store.prune`): seen update ids, old
  sessions, undelivered messages and answers open to feedback past their keep times; and,
  once a day, the misses log's old days (bot/misses.py).

Which presses edit the message they are on: session controls, checklist ticks, settings and
the browse menu change the screen they belong to, so the first reply replaces that message;
everything else (an answer, a new menu) is sent as a new message so the chat keeps its
history. A press whose response says what the pressed message shows now (`Response.pressed`:
an answer's feedback row, gone once pressed) also edits that message. When a timer ends
the bot always sends a new message, so the phone notifies. A reply with a picture is a photo
(bot/telegram_pictures.py says how one is edited, and when a new message must replace it).
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from apscheduler.jobstores.base import JobLookupError
from telegram import (
    BotCommand,
    CallbackQuery,
    Chat,
    Message,
    MessageEntity,
    Update,
    User,
)
from telegram.constants import ChatType
from telegram.error import (
    BadRequest,
    InvalidToken,
    TelegramError,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    BaseUpdateProcessor,
    CallbackContext,
    CallbackQueryHandler,
    InlineQueryHandler,
    Job,
    JobQueue,
    MessageHandler,
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
from bot.pictures import PICTURES_DIR, PictureFiles
from bot.replies import (
    ArmTimer,
    Button,
    CancelTimer,
    Reply,
    Response,
    TimerOrder,
    offered_buttons,
    reply,
)
from bot.session import is_session_button, parse_action
from bot.settings import EXIT_CONFIG, Settings, SettingsError
from bot.store import SessionOwner, Store, StoreError
from bot.telegram_flood import FloodLimiter, FloodLimits
from bot.telegram_net import (
    Backoff,
    NotBotApi,
    ReplyBot,
    ResilientRequest,
    describe,
    is_harmless,
)
from bot.telegram_outbox import OUTBOX_METHODS, Batch, Outbox, OutboxOptions, Priority
from bot.telegram_pictures import OutboxTransport, edit_plan, outgoing
from bot.telegram_render import decode_callback, inline_result

log = logging.getLogger(__name__)

# Handlers see the ReplyBot that build_application gives the application.
Context = CallbackContext[ReplyBot, dict[Any, Any], dict[Any, Any], dict[Any, Any]]
AnyApplication = Application[Any, Any, Any, Any, Any, Any]

# The one admin command (ADMIN_IDS): load an edited knowledge base without a restart.
ADMIN_RELOAD = "reload"
# Handed to the core for a button that is not ours (old version, forged, over 64 bytes): no
# action has this shape, so the core answers with its "that button is from an old message".
NOT_OUR_BUTTON = "?"
# First part of an action (before ":") whose reply replaces the pressed message.
EDIT_IN_PLACE = frozenset({"s", "ck", "hf", "pic", "kind"})
ALLOWED_UPDATES = ("message", "callback_query", "inline_query")
INLINE_CACHE_SECONDS = 300
# How many chats' last buttons are kept for typed words (a few hundred bytes each).
OFFERED_CHATS_KEPT = 10_000
# What a message is when it is not text, in the order to test (an animation is a document too).
ATTACHMENT_KINDS = (
    "animation", "sticker", "photo", "video", "video_note", "voice", "audio", "document",
    "venue", "location", "contact", "poll", "dice", "game", "story",
)  # fmt: skip
EXIT_FAILURE = 1
# Groups: what another member gets for pressing (an alert: at most 200 characters) or typing
# a command for someone else's session.
NOT_YOUR_SESSION = (
    "This session belongs to {name}. To follow one yourself, start your own in a private "
    "chat with me."
)


def timer_job_name(chat_id: int) -> str:
    return f"timer:{chat_id}"


@dataclass(frozen=True)
class TelegramOptions:
    """Network behaviour; production defaults, and tests make the waits tiny."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    write_timeout: float = 10.0
    pool_timeout: float = 3.0
    poll_timeout: float = 10.0  # how long one getUpdates long poll waits for news
    # Handlers only ask the core and write to the store, then return; a few at a time is
    # plenty (they do not wait on the network any more).
    concurrent_updates: int = 4
    # The outbox's requests in flight, plus spinner and inline answers, plus set-up calls.
    connection_pool_size: int = 8
    # Updates taken in but not yet handled; a chat waiting on its lock holds one, so this is
    # also how many messages one chat could queue before it delays others.
    max_pending_updates: int = 128
    # Repeats inside one request of what was never sent (but the outbox's: it repeats its own).
    send_retry: Backoff = field(default_factory=lambda: Backoff(attempts=3, first_delay=0.5))
    # Start-up keeps trying as long as it takes: an outage is waited out, not given up on.
    startup_retry: Backoff = field(
        default_factory=lambda: Backoff(attempts=None, first_delay=1.0, max_delay=60.0)
    )
    flood: FloodLimits = field(default_factory=FloodLimits)
    outbox: OutboxOptions = field(default_factory=OutboxOptions)
    answer_timeout: float = 5.0  # a spinner answer later than this is no use to anyone
    # Sessions restored between two looks at new updates: 50 take ~8 ms, so a newcomer
    # waits for a few chunks at most (bench/bench_telegram_restart.py).
    restore_chunk: int = 50
    prune_every_seconds: float = 600.0
    monotonic: Callable[[], float] = time.monotonic  # the flood limits' clock


class HandlerFailed(Exception):
    """Raised from a handler's own exception so the error handler can name the handler."""

    def __init__(self, handler: str) -> None:
        super().__init__(handler)
        self.handler = handler


class StartupFailed(Exception):
    """The bot could not start; the message is one line for the operator, without secrets.

    `heals`: trying again later may work (the API was unreachable); otherwise a setting is
    wrong and only the operator can fix it.
    """

    def __init__(self, message: str, heals: bool = False) -> None:
        super().__init__(message)
        self.heals = heals


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


def has_session_buttons(item: Reply) -> bool:
    """True for a reply showing a session's screen: it carries the session's buttons."""
    return any(is_session_button(button) for row in item.buttons for button in row)


def supersedes(response: Response) -> bool:
    """Whether `response` makes a chat's waiting session screens pointless: it shows a newer
    screen, or the session is over. A timer's bare notice ("1 minute left") does not."""
    return isinstance(response.timer, CancelTimer) or any(
        has_session_buttons(item) for item in response.replies
    )


@dataclass
class ChatTimers:
    """One timer per chat on PTB's job queue, found through this map, never by a scan."""

    job_queue: JobQueue[Any]
    callback: Callable[[Context], Awaitable[None]]
    jobs: dict[int, Job[Any]] = field(default_factory=dict)

    def arm(self, chat_id: int, delay: float, token: str) -> None:
        self.cancel(chat_id)
        self.jobs[chat_id] = self.job_queue.run_once(
            self.callback, when=delay, data=token, name=timer_job_name(chat_id),
            chat_id=chat_id,
            # APScheduler skips a job more than a second late; a late step timer must still
            # fire, however busy the loop was.
            job_kwargs={"misfire_grace_time": None},
        )

    def cancel(self, chat_id: int) -> None:
        job = self.jobs.pop(chat_id, None)
        if job is not None:
            with suppress(JobLookupError):  # due this instant: it fires, and finds its token stale
                job.schedule_removal()

    def fired(self, job: Job[Any]) -> None:
        if job.chat_id is not None and self.jobs.get(job.chat_id) is job:
            del self.jobs[job.chat_id]

    def __len__(self) -> int:
        return len(self.jobs)

    def __contains__(self, chat_id: object) -> bool:
        return chat_id in self.jobs


@dataclass
class TelegramFrontEnd:
    """The handlers, bound to one conversation and one clock."""

    conversation: Conversation
    clock: Clock
    knowledge_dir: Path
    pictures: PictureFiles  # where the PNGs are kept until Telegram has them
    options: TelegramOptions = field(default_factory=TelegramOptions)
    admin_ids: frozenset[int] = frozenset()
    locks: ChatLocks = field(default_factory=ChatLocks)
    # Chats whose saved session the restart has not brought back yet.
    unrestored: set[int] = field(default_factory=set)
    # The buttons each chat was shown last, so a typed "done" or "start" presses its button;
    # the most recent chats only (a restart forgets them: a session's own are the core's).
    offered: dict[int, tuple[Button, ...]] = field(default_factory=dict)
    outbox: Outbox = field(init=False)
    transport: OutboxTransport = field(init=False)
    timers: ChatTimers = field(init=False)
    _background: set[asyncio.Task[Any]] = field(default_factory=set)

    def is_admin(self, message: Message) -> bool:
        # Only in a private chat: a reload's report is not for a group to read.
        return (
            message.chat.type == ChatType.PRIVATE
            and message.from_user is not None
            and message.from_user.id in self.admin_ids
        )

    @property
    def store(self) -> Store:
        return self.conversation.store

    # --- wiring ----------------------------------------------------------------------------

    def install(self, app: AnyApplication) -> None:
        assert app.job_queue is not None, "the application is built with a job queue"
        self.timers = ChatTimers(app.job_queue, guarded("timer", self.on_timer))
        self.transport = OutboxTransport(app.bot, self.conversation.store, self.pictures,
                                         lambda: self.conversation.knowledge.pictures)
        self.outbox = Outbox(
            self.conversation.store,
            self.transport,
            FloodLimiter(self.options.flood, now=self.options.monotonic),
            on_chat_gone=self.chat_gone,
            on_refused=self.refused,
            options=self.options.outbox,
        )
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

    async def post_init(self, app: AnyApplication) -> None:
        """At start-up: deliver what the last run left, then bring the sessions back. New
        pictures are drawn first (a few seconds, once per new or changed picture)."""
        await self.transport.prepare()
        held_over = self.outbox.load()
        if held_over:
            log.info("delivering %d message(s) left from before the restart", held_over)
        self.outbox.start()
        self.unrestored = set(self.store.session_chat_ids())
        self._spawn(self.restore_sessions(), "restore")
        self._spawn(self.set_commands(app.bot), "commands")
        assert app.job_queue is not None
        app.job_queue.run_repeating(
            guarded("prune", self.prune), interval=self.options.prune_every_seconds,
            first=self.options.prune_every_seconds, name="prune",
        )

    async def post_stop(self, app: AnyApplication) -> None:
        """After the last update is handled: stop restoring, deliver what waits, briefly."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.outbox.stop()

    def _spawn(self, coroutine: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def set_commands(self, bot: ReplyBot) -> None:
        try:
            await bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
        except TelegramError as error:
            log.warning("could not set the command menu: %s", describe(error))

    async def restore_sessions(self) -> None:
        """Bring every saved session back, a chunk at a time, letting updates in between."""
        count = 0
        while self.unrestored:
            chunk = [self.unrestored.pop() for _ in range(min(len(self.unrestored),
                                                              self.options.restore_chunk))]
            try:
                self.act_on_many(chunk, self.conversation.restore_chat)
            except Exception:
                # One bad session must not cost the others theirs: one at a time, then.
                for chat_id in chunk:
                    try:
                        self.act_on_many([chat_id], self.conversation.restore_chat)
                    except Exception:
                        log.exception("could not restore the session of chat %s", chat_id)
            count += len(chunk)
            await asyncio.sleep(0)  # updates that came in meanwhile go now
        if count:
            log.info("restored %d guided session(s)", count)

    async def prune(self, context: Context) -> None:
        pruned = self.store.prune()
        expired = self.outbox.expire()
        misses = self.conversation.misses.prune_if_due()  # once a day, even when quiet
        log.info(
            "pruned the store: %d seen update id(s), %d old session(s), %d undelivered "
            "message(s) (%d in memory), %d owner(s), %d answer(s) closed to feedback, "
            "%d old miss(es)",
            pruned.seen_updates, pruned.sessions, pruned.outbox, expired, pruned.owners,
            pruned.open_answers, misses,
        )

    # --- asking the core ---------------------------------------------------------------------

    def act(
        self,
        chat_id: int,
        call: Callable[[], Response],
        *,
        update: Update | None = None,
        user: User | None = None,
        chat: Chat | None = None,
        edit: int | None = None,
        pressed: int | None = None,
        priority: Priority = Priority.INTERACTIVE,
        pressed_is_photo: bool = False,
    ) -> bool:
        """Ask the core, and commit its new state with the messages that show it (and the
        update's dedupe mark) in one transaction; then arm or cancel the chat's timer.
        `pressed` is the message whose button was pressed, for a response that changes it
        (`pressed_is_photo`: it shows a picture, which only a photo can replace).

        False, and nothing done, for an update already handled.
        """
        orders: list[tuple[int, TimerOrder]] = []
        with self.outbox.transaction() as batch:
            if update is not None and not self.store.mark_update_seen(update.update_id):
                log.info("update %s was delivered again; ignoring the repeat", update.update_id)
                return False
            if chat_id in self.unrestored:
                # Its person wrote before the restart's restore got to it: restore it now,
                # so the reply follows where the session really is.
                self.unrestored.discard(chat_id)
                try:
                    self.stage(batch, chat_id, self.conversation.restore_chat(chat_id),
                               Priority.RESTORED, orders)
                except BaseException:
                    self.unrestored.add(chat_id)  # rolled back: restore it again later
                    raise
            response = call()
            if response.pressed is not None and pressed is not None:
                self.stage(batch, chat_id, Response(replies=(response.pressed,)), priority,
                           orders, edit=pressed, edit_is_photo=pressed_is_photo,
                           same_content=True)
            self.stage(batch, chat_id, response, priority, orders, edit=edit,
                       edit_is_photo=pressed_is_photo)
            if chat is not None and user is not None and chat.type != ChatType.PRIVATE:
                self.note_owner(chat_id, user)
        self.apply_timers(orders)
        return True

    def act_on_many(self, chat_ids: Iterable[int], call: Callable[[int], Response]) -> None:
        """`call` for each chat, all in one transaction: the restore's chunks."""
        orders: list[tuple[int, TimerOrder]] = []
        with self.outbox.transaction() as batch:
            for chat_id in chat_ids:
                self.stage(batch, chat_id, call(chat_id), Priority.RESTORED, orders)
        self.apply_timers(orders)

    def stage(
        self,
        batch: Batch,
        chat_id: int,
        response: Response,
        priority: Priority,
        orders: list[tuple[int, TimerOrder]],
        edit: int | None = None,
        edit_is_photo: bool = False,
        same_content: bool = False,
    ) -> None:
        """Add `response`'s messages to the outbox batch (the first may replace `edit`, a
        photo when `edit_is_photo`; `same_content`: only its buttons change)."""
        from_timer = priority >= Priority.TIMER
        if response.timer is not None:
            orders.append((chat_id, response.timer))
        if not response.replies:
            return
        self.remember_offered(chat_id, offered_buttons(response))
        if supersedes(response):
            batch.supersede(chat_id)
        for item in response.replies:
            rows = outgoing(item)
            supersedable = from_timer or has_session_buttons(item)
            if edit is not None:
                plan = edit_plan(rows, edit, edit_is_photo, same_content)
            else:
                plan = [(row, None) for row in rows]
            edit = None
            for params, target in plan:
                batch.add(chat_id, params, target=target, priority=priority,
                          supersedable=supersedable)

    def remember_offered(self, chat_id: int, buttons: tuple[Button, ...]) -> None:
        if not buttons:
            return  # a bare notice ("1 minute left") leaves the buttons above it pressable
        self.offered.pop(chat_id, None)  # re-inserted last: the dict is oldest first
        self.offered[chat_id] = buttons
        if len(self.offered) > OFFERED_CHATS_KEPT:
            del self.offered[next(iter(self.offered))]

    def apply_timers(self, orders: Iterable[tuple[int, TimerOrder]]) -> None:
        for chat_id, order in orders:
            if isinstance(order, CancelTimer):
                self.timers.cancel(chat_id)
            elif isinstance(order, ArmTimer):
                delay = self.clock.real_seconds(max(0.0, order.due_at - self.clock.now()))
                self.timers.arm(chat_id, delay, order.token)

    def say(self, chat_id: int, text: str, priority: Priority = Priority.INTERACTIVE) -> None:
        """A plain message through the outbox, outside any session logic."""
        with self.outbox.transaction() as batch:
            batch.add(chat_id, {"text": text, "parse_mode": None, "reply_markup": None},
                      priority=priority)

    # --- who a group's session belongs to -----------------------------------------------

    def note_owner(self, chat_id: int, user: User) -> None:
        """Inside a group's transaction: whoever acted when a new run appeared started it."""
        data = self.store.load_session(chat_id)
        run_id = data.get("run_id") if data else None
        if not isinstance(run_id, str):
            return
        owner = self.store.session_owner(chat_id)
        if owner is None or owner.run_id != run_id:
            self.store.set_session_owner(chat_id, run_id, user.id, user.first_name)

    def other_owner(self, chat: Chat, user: User | None, run_id: str | None) -> SessionOwner | None:
        """The owner of `run_id` in a group, when that is someone other than `user`."""
        if chat.type == ChatType.PRIVATE or user is None or run_id is None:
            return None
        owner = self.store.session_owner(chat.id)
        if owner is None or owner.run_id != run_id or owner.user_id == user.id:
            return None
        return owner

    def running_run_id(self, chat_id: int) -> str | None:
        data = self.store.load_session(chat_id)
        run_id = data.get("run_id") if data else None
        return run_id if isinstance(run_id, str) else None

    # --- what the outbox reports back --------------------------------------------------------

    def chat_gone(self, chat_id: int) -> None:
        """Blocked, kicked or deleted: end the chat's session and timer without a word."""
        self.timers.cancel(chat_id)
        self.unrestored.discard(chat_id)
        self.store.forget_chat(chat_id)

    def refused(self, chat_id: int, params: dict[str, Any]) -> None:
        """Telegram refused a message for good (a 400): say so once, never about an apology."""
        if params.get("text") != SOMETHING_WENT_WRONG:
            self.say(chat_id, SOMETHING_WENT_WRONG)

    # --- handlers (each runs under its chat's lock: see ChatOrderedProcessor) ------------------

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
        if command == "stop" and self.not_theirs(update, message):
            return
        if command == "start":
            call = lambda: self.conversation.handle_start(chat_id, args)  # noqa: E731
        elif command == ADMIN_RELOAD and self.is_admin(message):
            call = lambda: self.conversation.reload(self.knowledge_dir)  # noqa: E731
        else:
            call = lambda: self.conversation.handle_command(chat_id, command, args)  # noqa: E731
        self.act(chat_id, call, update=update, user=message.from_user, chat=message.chat)

    async def on_text(self, update: Update, context: Context) -> None:
        message = update.message
        assert message is not None
        text = addressed_text(message, context.bot.id, context.bot.username)
        if text is None:
            return
        chat_id = message.chat.id
        offered = self.offered.get(chat_id, ())
        if message.chat.type != ChatType.PRIVATE and self.conversation.acts_on_session(
            chat_id, text, offered
        ) and self.not_theirs(update, message):
            return
        self.act(chat_id, lambda: self.conversation.handle_text(chat_id, text, offered),
                 update=update, user=message.from_user, chat=message.chat)

    def not_theirs(self, update: Update, message: Message) -> bool:
        """In a group, a session command from someone whose session it is not: tell them so,
        change nothing (True)."""
        if message.chat.type == ChatType.PRIVATE:
            return False
        owner = self.other_owner(message.chat, message.from_user,
                                 self.running_run_id(message.chat.id))
        if owner is None:
            return False
        note = NOT_YOUR_SESSION.format(name=owner.name)
        self.act(message.chat.id, lambda: reply(note), update=update)
        return True

    async def on_other(self, update: Update, context: Context) -> None:
        message = update.message
        assert message is not None
        kind = attachment_kind(message)
        if kind is None:
            return  # a service message: someone joined, a title changed, a pin
        if message.chat.type != ChatType.PRIVATE and not is_replying_to(message, context.bot.id):
            return
        chat_id = message.chat.id
        self.act(chat_id, lambda: self.conversation.unsupported(chat_id, kind), update=update)

    async def on_button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None
        message = query.message
        if message is None:  # a button on an inline-mode message: we put none there
            self.answer_later(context, query)
            return
        chat_id = message.chat.id
        action = decode_callback(query.data)
        pressed = parse_action(action) if action else None
        owner = self.other_owner(message.chat, query.from_user,
                                 pressed.run_id if pressed else None)
        if owner is not None:
            self.answer_later(context, query, NOT_YOUR_SESSION.format(name=owner.name), alert=True)
            return
        editable = action is not None and action.partition(":")[0] in EDIT_IN_PLACE
        try:
            # The press first; the spinner's answer after, and off the critical path.
            self.act(
                chat_id, lambda: self.conversation.handle_action(chat_id, action or NOT_OUR_BUTTON),
                update=update, user=query.from_user, chat=message.chat,
                edit=message.message_id if editable and isinstance(message, Message) else None,
                pressed=message.message_id if isinstance(message, Message) else None,
                pressed_is_photo=isinstance(message, Message) and bool(message.photo),
            )
        finally:
            self.answer_later(context, query)

    async def on_inline(self, update: Update, context: Context) -> None:
        query = update.inline_query
        assert query is not None
        topics = self.conversation.inline_answers(query.query) if query.query.strip() else []
        await self.answer_query(
            query.answer(
                [inline_result(topic) for topic in topics], cache_time=INLINE_CACHE_SECONDS,
                read_timeout=self.options.answer_timeout,
            )
        )

    async def on_timer(self, context: Context) -> None:
        # Never awaits: a timer is done the moment it fires, so stopping cancels none midway.
        job = context.job
        assert job is not None and job.chat_id is not None
        self.timers.fired(job)
        chat_id, token = job.chat_id, str(job.data)
        self.act(chat_id, lambda: self.conversation.handle_timer(chat_id, token),
                 priority=Priority.TIMER)

    def answer_later(
        self, context: Context, query: CallbackQuery, text: str | None = None, alert: bool = False
    ) -> None:
        """Stop the spinner on a pressed button, in a task of its own: best-effort."""
        context.application.create_task(
            self.answer_query(query.answer(
                text=text, show_alert=alert, read_timeout=self.options.answer_timeout,
            )),
            name="answer-button",
        )

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
            self.say(chat_id, SOMETHING_WENT_WRONG)
        except StoreError as store_error:
            # Once: if even the apology cannot be stored, the log is all that is left.
            log.warning("could not tell chat %s that something failed: %s", chat_id, store_error)

    @staticmethod
    async def answer_query(answering: Awaitable[Any]) -> None:
        """Answer a button or an inline query; any failure is only logged (best-effort)."""
        try:
            await answering
        except TelegramError as error:
            log.debug("a query could not be answered: %s", describe(error))


def build_application(
    settings: Settings,
    conversation: Conversation,
    clock: Clock,
    options: TelegramOptions | None = None,
) -> AnyApplication:
    """The PTB Application with our handlers, network behaviour and start-up restore."""
    options = options or TelegramOptions()
    install_redaction((settings.token, settings.webhook_secret))
    front = TelegramFrontEnd(
        conversation=conversation,
        clock=clock,
        knowledge_dir=settings.knowledge_dir,
        options=options,
        admin_ids=settings.admin_ids,
        pictures=PictureFiles(settings.data_dir / PICTURES_DIR),
    )
    timeouts = {
        "connect_timeout": options.connect_timeout,
        "read_timeout": options.read_timeout,
        "write_timeout": options.write_timeout,
        "pool_timeout": options.pool_timeout,
    }
    # No PTB rate limiter: the outbox keeps the flood limits, where it can tell a person's
    # reply from a timer notice, and spinner answers are not limited at all.
    bot = ReplyBot(
        token=settings.token,
        base_url=settings.base_url,
        base_file_url=settings.base_file_url,
        request=ResilientRequest(
            options.send_retry, connection_pool_size=options.connection_pool_size,
            retried_by_caller=OUTBOX_METHODS, **timeouts
        ),
        # The updater retries polling by itself, with its own backoff.
        get_updates_request=HTTPXRequest(connection_pool_size=1, **timeouts),
    )
    app = (
        ApplicationBuilder()
        .bot(bot)
        .concurrent_updates(ChatOrderedProcessor(options.concurrent_updates, front.locks))
        .update_queue(PendingLimitQueue(options.max_pending_updates))
        .job_queue(JobQueue())
        .post_init(front.post_init)
        .post_stop(front.post_stop)
        .build()
    )
    front.install(app)
    app.bot_data["front_end"] = front  # for tests and benchmarks that look inside
    return app


def front_end_of(app: AnyApplication) -> TelegramFrontEnd:
    front = app.bot_data["front_end"]
    assert isinstance(front, TelegramFrontEnd)
    return front


def will_not_heal(error: TelegramError, where: str, doing: str) -> StartupFailed | None:
    """The one-line failure for what retrying cannot fix; None for what it may."""
    if isinstance(error, InvalidToken):
        # PTB's message may repeat the token; ours must not. Telegram's own answer (401
        # Unauthorized or 404 Not Found) is the cause PTB wrapped, when it wrapped one.
        answer = error.__cause__ if isinstance(error.__cause__, InvalidToken) else error
        if "not found" in answer.message.lower():
            return StartupFailed(
                f"the Bot API at {where} answered 404 Not Found: check TELEGRAM_BASE_URL "
                "(it should end in /bot) and TELEGRAM_BOT_TOKEN"
            )
        return StartupFailed(
            f"Telegram rejected the bot token (401 Unauthorized) at {where}: check "
            "TELEGRAM_BOT_TOKEN, as @BotFather gives it"
        )
    if isinstance(error, NotBotApi):
        return StartupFailed(
            f"the server at {where} is not the Telegram Bot API ({error.message}): "
            "check TELEGRAM_BASE_URL"
        )
    if isinstance(error, BadRequest):
        return StartupFailed(f"Telegram refused to {doing}: {error.message}")
    return None


class StartupStopped(Exception):
    """SIGINT or SIGTERM came while start-up was waiting to try again: end quietly."""


async def with_startup_retries(
    action: Callable[[], Awaitable[Any]], backoff: Backoff, where: str, doing: str,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a start-up call, retried with backoff through network faults, 5xx and 429;
    StartupFailed (one line, no secrets) for what will not heal or when retries run out.

    Each retry is logged at INFO as it is decided, so an operator watching a slow start sees
    why. A `stop` set while waiting ends the wait at once (StartupStopped): a supervisor's
    SIGTERM must not sit behind a minute's backoff. PTB has retries of its own for start-up,
    but it logs a traceback when they run out; the operator should get one line instead.
    """
    delays = backoff.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            await action()
            return
        except TelegramError as error:  # network faults, timeouts, 429, 5xx, refusals
            fatal = will_not_heal(error, where, doing)
            if fatal is not None:
                raise fatal from None
            delay = next(delays, None)
            if delay is None:
                raise StartupFailed(
                    f"cannot reach the Telegram Bot API at {where} to {doing} after "
                    f"{attempt} attempts: {describe(error)}", heals=True,
                ) from None
            of = ", no limit" if backoff.attempts is None else f" of {backoff.attempts}"
            log.info(
                "start-up: cannot %s at %s (%s); retrying in %.3g s (attempt %d%s)",
                doing, where, describe(error), delay, attempt + 1, of,
            )
            if stop is None:
                await asyncio.sleep(delay)
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                raise StartupStopped from None


async def prepare_webhook(
    app: AnyApplication,
    settings: Settings,
    options: TelegramOptions,
    where: str,
    stop: asyncio.Event | None = None,
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
            retry, where, f"set the webhook to {settings.webhook_url}", stop,
        )
    else:
        await with_startup_retries(
            app.bot.delete_webhook, retry, where, "delete the webhook", stop
        )


async def serve(
    app: AnyApplication,
    settings: Settings,
    options: TelegramOptions,
    stop: asyncio.Event,
) -> None:
    """Start the application, run until `stop` is set, then shut down in order."""
    where = urlsplit(settings.base_url).netloc or settings.base_url
    try:
        await with_startup_retries(app.initialize, options.startup_retry, where, "start", stop)
    except StartupStopped:
        await app.bot.request.shutdown()
        return
    except BaseException:
        # Nothing started, but the HTTP client may hold a connection open.
        await app.bot.request.shutdown()
        raise
    updater = app.updater
    assert updater is not None
    # PTB repeats the webhook call when the updater starts; by then ours has just worked.
    attempts = options.startup_retry.attempts
    bootstrap_retries = -1 if attempts is None else attempts - 1
    initialised = False
    try:
        try:
            await prepare_webhook(app, settings, options, where, stop)
        except StartupStopped:
            return  # the finally below shuts down what initialize started
        if app.post_init is not None:
            await app.post_init(app)
        initialised = True
        try:
            if settings.uses_webhook:
                await updater.start_webhook(
                    listen=settings.webhook_listen,
                    port=settings.webhook_port,
                    url_path=settings.webhook_path,
                    webhook_url=settings.webhook_url,
                    secret_token=settings.webhook_secret,
                    allowed_updates=ALLOWED_UPDATES,
                    bootstrap_retries=bootstrap_retries,
                )
            else:
                await updater.start_polling(
                    timeout=options.poll_timeout,
                    allowed_updates=ALLOWED_UPDATES,
                    bootstrap_retries=bootstrap_retries,
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
            raise StartupFailed(f"cannot {mode} at {where}: {error}", heals=True) from None
        await app.start()
        log.info("bot @%s is running (%s)", app.bot.username,
                 "webhook" if settings.uses_webhook else "long polling")
        await stop.wait()
    finally:
        if updater.running:
            await updater.stop()
        if app.running:
            await app.stop()
        if initialised and app.post_stop is not None:
            await app.post_stop(app)
        await app.shutdown()


def _polling_error(error: TelegramError) -> None:
    # PTB keeps polling with backoff; one line is enough, a traceback per blip is not.
    log.warning("polling for updates failed: %s", describe(error))


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


def _fail(message: str, redact: Redactor, err: TextIO, code: int = EXIT_CONFIG) -> int:
    print(f"massage-bot: {redact(message)}", file=err)
    return code


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
        return _fail(str(error), redact, err, EXIT_FAILURE if error.heals else EXIT_CONFIG)
    except KeyboardInterrupt:
        pass
    finally:
        conversation.store.close()
    return 0

