"""The outbox's rules, one at a time, against a scripted transport and a clock that moves only
when told (the end-to-end tests over the stand-in show what a person sees)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.store import Store
from bot.telegram_flood import JITTER_SECONDS, FloodLimiter, FloodLimits, TokenBucket
from bot.telegram_net import Backoff, ServerError
from bot.telegram_outbox import KEPT_IN_MEMORY, Outbox, OutboxOptions, Priority

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@dataclass
class Ticks:
    """A monotonic clock that moves only when the test says."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sent:
    chat_id: int
    text: str
    edited: int | None = None


@dataclass
class ScriptedBot:
    """Records every call; `failures[text]` lists what the next calls with that text raise."""

    failures: dict[str, list[BaseException]] = field(default_factory=dict)
    calls: list[Sent] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def _call(self, sent: Sent) -> None:
        self.calls.append(sent)
        async with self.changed:
            self.changed.notify_all()
        queued = self.failures.get(sent.text)
        if queued:
            raise queued.pop(0)

    async def send_text(self, chat_id: int, text: str, **_: Any) -> None:
        await self._call(Sent(chat_id, text))

    async def edit_text(self, chat_id: int, message_id: int, text: str, **_: Any) -> None:
        await self._call(Sent(chat_id, text, edited=message_id))

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), 10)

    @property
    def texts(self) -> list[str]:
        return [sent.text for sent in self.calls]


@dataclass
class Rig:
    store: Store
    bot: ScriptedBot
    ticks: Ticks
    outbox: Outbox
    gone: list[int]
    refused: list[int]

    def add(self, chat_id: int, *texts: str, priority: Priority = Priority.INTERACTIVE,
            target: int | None = None, screen: bool = False, supersede: bool = False) -> None:
        with self.outbox.transaction() as batch:
            if supersede:
                batch.supersede(chat_id)
            for text in texts:
                batch.add(chat_id, {"text": text}, target=target, priority=priority,
                          supersedable=screen)

    async def advance(self, seconds: float) -> None:
        self.ticks.now += seconds
        self.outbox.wake()
        for _ in range(20):  # let the sender take its turn
            await asyncio.sleep(0)

    async def settle(self) -> None:
        await self.advance(0)


def make_rig(path: Path, limits: FloodLimits, bot: ScriptedBot | None = None) -> Rig:
    store = Store.open(path)
    bot = bot or ScriptedBot()
    ticks = Ticks()
    gone: list[int] = []
    refused: list[int] = []
    outbox = Outbox(
        store, bot, FloodLimiter(limits, now=ticks),
        on_chat_gone=gone.append, on_refused=lambda chat_id, params: refused.append(chat_id),
        options=OutboxOptions(retry=Backoff(attempts=None, first_delay=1.0, max_delay=8.0)),
    )
    return Rig(store, bot, ticks, outbox, gone, refused)


ONE_A_SECOND = FloodLimits(overall_per_second=1, chat_per_second=0, chat_burst=0,
                           group_per_minute=0)
SECOND = 1.0 + JITTER_SECONDS  # what one message a second takes, network jitter allowed for


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    made = make_rig(tmp_path / "db.sqlite3", FloodLimits.unlimited())
    yield made
    await made.outbox.stop()
    made.store.close()


@pytest.fixture
async def slow(tmp_path: Path) -> AsyncIterator[Rig]:
    """One message a second overall, and the clock stands still until advanced."""
    made = make_rig(tmp_path / "db.sqlite3", ONE_A_SECOND)
    yield made
    await made.outbox.stop()
    made.store.close()


async def test_each_chat_gets_its_messages_in_order_and_the_table_empties(rig: Rig) -> None:
    rig.outbox.start()
    rig.add(1, "a1", "a2", "a3")
    rig.add(2, "b1")
    rig.add(1, "a4")
    await rig.bot.until(lambda: len(rig.bot.calls) == 5)
    await rig.settle()
    assert [s.text for s in rig.bot.calls if s.chat_id == 1] == ["a1", "a2", "a3", "a4"]
    assert rig.store.outgoing() == [] and rig.outbox.waiting == 0


async def test_a_reply_goes_ahead_of_timer_notices_waiting_for_the_flood_limit(slow: Rig) -> None:
    slow.outbox.start()
    for chat_id in (1, 2, 3):
        slow.add(chat_id, f"timer {chat_id}", priority=Priority.TIMER)
    await slow.bot.until(lambda: len(slow.bot.calls) == 1)  # the one token there was
    slow.add(9, "reply", priority=Priority.INTERACTIVE)
    for _ in range(3):
        await slow.advance(SECOND)
    assert slow.bot.texts == ["timer 1", "reply", "timer 2", "timer 3"]


async def test_a_chat_whose_reply_waits_behind_its_own_notice_goes_early(slow: Rig) -> None:
    slow.add(1, "timer 1", priority=Priority.TIMER)
    slow.add(2, "timer 2", priority=Priority.TIMER)
    slow.add(2, "reply 2", priority=Priority.INTERACTIVE)  # chat 2's order still holds
    slow.outbox.start()
    for _ in range(3):
        await slow.advance(SECOND)
    assert slow.bot.texts == ["timer 2", "reply 2", "timer 1"]


