"""Issue 10's failures, one by one: the Bot API fault injected at the stand-in, and what the
person sees afterwards asserted. Each test names the numbered failure it guards against."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from standin import (
    BotFixture,
    Output,
    StandIn,
    User,
    bot_settings,
    fast_options,
    start_bot,
)

from bot.clock import ScaledClock, SystemClock
from bot.conversation import SOMETHING_WENT_WRONG
from bot.knowledge import KnowledgeBase
from bot.session import Phase, SessionState, TimerPhase
from bot.store import Store
from bot.telegram_app import TelegramFrontEnd, front_end_of
from bot.telegram_flood import JITTER_SECONDS, FloodLimits
from bot.telegram_net import Backoff
from bot.telegram_outbox import OutboxOptions

SPEED = 3000.0  # a 3-minute step lasts 0.06 s
SESSION = "quick-back"
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def bot(api: StandIn, tmp_path: Path, knowledge: KnowledgeBase) -> AsyncIterator[BotFixture]:
    running = await start_bot(api, bot_settings(api, tmp_path), knowledge,
                              ScaledClock(speed=SPEED), fast_options(read_timeout=0.5))
    yield running
    await running.close()


@pytest.fixture
def ann(api: StandIn) -> User:
    return User(api, user_id=1001)


@pytest.fixture
def no_errors(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    """Fail the test if anything was logged at ERROR, even when the person saw no harm."""
    caplog.set_level(logging.INFO)
    yield  # type: ignore[misc]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def step_number(output: Output) -> int | None:
    found = re.match(r"Step (\d+) of", output.text)
    return int(found.group(1)) if found else None


async def to_the_step_before_the_first_timed_one(ann: User, knowledge: KnowledgeBase) -> Output:
    """Start a session and stop on the untimed step whose Next starts a timer. Pictures off:
    these faults are about text messages (photos' are in test_telegram_pictures.py)."""
    [settings] = await ann.say("/settings")
    await ann.press(settings, "Turn pictures off")
    [screen] = await ann.say(f"/start session-{SESSION}")
    for _ in range(knowledge.safety_check.screens(SESSION)):
        [screen] = await ann.press(screen, "No")
    [screen] = await ann.press(screen, "Ready")
    steps = knowledge.sessions[SESSION].steps
    while steps[(step_number(screen) or 0)].seconds is None:
        [screen] = await ann.press(screen, "Next")
    return screen


async def hands_free_off(ann: User) -> None:
    [settings] = await ann.say("/settings")
    await ann.press(settings, "Turn hands-free off")


def session_of(bot: BotFixture, chat_id: int) -> dict[str, object] | None:
    state = bot.conversation.store.load_session(chat_id)
    assert state is None or isinstance(state, dict)
    return state


# --- 1. a timer that fires during an outage loses its message -------------------------------


@pytest.mark.usefixtures("no_errors")
async def test_1_times_up_during_an_outage_arrives_when_telegram_is_back(
    api: StandIn, ann: User, bot: BotFixture, knowledge: KnowledgeBase
) -> None:
    await hands_free_off(ann)
    screen = await to_the_step_before_the_first_timed_one(ann, knowledge)
    outage = api.outage("sendMessage", chat_id=ann.chat_id)  # edits still work
    [timed] = await ann.press(screen, "Next")
    # The timer fires; its message fails, again and again.
    await api.wait_for(lambda: len(api.failures("sendMessage", ann.chat_id)) >= 2,
                       what="the time's-up message to fail")
    state = session_of(bot, ann.chat_id)
    assert state is not None and state["timer"] == "up"  # saved as up, not yet shown
    since = len(api.outputs)
    outage.set()
    [times_up] = await ann.expect(1, since)
    assert times_up.kind == "send" and "Time's up" in times_up.text
    [following] = await ann.press(times_up, "Next")
    assert step_number(following) == (step_number(timed) or 0) + 1
    assert [o.text for o in api.sent_in(ann.chat_id)].count(times_up.text) == 1


@pytest.mark.usefixtures("no_errors")
async def test_1_after_a_long_outage_hands_free_shows_where_the_session_is_now(
    api: StandIn, ann: User, bot: BotFixture, knowledge: KnowledgeBase
) -> None:
    steps = knowledge.sessions[SESSION].steps
    screen = await to_the_step_before_the_first_timed_one(ann, knowledge)
    outage = api.outage("sendMessage", chat_id=ann.chat_id)
    await ann.press(screen, "Next")
    # Hands-free runs through every timed step while nothing gets through.
    await api.wait_for(lambda: (session_of(bot, ann.chat_id) or {}).get("step_index")
                       == len(steps) - 1, what="the session to reach its last step")
    failed = len(api.failures("sendMessage", ann.chat_id))
    await api.wait_for(lambda: len(api.failures("sendMessage", ann.chat_id)) >= failed + 2,
                       what="the newest screen to be tried")
    since = len(api.outputs)
    outage.set()
    notice, last = await ann.expect(2, since)
    await ann.say("/help")  # anything still queued would come before this
    assert "Time's up" in notice.text and steps[-2].title in notice.text
    assert step_number(last) == len(steps)
    shown = [o for o in api.outputs_in(ann.chat_id, since) if step_number(o)]
    assert shown == [last]  # no stale step screens afterwards, none twice


@pytest.mark.usefixtures("no_errors")
async def test_1_a_short_outage_hands_free_skips_no_step(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase
) -> None:
    # Slower time: the retries (tens of ms) end well before the next step's timer.
    running = await start_bot(api, bot_settings(api, tmp_path), knowledge,
                              ScaledClock(speed=300.0), fast_options())
    ann = User(api, user_id=1001)
    try:
        steps = knowledge.sessions[SESSION].steps
        screen = await to_the_step_before_the_first_timed_one(ann, knowledge)
        timed = step_number(screen) or 0  # the next one, 0-based
        api.add_fault("sendMessage", "gateway_page", times=3, chat_id=ann.chat_id)
        since = len(api.outputs)
        await ann.press(screen, "Next")
        await api.wait_for(lambda: any(step_number(o) == timed + 2
                                       for o in api.outputs_in(ann.chat_id, since)),
                           what="the step after the timed one")
        outputs = api.outputs_in(ann.chat_id, since)
        notice = next(o for o in outputs if "Time's up" in o.text)
        assert steps[timed].title in notice.text
        assert [step_number(o) for o in outputs if step_number(o)] == [timed + 1, timed + 2]
        assert len(api.failures("sendMessage", ann.chat_id)) == 3
    finally:
        await running.close()


# --- 2. a failed answerCallbackQuery throws the press away ----------------------------------


@pytest.mark.parametrize("fault", ["internal_error", "bad_gateway", "drop", "hang"])
@pytest.mark.usefixtures("no_errors")
async def test_2_a_press_works_when_its_spinner_answer_fails(
    api: StandIn, ann: User, bot: BotFixture, knowledge: KnowledgeBase, fault: str
) -> None:
    [screen] = await ann.say(f"/start session-{SESSION}")
    api.add_fault("answerCallbackQuery", fault, times=10)  # type: ignore[arg-type]
    [second] = await ann.press(screen, "No")
    assert second.kind == "edit" and second.message_id == screen.message_id
    assert "Safety check 2 of" in second.text
    [sentinel] = await ann.say("/help")
    assert SOMETHING_WENT_WRONG not in [o.text for o in api.outputs_in(ann.chat_id)]
    assert api.outputs_in(ann.chat_id)[-1] == sentinel


# --- 3. 5xx and connection resets are never retried ----------------------------------------


@pytest.mark.parametrize("times", [1, 3, 12])  # 12: more than one request's own retries
@pytest.mark.usefixtures("no_errors")
async def test_3_an_answer_gets_through_500s(
    api: StandIn, ann: User, bot: BotFixture, times: int
) -> None:
    api.add_fault("sendMessage", "internal_error", times=times, chat_id=ann.chat_id)
    [answer] = await ann.say("how do I do petrissage?")
    assert answer.text.startswith("Petrissage")
    [sentinel] = await ann.say("/stop")
    assert api.sent_in(ann.chat_id) == [answer, sentinel]  # no apology, nothing twice


@pytest.mark.usefixtures("no_errors")
async def test_3_a_reset_after_delivery_gives_the_answer_once_and_no_apology(
    api: StandIn, ann: User, bot: BotFixture
) -> None:
    api.add_fault("sendMessage", "late", seconds=0.0, chat_id=ann.chat_id)  # done, then reset
    [answer] = await ann.say("how do I do petrissage?")
    [sentinel] = await ann.say("/stop")
    assert api.sent_in(ann.chat_id) == [answer, sentinel]
    assert answer.text.startswith("Petrissage")


@pytest.mark.usefixtures("no_errors")
async def test_3_a_failed_edit_on_next_still_moves_the_screen_on(
    api: StandIn, ann: User, bot: BotFixture
) -> None:
    [screen] = await ann.say(f"/start session-{SESSION}")
    outage = api.outage("editMessageText", chat_id=ann.chat_id)
    since = len(api.outputs)
    api.push(ann.press_update(screen, screen.data_of("No")))
    await api.wait_for(lambda: len(api.failures("editMessageText", ann.chat_id)) >= 3,
                       what="the edit to fail a few times")
    assert api.outputs_in(ann.chat_id, since) == []
    outage.set()
    [moved] = await ann.expect(1, since)
    assert moved.kind == "edit" and moved.message_id == screen.message_id
    assert "Safety check 2 of" in moved.text
    state = session_of(bot, ann.chat_id)
    assert state is not None and state["phase"] == "question"  # the store and the screen agree


@pytest.mark.usefixtures("no_errors")
async def test_3_an_edit_answered_too_late_is_repeated_and_shown_once(
    api: StandIn, ann: User, bot: BotFixture
) -> None:
    [screen] = await ann.say(f"/start session-{SESSION}")
    api.add_fault("editMessageText", "late", seconds=1.5, chat_id=ann.chat_id)
    [moved] = await ann.press(screen, "No")
    assert "Safety check 2 of" in moved.text
    [sentinel] = await ann.say("/help")
    edits = [o for o in api.outputs_in(ann.chat_id) if o.kind == "edit"]
    assert edits == [moved]  # repeated, but the repeat was "not modified": one change shown
    assert api.outputs_in(ann.chat_id)[-1] == sentinel


# --- 4. slow under load: replies queue behind the flood limit, spinners do not --------------


class StillClock:
    """The flood limits' clock, moved by the test: a message goes only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def one_more_second(api: StandIn, clock: StillClock, running: BotFixture) -> None:
    """Let the flood limit allow one more message, and wait until it is out."""
    seen = len(api.outputs)
    clock.now += 1.0 + JITTER_SECONDS
    front_end_of(running.app).outbox.wake()
    await api.wait_for(lambda: len(api.outputs) > seen, what="the next message")


@pytest.mark.usefixtures("no_errors")
async def test_4_under_the_flood_limit_spinners_stop_at_once_and_no_reply_is_lost(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase
) -> None:
    clock = StillClock()
    limits = FloodLimits(overall_per_second=1, chat_per_second=1, chat_burst=1,
                         group_per_minute=20)
    running = await start_bot(
        api, bot_settings(api, tmp_path), knowledge, ScaledClock(speed=1.0),
        fast_options(flood=limits, monotonic=clock),
    )
    people = [User(api, user_id=2000 + n) for n in range(12)]
    try:
        for person in people:  # one message a (still) second: the test hands them out
            api.push(person.text_update("/start"))
        while len(api.outputs) < len(people):
            await one_more_second(api, clock, running)
        greetings = list(api.outputs)
        since = len(api.outputs)
        presses = [person.press_update(greeting, greeting.data_of("Equipment"))
                   for person, greeting in zip(people, sorted(greetings, key=lambda o: o.chat_id),
                                               strict=True)]
        query_ids = [p["callback_query"]["id"] for p in presses]
        api.push_many(presses)
        # Every spinner is answered while the replies wait for the flood limit.
        await api.wait_for(lambda: set(query_ids) <= set(api.answered_queries),
                           what="every spinner answered")
        assert len(api.outputs) - since <= 1
        while len(api.outputs) - since < len(people):
            await one_more_second(api, clock, running)
        replies = api.outputs[since:]
        assert sorted(o.chat_id for o in replies) == [p.chat_id for p in people]
        assert all(o.buttons for o in replies)  # each got its checklist
    finally:
        await running.close()


# --- 5. restart with many sessions stalls everyone -----------------------------------------


def timed_session(knowledge: KnowledgeBase, run_id: str, started: float,
                  hands_free: bool = True) -> dict[str, object]:
    """A saved session on the quick massage's first timed step, its timer running."""
    steps = knowledge.sessions[SESSION].steps
    index = next(i for i, step in enumerate(steps) if step.seconds)
    return SessionState(
        run_id=run_id, session_id=SESSION, phase=Phase.STEP, hands_free=hands_free,
        started_at=started, step_index=index, step_started_at=started,
        timer=TimerPhase.END, timer_seq=1, steps_done=index,
    ).to_dict()


@pytest.mark.usefixtures("restore_logging")
async def test_5_a_restart_with_thousands_of_sessions_answers_a_newcomer_and_restores_all(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = bot_settings(api, tmp_path)
    clock = SystemClock()
    many = 2000
    ann = User(api, user_id=1001)
    with Store.open(settings.database_path) as store, store.transaction():
        now = clock.now()
        for n in range(many):  # timers due in an hour or so: nothing to say at the restart
            store.save_session(5000 + n, timed_session(knowledge, f"r{n}", now + 3600))
        # Ann's timer ran out while the bot was down.
        store.save_session(ann.chat_id, timed_session(knowledge, "ann1", now - 3600))
    api.push(ann.text_update("how do I do petrissage?"))
    newcomer = User(api, user_id=99)
    api.push(newcomer.text_update("/start"))
    running = await start_bot(api, settings, knowledge, clock,
                              fast_options(restore_chunk=1, read_timeout=2.0))
    front = front_end_of(running.app)
    try:
        [welcome] = await newcomer.expect(1, 0)
        assert front.unrestored, "the newcomer was answered while sessions were restored"
        assert "Back massage helper" in welcome.text
        offline, answer, reminder = await ann.expect(3, 0)
        assert "while I was offline" in offline.text  # restored first, then her answer
        assert answer.text.startswith("Petrissage") and "Your session is at" in reminder.text
        await api.wait_for(lambda: not front.unrestored and len(front.timers) == many,
                           what="every session restored")
        assert not bot_has_timer(front, ann.chat_id)  # her step is up: no timer to arm
    finally:
        await running.close()
    noise = [r for r in caplog.records if r.levelno >= logging.ERROR
             or "CancelledError" in r.getMessage() or (r.exc_text or "").count("Cancelled")]
    assert noise == []  # 2,000 pending timers cancelled quietly at shutdown


def bot_has_timer(front: TelegramFrontEnd, chat_id: int) -> bool:
    return chat_id in front.timers


async def test_5_what_was_waiting_before_a_restart_is_delivered_first(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase
) -> None:
    settings = bot_settings(api, tmp_path)
    ann = User(api, user_id=1001)
    options = fast_options(outbox=OutboxOptions(stop_drain_seconds=0.0))
    first = await start_bot(api, settings, knowledge, SystemClock(), options)
    outage = api.outage("sendPhoto", chat_id=ann.chat_id)  # the answer comes with a picture
    api.push(ann.text_update("how do I do petrissage?"))
    await api.wait_for(lambda: bool(api.failures("sendPhoto", ann.chat_id)),
                       what="the answer to fail")
    await first.close()  # the answer is still owed
    outage.set()
    api.push(ann.text_update("/help"))
    second = await start_bot(api, settings, knowledge, SystemClock(), fast_options())
    try:
        owed, help_message = await ann.expect(2, 0)
        assert owed.text.startswith("Petrissage") and "/session" in help_message.text
    finally:
        await second.close()


# --- 6. start-up gives up after about 15 s, with a 502 page in its one line -------------------


@pytest.mark.usefixtures("restore_logging")
async def test_6_start_up_waits_out_a_run_of_502_pages_saying_each_retry_in_one_clean_line(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    api.add_fault("getMe", "gateway_page", times=8)
    running = await start_bot(
        api, bot_settings(api, tmp_path), knowledge, SystemClock(),
        fast_options(startup_retry=Backoff(attempts=None, first_delay=0.01, max_delay=0.02),
                     send_retry=Backoff(attempts=1, first_delay=0.01)),
    )
    try:
        [answer] = await User(api, user_id=1001).say("/help")
        assert "/session" in answer.text
    finally:
        await running.close()
    retries = [r for r in caplog.records if r.getMessage().startswith("start-up:")]
    assert len(retries) == 8
    assert all(r.levelno == logging.INFO and "Bad Gateway (502)" in r.getMessage()
               for r in retries)
    assert retries[-1].getMessage().endswith("(attempt 9, no limit)")
    assert "<html" not in caplog.text.lower() and "nginx" not in caplog.text
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# --- 7. 403: the chat's timers keep firing to the end of the session ------------------------


@pytest.mark.usefixtures("no_errors")
async def test_7_a_person_who_blocks_the_bot_ends_their_session_quietly(
    api: StandIn, ann: User, bot: BotFixture, knowledge: KnowledgeBase
) -> None:
    screen = await to_the_step_before_the_first_timed_one(ann, knowledge)
    api.blocked.add(ann.chat_id)
    api.push(ann.press_update(screen, screen.data_of("Next")))  # the edit still goes (403 next)
    front = front_end_of(bot.app)
    await api.wait_for(lambda: session_of(bot, ann.chat_id) is None, what="the session to end")
    assert not bot_has_timer(front, ann.chat_id)
    refused = len(api.failures("sendMessage", ann.chat_id))
    [other] = await User(api, user_id=1002).say("/help")  # the bot carries on for others
    assert "/session" in other.text
    assert len(api.failures("sendMessage", ann.chat_id)) == refused  # nothing more tried
    api.blocked.discard(ann.chat_id)  # Ann unblocks the bot and writes again: a fresh start
    [answer] = await ann.say("how do I do petrissage?")
    assert answer.text.startswith("Petrissage")
    [picker] = await ann.say("/session")
    assert "already running" not in picker.text


# --- 8. groups: any member can answer another's safety check or press their Next -------------


@pytest.mark.usefixtures("no_errors")
async def test_8_in_a_group_only_the_one_who_started_a_session_can_steer_it(
    api: StandIn, bot: BotFixture, knowledge: KnowledgeBase
) -> None:
    ann = User(api, user_id=1001, chat_id=-100500, first_name="Ann")
    ben = User(api, user_id=1002, chat_id=-100500, first_name="Ben")
    [screen] = await ann.say(f"/start session-{SESSION}")
    since = len(api.outputs)
    press = ben.press_update(screen, screen.data_of("One of these"))  # would stop Ann's
    api.push(press)
    query_id = press["callback_query"]["id"]
    await api.wait_for(lambda: query_id in api.answered_queries, what="Ben's alert")
    alert = api.answered_queries[query_id]
    assert "belongs to Ann" in alert["text"] and alert["show_alert"] is True
    assert len(alert["text"]) <= 200
    [note] = await ben.say("stop", reply_to=screen)  # typed, in reply to the bot
    assert "belongs to Ann" in note.text
    [note] = await ben.say("s", reply_to=screen)  # Stop's key, or a button's word
    assert "belongs to Ann" in note.text
    [note] = await ben.say("one of these applies", reply_to=screen)
    assert "belongs to Ann" in note.text
    state = session_of(bot, ann.chat_id)
    assert state is not None and state["phase"] == "safety"  # nothing changed
    assert [o for o in api.outputs_in(ann.chat_id, since) if o.kind == "edit"] == []
    [second] = await ann.press(screen, "No")  # Ann's own press works
    assert "Safety check 2 of" in second.text


# --- retention ------------------------------------------------------------------------------


async def test_the_store_is_pruned_on_a_schedule(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase
) -> None:
    settings = bot_settings(api, tmp_path)
    with Store.open(settings.database_path) as store:
        store.mark_update_seen(10**9)
    db_path = settings.database_path
    old = sqlite3.connect(db_path)
    old.execute("UPDATE seen_updates SET seen_at = 0")  # seen long ago
    old.commit()
    old.close()
    running = await start_bot(api, settings, knowledge, SystemClock(),
                              fast_options(prune_every_seconds=0.05))
    try:
        def seen_rows() -> int:
            db = sqlite3.connect(db_path)
            try:
                return int(db.execute(
                    "SELECT count(*) FROM seen_updates WHERE update_id = 1000000000").fetchone()[0])
            finally:
                db.close()

        await User(api, user_id=1001).say("/help")  # polling, and the job queue, run
        for _ in range(200):
            if seen_rows() == 0:
                break
            await asyncio.sleep(0.05)
        assert seen_rows() == 0
    finally:
        await running.close()
