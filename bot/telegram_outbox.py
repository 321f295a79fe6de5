"""The outbox: every message the bot decides to show is stored first, then delivered.

A handler or a timer asks the core what to say and, in the same SQLite transaction that saves
the core's new state, adds the messages to the `outbox` table (`Outbox.transaction`). Only
after the commit does the sender see them. So whatever the core moved on to is shown sooner
or later, through an outage, a 5xx or a crash, and nothing is shown that was not saved.

The sender delivers each chat's messages one at a time, in order, and chats side by side:

- Flood limits (bot/telegram_flood.py) decide when a chat may have its next message; when
  the overall limit makes messages wait, the chat whose queue holds the most urgent message
  goes first: messages left over from before a restart, then replies to what a person just
  did, then timer notices, then a restart's catch-up on timers that ended while it was down.
- Failures are sorted by bot/telegram_net.py's `outcome_of`. What cannot have been delivered
  (connection refused, 5xx) is repeated with capped exponential backoff until Telegram takes
  it; a 429 waits as long as Telegram asks; an edit whose message is gone becomes a new
  message; a 400 is dropped and logged; a 403 (blocked, kicked) drops the chat's messages and
  tells the front end, which ends the chat's session.
- Delivery unknown (the request went out, the answer never came: a read timeout, a
  connection reset). An edit is repeated: an identical edit is "not modified", which counts
  as done. A send is counted as delivered and not repeated: the Bot API has no idempotency
  key, so repeating it could show the same message twice in a row, and Telegram most likely
  did deliver it (the request reached it). For the same reason it is never followed by an
  apology. The next screen of a session (its next timer, or Repeat) shows the state anyway.
  A send that was on its way when the process died (`attempted` in the table) is treated the
  same way after the restart.
- Supersession. Rows that show a session's screen (they carry its buttons, or come from a
  timer) are `supersedable`: when a newer screen for the chat is added while they still
  wait, they are dropped, so after an outage the person sees where the session is now, not
  every step it went through meanwhile. Answers to questions are never dropped.
- After a restart the rows left in the table go first (`Priority.HELD_OVER`).
- Memory. Beyond the first `KEPT_IN_MEMORY` waiting messages, a message's parameters are
  only in its row, read back when its turn comes: a backlog costs the table, not memory.
- Photos (bot/telegram_pictures.py) are rows like any other: sent, edited, repeated and
  superseded by the same rules; a row of kind "markup" only changes a message's buttons.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

from telegram.error import RetryAfter, TelegramError

from bot.store import OutboxRow, Store, StoreError
from bot.telegram_flood import FloodLimiter
from bot.telegram_net import Backoff, Outcome, describe, outcome_of

log = logging.getLogger(__name__)


# Delivered rows are deleted with the sender's next commit, or once nothing is in flight;
# at most this many wait for either.
FINISHED_PER_COMMIT = 64
# Messages whose parameters stay in memory while they wait; beyond these, a waiting message
# is only in the table and read back when its turn comes, so a backlog of thousands (the
# flood limit, an outage) costs the table's pages, not the process's memory (bench:
# 3,000 replies queued at once held ~10 MiB of rendered messages).
KEPT_IN_MEMORY = 64
# The Bot API methods the outbox calls (and repeats itself).
OUTBOX_METHODS = frozenset({"sendMessage", "editMessageText", "sendPhoto", "editMessageMedia",
                            "editMessageReplyMarkup"})
# Outcomes after which the same row goes again.
RETRIED = frozenset({Outcome.NEVER_SENT, Outcome.RETRY_AFTER, Outcome.EDIT_TARGET_GONE})


class Priority(IntEnum):
    """Who goes first when the flood limits make messages wait: lower first."""

    HELD_OVER = 0  # left in the outbox by the previous run: waiting the longest
    INTERACTIVE = 1  # the reply to what a person just did: they are looking at the phone
    TIMER = 2  # a timer's notice: nobody pressed anything for it, but it is news now
    # A restart's catch-up ("the time was up while I was offline"): about the past, so a
    # timer ending now goes first (bench/bench_telegram_restart.py).
    RESTORED = 3


class Transport(Protocol):
    """What the sender needs of the bot (ReplyBot has it)."""

    async def send_text(
        self, chat_id: int, text: str, *, parse_mode: str | None = ...,
        reply_markup: dict[str, Any] | None = ...,
    ) -> None: ...

    async def edit_text(
        self, chat_id: int, message_id: int, text: str, *, parse_mode: str | None = ...,
        reply_markup: dict[str, Any] | None = ...,
    ) -> None: ...

    async def send_photo(
        self, chat_id: int, picture: str, caption: str = ..., parse_mode: str | None = ...,
        reply_markup: dict[str, Any] | None = ...,
    ) -> None: ...

    async def edit_photo(
        self, chat_id: int, message_id: int, picture: str, caption: str = ...,
        parse_mode: str | None = ..., reply_markup: dict[str, Any] | None = ...,
    ) -> None: ...

    async def edit_markup(
        self, chat_id: int, message_id: int, reply_markup: dict[str, Any] | None = ...
    ) -> None: ...


@dataclass(frozen=True)
class OutboxOptions:
    # Requests at once: 4 carry 30 a second at up to ~130 ms a call (Telegram answers in
    # 50-150 ms); more only cost CPU in httpx's connection pool (bench/bench_telegram.py).
    max_in_flight: int = 4
    retry: Backoff = field(
        default_factory=lambda: Backoff(attempts=None, first_delay=0.5, max_delay=30.0)
    )
    keep_seconds: float = 12 * 3600.0  # undelivered for this long: dropped (as Store.prune)
    stop_drain_seconds: float = 2.0  # at shutdown, how long to keep delivering what waits
    # Then how long the requests already on their way get to finish: one that finishes has
    # a known outcome; one cut off counts as maybe delivered.
    stop_grace_seconds: float = 5.0


@dataclass(slots=True)  # thousands may wait at once (see KEPT_IN_MEMORY)
class Pending:
    """One outbox row as the sender tracks it."""

    row_id: int
    chat_id: int
    target: int | None  # the message to edit, or None to send a new one
    # text, parse_mode, reply_markup; a photo's are kind "photo", picture, caption, parse_mode,
    # reply_markup (bot/telegram_pictures.py); kind "markup" has only reply_markup. None:
    # only in the table (see KEPT_IN_MEMORY).
    params: dict[str, Any] | None
    priority: Priority
    supersedable: bool
    attempted: bool
    created_at: float
    failures: int = 0
    superseded: bool = False

    @classmethod
    def of(cls, row: OutboxRow, priority: Priority | None = None) -> Pending:
        return cls(
            row_id=row.row_id, chat_id=row.chat_id, target=row.target,
            params=None,  # read back when its turn comes
            priority=Priority(row.priority if priority is None else priority),
            supersedable=row.supersedable, attempted=row.attempted, created_at=row.created_at,
        )


@dataclass
class Batch:
    """The messages added in one `Outbox.transaction()`, handed to the sender on commit."""

    store: Store
    added: list[Pending] = field(default_factory=list)
    superseding: set[int] = field(default_factory=set)  # chats whose waiting screens go

    def supersede(self, chat_id: int) -> None:
        """Drop the chat's waiting screens (not those added in this same transaction)."""
        mine = [p.row_id for p in self.added if p.chat_id == chat_id]
        self.store.supersede_outgoing(chat_id, before=min(mine, default=None))
        self.superseding.add(chat_id)

    def add(
        self,
        chat_id: int,
        params: dict[str, Any],
        *,
        target: int | None = None,
        priority: Priority = Priority.INTERACTIVE,
        supersedable: bool = False,
    ) -> None:
        body = json.dumps(params, ensure_ascii=False, separators=(",", ":"))
        row = self.store.add_outgoing(
            chat_id, body, target=target, priority=priority, supersedable=supersedable
        )
        self.added.append(Pending(
            row_id=row.row_id, chat_id=chat_id, target=target, params=params, priority=priority,
            supersedable=supersedable, attempted=False, created_at=row.created_at,
        ))