async def test_a_newer_screen_replaces_waiting_screens_but_never_answers(slow: Rig) -> None:
    slow.add(5, "block the token", priority=Priority.TIMER)
    slow.outbox.start()
    await slow.bot.until(lambda: len(slow.bot.calls) == 1)
    slow.add(1, "the answer you asked for")
    slow.add(1, "step 6", screen=True, priority=Priority.TIMER)
    slow.add(1, "step 7", screen=True, priority=Priority.TIMER, supersede=True)
    slow.add(1, "time's up", "step 8", screen=True, priority=Priority.TIMER, supersede=True)
    for _ in range(4):
        await slow.advance(SECOND)
    assert slow.bot.texts == ["block the token", "the answer you asked for", "time's up", "step 8"]
    assert slow.store.outgoing() == []


async def test_a_send_with_unknown_delivery_is_counted_delivered_and_not_repeated(
    rig: Rig,
) -> None:
    rig.bot.failures["step 4"] = [TimedOut("read timed out")]
    rig.add(1, "step 4", "step 5")
    rig.outbox.start()
    await rig.bot.until(lambda: len(rig.bot.calls) == 2)
    await rig.settle()
    assert rig.bot.texts == ["step 4", "step 5"]
    assert rig.refused == [] and rig.store.outgoing() == []


async def test_an_edit_with_unknown_delivery_is_repeated(rig: Rig) -> None:
    rig.bot.failures["step 4"] = [NetworkError("httpx.RemoteProtocolError: disconnected")]
    rig.add(1, "step 4", target=77)
    rig.outbox.start()
    await rig.bot.until(lambda: len(rig.bot.calls) == 1)
    await rig.advance(1.0)  # the backoff
    await rig.bot.until(lambda: len(rig.bot.calls) == 2)
    assert [(s.text, s.edited) for s in rig.bot.calls] == [("step 4", 77), ("step 4", 77)]


async def test_what_was_never_sent_is_repeated_with_growing_waits(rig: Rig) -> None:
    rig.bot.failures["hello"] = [ServerError(502, "Bad Gateway"), ServerError(500, "oops")]
    rig.add(1, "hello")
    rig.outbox.start()
    await rig.bot.until(lambda: len(rig.bot.calls) == 1)
    await rig.advance(0.9)
    assert len(rig.bot.calls) == 1  # the first wait is a second
    await rig.advance(0.1)
    await rig.bot.until(lambda: len(rig.bot.calls) == 2)
    await rig.advance(1.9)
    assert len(rig.bot.calls) == 2  # then two
    await rig.advance(0.1)
    await rig.bot.until(lambda: len(rig.bot.calls) == 3)
    await rig.settle()
    assert rig.store.outgoing() == []


async def test_telegram_s_retry_after_is_waited_out(rig: Rig) -> None:
    rig.bot.failures["hello"] = [RetryAfter(5)]
    rig.add(1, "hello")
    rig.add(2, "other chat")
    rig.outbox.start()
    await rig.bot.until(lambda: len(rig.bot.calls) == 2)
    await rig.advance(4.9)
    assert rig.bot.texts == ["hello", "other chat"]
    await rig.advance(0.1)
    await rig.bot.until(lambda: len(rig.bot.calls) == 3)
    assert rig.bot.texts[-1] == "hello"


async def test_an_edit_whose_message_is_gone_becomes_a_new_message(rig: Rig) -> None:
    rig.bot.failures["step 2"] = [BadRequest("Message to edit not found")]
    rig.add(1, "step 2", target=40)
    rig.outbox.start()
    await rig.bot.until(lambda: len(rig.bot.calls) == 2)
    assert [(s.text, s.edited) for s in rig.bot.calls] == [("step 2", 40), ("step 2", None)]


async def test_a_blocked_chat_loses_its_queue_and_is_reported_once(rig: Rig) -> None:
    rig.bot.failures["a1"] = [Forbidden("Forbidden: bot was blocked by the user")]
    rig.add(1, "a1", "a2", "a3")
    rig.add(2, "b1")
    rig.outbox.start()
    await rig.bot.until(lambda: "b1" in rig.bot.texts)
    await rig.settle()
    assert rig.gone == [1]
    assert "a2" not in rig.bot.texts and rig.outbox.waiting_in(1) == 0


async def test_a_message_telegram_refuses_is_dropped_and_reported(rig: Rig) -> None:
    rig.bot.failures["<b>broken"] = [BadRequest("Can't parse entities: unclosed tag")]
    rig.add(1, "<b>broken", "next one")
    rig.outbox.start()
    await rig.bot.until(lambda: len(rig.bot.calls) == 2)
    await rig.settle()
    assert rig.refused == [1] and rig.bot.texts == ["<b>broken", "next one"]


async def test_after_a_restart_what_was_left_goes_first_and_unknown_sends_stay_unsent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    with Store.open(path) as before:
        on_its_way = before.add_outgoing(1, '{"text":"was on its way"}')
        before.mark_attempted(on_its_way.row_id)
        before.add_outgoing(1, '{"text":"edit on its way"}', target=5)  # edits repeat safely
        before.add_outgoing(2, '{"text":"left waiting"}', priority=Priority.TIMER)
    rig = make_rig(path, ONE_A_SECOND)
    try:
        assert rig.outbox.load() == 2
        rig.add(3, "new reply")
        rig.outbox.start()
        for _ in range(3):
            await rig.advance(SECOND)
        assert rig.bot.texts == ["edit on its way", "left waiting", "new reply"]
    finally:
        await rig.outbox.stop()
        rig.store.close()



async def test_a_backlog_waits_in_the_table_and_goes_out_in_order_and_whole(rig: Rig) -> None:
    backlog = 3 * KEPT_IN_MEMORY
    texts = {chat_id: [f"chat {chat_id} message {n}: ünïcode" for n in range(backlog)]
             for chat_id in (1, 2)}
    for n in range(backlog):
        for chat_id in (1, 2):
            rig.add(chat_id, texts[chat_id][n])
    rig.bot.failures[texts[2][-1]] = [BadRequest("Can't parse entities: unclosed tag")]
    # Memory holds only the first few messages' parameters; the table holds them all.
    held = sum(pending.params is not None for pending in rig.outbox._by_id.values())
    assert rig.outbox.waiting == 2 * backlog and held <= KEPT_IN_MEMORY
    rig.outbox.start()
    await rig.bot.until(lambda: len(rig.bot.calls) == 2 * backlog)
    await rig.settle()
    for chat_id in (1, 2):
        assert [s.text for s in rig.bot.calls if s.chat_id == chat_id] == texts[chat_id]
    assert rig.refused == [2]  # told about, from what was read back
    assert rig.store.outgoing() == []


async def test_a_waiting_message_whose_row_is_gone_is_not_sent(rig: Rig) -> None:
    rig.add(1, *(f"m{n}" for n in range(KEPT_IN_MEMORY + 2)))
    last = max(rig.outbox._by_id)
    rig.store.delete_outgoing([last])  # e.g. the store's retention dropped it
    rig.outbox.start()
    await rig.bot.until(lambda: len(rig.bot.calls) == KEPT_IN_MEMORY + 1)
    await rig.settle()
    assert rig.bot.texts == [f"m{n}" for n in range(KEPT_IN_MEMORY + 1)]
    assert rig.outbox.waiting == 0

def test_a_token_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket.full(rate=1.0, capacity=3, now=0.0)
    for _ in range(3):
        assert bucket.wait(0.0) == 0.0
        bucket.take(0.0)
    assert bucket.wait(0.0) == pytest.approx(1.0)
    assert bucket.wait(0.5) == pytest.approx(0.5)
    bucket.take(1.0)
    assert bucket.wait(1.0) == pytest.approx(1.0)


def test_the_overall_limit_never_lets_more_than_its_count_through_in_any_second() -> None:
    ticks = Ticks(now=0.0)
    limiter = FloodLimiter(FloodLimits(overall_per_second=30, chat_per_second=0, chat_burst=0,
                                       group_per_minute=0), now=ticks)
    sent: list[float] = []
    while ticks.now < 3.0:  # as fast as it lets us, for three seconds
        wait = limiter.overall_wait()
        if wait > 0:
            ticks.now += wait
            continue
        limiter.take(len(sent))
        sent.append(ticks.now)
    assert max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent) == 30
    assert len(sent) == 90  # 30 in each 1.1 s: room for the network's jitter


def test_the_flood_limiter_applies_chat_and_group_limits() -> None:
    ticks = Ticks(now=0.0)
    limiter = FloodLimiter(FloodLimits(overall_per_second=30, chat_per_second=1, chat_burst=1,
                                       group_per_minute=20), now=ticks)
    limiter.take(7)
    assert limiter.chat_wait(7) == pytest.approx(1.0)
    assert limiter.chat_wait(8) == 0.0  # another chat is not held back
    groups = FloodLimiter(FloodLimits(overall_per_second=0, chat_per_second=0, chat_burst=0,
                                      group_per_minute=20), now=ticks)
    for _ in range(20):  # 20 a minute in a group, however they come
        assert groups.chat_wait(-100) == 0.0
        groups.take(-100)
        ticks.now += 1.0
    # The 21st: when the first is 60 s old (and a tenth more, for the network's jitter).
    assert groups.chat_wait(-100) == pytest.approx(40.1)
    assert groups.chat_wait(100) == 0.0  # a private chat is no group
    limiter.hold(8, 30.0)
    assert limiter.chat_wait(8) == pytest.approx(30.0)
    ticks.now += 100
    assert limiter.forget_idle() >= 2