class Outbox:
    """The outbox table and the sender that empties it."""

    def __init__(
        self,
        store: Store,
        transport: Transport,
        limiter: FloodLimiter,
        on_chat_gone: Callable[[int], None],
        on_refused: Callable[[int, dict[str, Any]], None],
        options: OutboxOptions | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.transport = transport
        self.limiter = limiter
        self.on_chat_gone = on_chat_gone
        self.on_refused = on_refused
        self.options = options or OutboxOptions()
        self.wall = wall  # the clock of `created_at` (the store's)
        self._queues: dict[int, deque[Pending]] = {}
        self._by_id: dict[int, Pending] = {}
        self._ready: list[tuple[int, int, int]] = []  # (priority, row id, chat): may go now
        self._waiting: list[tuple[float, int]] = []  # (monotonic time, chat): may go then
        self._not_before: dict[int, float] = {}  # chat: backing off after a failure
        self._in_flight: set[int] = set()
        self._finished: list[int] = []  # done; deleted from the table with the next commit
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    # --- the front end's side ------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Batch]:
        """A store transaction whose outbox rows the sender takes once it has committed."""
        batch = Batch(self.store)
        with self.store.transaction():
            yield batch
        self._accept(batch)

    def load(self) -> int:
        """Take in what the previous run left undelivered; it goes before anything new."""
        unknown: list[int] = []
        for row in self.store.outgoing():
            if row.attempted and row.target is None:
                # On its way when the process stopped: maybe delivered. See the docstring.
                unknown.append(row.row_id)
                continue
            self._enqueue(Pending.of(row, Priority.HELD_OVER))
        if unknown:
            log.info("%d message(s) were being sent when the bot stopped; not sending them "
                     "again, they may have arrived", len(unknown))
            self.store.delete_outgoing(unknown)
        for chat_id in list(self._queues):
            self._schedule(chat_id)
        self._wake.set()
        return len(self._by_id)

    def drop_chat(self, chat_id: int) -> None:
        """Forget the chat's waiting messages (the front end drops the table rows)."""
        for pending in self._queues.pop(chat_id, deque()):
            self._by_id.pop(pending.row_id, None)
            pending.superseded = True
        self._not_before.pop(chat_id, None)

    def expire(self) -> int:
        """Drop waiting messages older than the keep time (Store.prune drops their rows)."""
        cutoff = self.wall() - self.options.keep_seconds
        old = [p for p in self._by_id.values()
               if p.created_at < cutoff and p.chat_id not in self._in_flight]
        for pending in old:
            self._remove(pending)
        self.limiter.forget_idle()
        return len(old)

    @property
    def waiting(self) -> int:
        """Messages not delivered yet."""
        return len(self._by_id)

    def waiting_in(self, chat_id: int) -> int:
        return len(self._queues.get(chat_id, ()))

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        """Deliver what waits for a short while, then stop; the rest stays in the table."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.stop_drain_seconds
        while (self._by_id or self._tasks) and loop.time() < deadline:
            self._wake.set()
            await asyncio.sleep(0.01)
        runner.cancel()  # nothing new goes out
        await asyncio.gather(runner, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.options.stop_grace_seconds)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # Cancelled on purpose: gathered quietly, no "Task exception was never retrieved".
        await asyncio.gather(*tasks, return_exceptions=True)
        self._commit_progress(tidy=True)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            self._promote_due()
            timeout: float | None = self._next_due()
            going: list[Pending] = []
            while self._ready and len(self._in_flight) < self.options.max_in_flight:
                wait = self.limiter.overall_wait()
                if wait > 0:
                    timeout = wait if timeout is None else min(timeout, wait)
                    break
                chat_id = self._pop_ready()
                if chat_id is not None:
                    going.append(self._take(chat_id))
            # One commit before anything goes out: these sends are on their way, and what
            # was delivered since the last commit is done.
            self._commit_progress(going)
            for pending in going:
                task = asyncio.get_running_loop().create_task(self._deliver(pending))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if going:
                continue
            # Nothing goes out now. With requests still in flight their finishing wakes this
            # loop again, and what is done rides the next commit; once none is, tidy up.
            self._commit_progress(tidy=not self._in_flight)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _commit_progress(self, going: Sequence[Pending] = (), tidy: bool = False) -> None:
        """Commit that `going` is on its way, and delete what is done in the same commit; a
        commit only for deleting is made when tidying or enough piled up (a commit costs
        more than the few deletes riding it)."""
        sending = [p.row_id for p in going if p.target is None and not p.attempted]
        tidy = tidy or len(self._finished) >= FINISHED_PER_COMMIT
        if not (sending or (tidy and self._finished)):
            return
        finished, self._finished = self._finished, []
        try:
            self.store.record_outgoing(attempted=sending, delivered=finished)
        except StoreError as error:
            log.error("outbox: %s", error)
            self._finished = finished + self._finished
            return
        for pending in going:
            if pending.target is None:
                pending.attempted = True

    # --- scheduling ------------------------------------------------------------------------

    def _accept(self, batch: Batch) -> None:
        chats: set[int] = set(batch.superseding)
        for chat_id in batch.superseding:
            # Before this batch's rows join the queue, every screen in it is older. One on
            # its way is only marked: it is dropped if it fails, and kept if it arrived.
            for pending in list(self._queues.get(chat_id, ())):
                if pending.supersedable:
                    self._remove(pending)
        for pending in batch.added:
            self._enqueue(pending)
            chats.add(pending.chat_id)
        for chat_id in chats:
            self._schedule(chat_id)
        if chats:
            self._wake.set()

    def _enqueue(self, pending: Pending) -> None:
        if len(self._by_id) >= KEPT_IN_MEMORY:
            pending.params = None  # its row has them
        self._by_id[pending.row_id] = pending
        self._queues.setdefault(pending.chat_id, deque()).append(pending)

    def _remove(self, pending: Pending) -> None:
        """Take a row out of its chat's queue; one on its way is only marked."""
        self._by_id.pop(pending.row_id, None)
        pending.superseded = True
        queue = self._queues.get(pending.chat_id)
        in_flight = pending.chat_id in self._in_flight and queue and queue[0] is pending
        if queue is not None and not in_flight:
            with contextlib.suppress(ValueError):
                queue.remove(pending)
            if not queue:
                del self._queues[pending.chat_id]

    def _schedule(self, chat_id: int) -> None:
        """Put the chat where the dispatcher will find it: ready now, or waiting until then."""
        queue = self._queues.get(chat_id)
        if not queue or chat_id in self._in_flight:
            return
        wait = max(self.limiter.chat_wait(chat_id),
                   self._not_before.get(chat_id, 0.0) - self.limiter.now())
        if wait > 0:
            heapq.heappush(self._waiting, (self.limiter.now() + wait, chat_id))
            return
        # The chat's most urgent message decides its place: a reply waiting behind the
        # chat's own timer notice makes both go early.
        priority = min(p.priority for p in queue)
        heapq.heappush(self._ready, (priority, queue[0].row_id, chat_id))

    def _promote_due(self) -> None:
        now = self.limiter.now()
        while self._waiting and self._waiting[0][0] <= now:
            _, chat_id = heapq.heappop(self._waiting)
            self._schedule(chat_id)

    def _next_due(self) -> float | None:
        if not self._waiting:
            return None
        return max(0.0, self._waiting[0][0] - self.limiter.now())

    def _pop_ready(self) -> int | None:
        while self._ready:
            _, row_id, chat_id = heapq.heappop(self._ready)
            queue = self._queues.get(chat_id)
            if not queue or queue[0].row_id != row_id or chat_id in self._in_flight:
                continue  # stale: the chat was scheduled again since
            if self.limiter.chat_wait(chat_id) > 0:
                self._schedule(chat_id)  # a 429 arrived meanwhile
                continue
            return chat_id
        return None

    def _take(self, chat_id: int) -> Pending:
        pending = self._queues[chat_id][0]
        self.limiter.take(chat_id)
        self._in_flight.add(chat_id)
        return pending

    # --- delivering ------------------------------------------------------------------------

    async def _deliver(self, pending: Pending) -> None:
        error: BaseException | None = None
        params = pending.params
        try:
            if params is None:
                params = self._read_back(pending)
            if params is None:
                pass  # its row is gone (pruned, or the chat forgotten): nothing to deliver
            elif pending.target is None:
                if not pending.attempted:  # the commit before it went out failed
                    pending.attempted = True
                    self.store.mark_attempted(pending.row_id)
                await self._send(pending, params)
            else:
                await self._edit(pending, pending.target, params)
        except (TelegramError, StoreError) as failure:
            error = failure
        except Exception as failure:  # a bug: log it, and never retry it in a loop
            log.exception("delivering message %s to chat %s failed", pending.row_id,
                          pending.chat_id)
            error = failure
        finally:
            self._in_flight.discard(pending.chat_id)
        try:
            self._settle(pending, error, params or {})
        except StoreError as store_error:
            log.error("outbox: %s", store_error)
            self._retry_later(pending, store_error)
        except Exception:
            log.exception("outbox: settling message %s failed", pending.row_id)
            self._retry_later(pending, error or RuntimeError("settling failed"))
        self._schedule(pending.chat_id)
        self._wake.set()

    def _read_back(self, pending: Pending) -> dict[str, Any] | None:
        body = self.store.outgoing_body(pending.row_id)
        return None if body is None else json.loads(body)

    async def _send(self, pending: Pending, params: dict[str, Any]) -> None:
        params = dict(params)
        kind = params.pop("kind", "text")
        if kind == "photo":
            await self.transport.send_photo(pending.chat_id, **params)
        elif kind != "markup":  # a message whose buttons were to go is gone: nothing to do
            await self.transport.send_text(pending.chat_id, **params)

    async def _edit(self, pending: Pending, target: int, params: dict[str, Any]) -> None:
        params = dict(params)
        kind = params.pop("kind", "text")
        if kind == "photo":
            await self.transport.edit_photo(pending.chat_id, target, **params)
        elif kind == "markup":
            await self.transport.edit_markup(pending.chat_id, target, **params)
        else:
            await self.transport.edit_text(pending.chat_id, target, **params)

    def _settle(
        self, pending: Pending, error: BaseException | None, params: dict[str, Any]
    ) -> None:
        chat_id = pending.chat_id
        if error is None:
            self._done(pending)
            return
        if isinstance(error, StoreError):
            log.error("outbox: %s", error)
            self._retry_later(pending, error)
            return
        outcome = outcome_of(error) if isinstance(error, TelegramError) else Outcome.REFUSED
        if outcome is Outcome.UNKNOWN and pending.target is not None:
            outcome = Outcome.NEVER_SENT  # an edit is safe to repeat
        if outcome in (Outcome.NEVER_SENT, Outcome.RETRY_AFTER) and pending.attempted:
            # Known not to have arrived: a newer screen may supersede it again.
            pending.attempted = False
            self.store.mark_attempted(pending.row_id, attempted=False)
        if pending.superseded and outcome in RETRIED:
            self._done(pending)  # a newer screen is waiting; this one is no use any more
            return
        if outcome is Outcome.HARMLESS:
            self._done(pending)
        elif outcome is Outcome.UNKNOWN:
            log.warning(
                "no answer from Telegram to a message for chat %s (%s); counted as delivered, "
                "not sent again", chat_id, describe(error),
            )
            self._done(pending)
        elif outcome is Outcome.EDIT_TARGET_GONE and pending.target is not None:
            log.info("message %s in chat %s cannot be edited (%s); sending a new one",
                     pending.target, chat_id, describe(error))
            pending.target = None
            self.store.retarget_outgoing(pending.row_id, None)
        elif outcome is Outcome.RETRY_AFTER and isinstance(error, RetryAfter):
            seconds = error._retry_after.total_seconds()  # PTB's own field, no deprecation
            log.info("Telegram asks to wait %.0f s before the next message to chat %s",
                     seconds, chat_id)
            self.limiter.hold(chat_id, seconds)
        elif outcome is Outcome.NEVER_SENT:
            self._retry_later(pending, error)
        elif outcome is Outcome.CHAT_GONE:
            log.info("chat %s is gone (%s): dropping its messages and its session",
                     chat_id, describe(error))
            self.drop_chat(chat_id)
            self.on_chat_gone(chat_id)
        else:
            log.warning("Telegram refused a message for chat %s: %s", chat_id, describe(error))
            self._done(pending)
            self.on_refused(chat_id, params)

    def _retry_later(self, pending: Pending, error: BaseException) -> None:
        if pending.created_at < self.wall() - self.options.keep_seconds:
            log.warning("giving up on a message for chat %s after %d attempts: %s",
                        pending.chat_id, pending.failures + 1, describe(error))
            self._done(pending)
            return
        pending.failures += 1
        delay = self.options.retry.delay(pending.failures)
        log.info("a message for chat %s was not delivered (%s); trying again in %.1f s",
                 pending.chat_id, describe(error), delay)
        self._not_before[pending.chat_id] = self.limiter.now() + delay

    def _done(self, pending: Pending) -> None:
        """Delivered, dropped or given up: out of the queue, and out of the table with the
        next commit. (Until then a crash leaves it there: a send is marked attempted, so it
        is not sent again; an edit is, and changes nothing.)"""
        queue = self._queues.get(pending.chat_id)
        if queue and queue[0] is pending:
            queue.popleft()
            if not queue:
                del self._queues[pending.chat_id]
        self._by_id.pop(pending.row_id, None)
        self._not_before.pop(pending.chat_id, None)
        self._finished.append(pending.row_id)
