"""The guided session as a person meets it: what each tap, typed word and timer shows next."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.knowledge import (
    GuidedSession,
    KnowledgeBase,
    SafetyCheck,
    SafetyCondition,
    SafetyQuestion,
    Step,
    Topic,
    Variant,
    check_knowledge,
)
from bot.replies import MAX_ACTION_BYTES, ArmTimer, Button, CancelTimer, Reply, Response
from bot.session import (
    _PHRASES,
    MAIN_MENU_ACTION,
    STATE_VERSION,
    Action,
    Phase,
    SessionCommand,
    SessionEngine,
    SessionState,
    TimerPhase,
    format_duration,
    make_action,
    parse_action,
    parse_command,
)
from bot.settings import PACKAGE_KNOWLEDGE_DIR

FEVER = SafetyCondition(
    "fever", "A fever, or they feel unwell", "Fever", "Don't massage today.", ("when-not",)
)
THINNERS = SafetyCondition(
    "thinners", "Blood thinners", "Blood thinners", "Ask their doctor first.", (), "light"
)
NOT_SURE = SafetyCondition("not-sure", "", "", "Not sure? Ask their doctor first.", ())
FRAIL = SafetyQuestion("frail", "Is the person frail or older?", ("tiny",), "gentle")
SAFETY = SafetyCheck(conditions=(FEVER, THINNERS), not_sure=NOT_SURE, questions=(FRAIL,))
VARIANTS = {
    "gentle": Variant("gentle", "gentle version", "Gentle: no kneading.", "", ""),
    "light": Variant(
        "light", "light strokes only", "Light strokes only.", "Doctor said yes: light",
        "Once their doctor agrees, light strokes only.",
    ),
    "check": Variant(
        "check", "skin check only", "No rub today.", "Skin check only",
        "You can still check the skin.",
    ),
}  # fmt: skip
TINY = GuidedSession(
    id="tiny",
    title="Tiny back rub",
    summary="A short session for tests.",
    steps=(
        Step("Settle in", "Get the person comfortable."),
        Step("Long strokes", "Glide up the back.", 180),
        Step(
            "Kneading", "Knead the shoulders.", 90,
            variants=(
                ("gentle", Step("Soft kneading", "Knead very lightly.", 60)), ("light", None),
            ),
        ),
        Step("Cover up", "Cover the back with a towel."),
    ),
    equipment=("Towel", "Oil", "Pillow"),
    aftercare=("Wipe off the oil.", "Keep them warm.", "Offer a glass of water."),
    variants=("gentle", "light"),
)  # fmt: skip
BEDSIDE = GuidedSession(
    id="bedside-back-rub",
    title="Bedside back rub",
    summary="For someone in bed.",
    steps=(
        Step("Check the skin", "Look for red patches."),
        Step("Rub", "Rub gently.", 30, variants=(("check", None),)),
    ),
    aftercare=("Leave them repositioned.", "Report any skin changes."),
    variants=("light", "check"),
    unsafe_variant="check",
)
BARE = GuidedSession(
    id="bare", title="Bare", summary="No equipment.", steps=(Step("Only", "Do it.", 45),)
)
WHEN_NOT = Topic(
    id="when-not", kind="safety", title="When not to massage", aliases=(), questions=(),
    answer="Not with a fever.", related=(),
)  # fmt: skip
KNOWLEDGE = KnowledgeBase(
    topics={WHEN_NOT.id: WHEN_NOT},
    sessions={s.id: s for s in (TINY, BEDSIDE, BARE)},
    safety_check=SAFETY,
    variants=VARIANTS,
)
NO_QUESTIONS = replace(KNOWLEDGE, safety_check=SafetyCheck())
T0 = FakeClock().current

Outcome = tuple[SessionState | None, Response]


def counter() -> Callable[[], str]:
    numbers: Iterator[int] = iter(range(1, 1_000_000))
    return lambda: f"run{next(numbers):03d}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(clock: FakeClock) -> SessionEngine:
    return SessionEngine(KNOWLEDGE, clock, new_run_id=counter())


def only(response: Response) -> Reply:
    assert len(response.replies) == 1, response.replies
    return response.replies[0]


def labels(reply: Reply) -> list[list[str]]:
    return [[button.label for button in row] for row in reply.buttons]


def button(response: Response, label: str) -> Button:
    """The button labelled `label` on the last message, as the person sees it."""
    for row in response.replies[-1].buttons:
        for candidate in row:
            if candidate.label == label:
                return candidate
    raise AssertionError(f"no button {label!r} in {labels(response.replies[-1])}")


def tap(engine: SessionEngine, outcome: Outcome, label: str) -> Outcome:
    state, response = outcome
    return engine.press(state, button(response, label).action)


def taps(engine: SessionEngine, outcome: Outcome, *labels_: str) -> Outcome:
    for label in labels_:
        outcome = tap(engine, outcome, label)
    return outcome


def at_checklist(engine: SessionEngine) -> Outcome:
    return taps(engine, engine.start("tiny"), "✅ None of these", "No")


def at_step(
    engine: SessionEngine, clock: FakeClock, number: int, hands_free: bool = True
) -> Outcome:
    """Session "tiny" on step `number` (1-based), just entered."""
    state, response = engine.start("tiny", hands_free=hands_free)
    for command in (SessionCommand.NO, SessionCommand.NO, SessionCommand.READY):
        state, response = engine.act(state, command)
    for _ in range(number - 1):
        state, response = engine.act(state, SessionCommand.NEXT)
    assert state is not None and state.step_index == number - 1
    return state, response


def armed(response: Response) -> ArmTimer:
    assert isinstance(response.timer, ArmTimer), response.timer
    return response.timer


def fire(engine: SessionEngine, clock: FakeClock, outcome: Outcome) -> Outcome:
    """Let the armed timer run out and fire, as the front end's job queue would."""
    state, response = outcome
    timer = armed(response)
    clock.current = max(clock.current, timer.due_at)
    return engine.on_timer(state, timer.token)


def run_steps(engine: SessionEngine, clock: FakeClock, outcome: Outcome) -> list[str]:
    """Press Ready, then Next or let timers run out to the end; the step titles seen."""
    state, response = tap(engine, outcome, "▶️ Ready, start") if outcome[0] and (
        outcome[0].phase is Phase.CHECKLIST
    ) else outcome
    titles: list[str] = []
    while state is not None:
        titles += [reply.title for reply in response.replies if reply.title.startswith("Step")]
        if isinstance(response.timer, ArmTimer):
            state, response = fire(engine, clock, (state, response))
        else:
            state, response = engine.act(state, SessionCommand.NEXT)
    return titles


# --- safety check: one screen, then what to do instead ---------------------------------------


def test_start_lists_every_condition_on_one_screen(engine: SessionEngine) -> None:
    state, response = engine.start("tiny")

    reply = only(response)
    assert reply.title == "Safety check 1 of 2"  # the list, then tiny's frailty question
    assert reply.text.startswith("Tiny back rub: before we start, does any of these apply")
    assert "If you're not sure, count it as yes." in reply.text
    assert reply.text.endswith("• A fever, or they feel unwell\n• Blood thinners")
    assert labels(reply) == [
        ["✅ None of these"], ["⚠️ One of these applies", "🤔 Not sure"], ["⏹ Stop"],
    ]  # fmt: skip
    assert response.timer is None
    assert state is not None and state.phase is Phase.SAFETY


def test_none_of_these_asks_the_sessions_own_question_then_shows_the_checklist(
    engine: SessionEngine,
) -> None:
    question = tap(engine, engine.start("tiny"), "✅ None of these")

    assert only(question[1]).title == "Safety check 2 of 2"
    assert only(question[1]).text == "Is the person frail or older?"
    assert labels(only(question[1])) == [["Yes", "No"], ["🤔 Not sure"], ["⬅️ Back", "⏹ Stop"]]

    state, response = tap(engine, question, "No")

    reply = only(response)
    assert reply.title == "Get ready: Tiny back rub"
    assert reply.text.endswith("0 of 3 ready")
    assert labels(reply) == [
        ["☐ Towel"], ["☐ Oil"], ["☐ Pillow"], ["▶️ Ready, start"], ["🙌 Hands-free: on"],
        ["⬅️ Back", "⏹ Stop"],
    ]  # fmt: skip
    assert state is not None and state.phase is Phase.CHECKLIST


def test_a_session_without_questions_goes_from_the_list_to_its_steps(
    engine: SessionEngine,
) -> None:
    state, response = engine.start("bedside-back-rub")
    assert only(response).title == "Safety check 1 of 1"

    state, response = tap(engine, (state, response), "✅ None of these")

    assert only(response).title == "Step 1 of 2: Check the skin"  # no equipment to get ready


def test_one_of_these_applies_asks_which(engine: SessionEngine) -> None:
    state, response = tap(engine, engine.start("tiny"), "⚠️ One of these applies")

    reply = only(response)
    assert reply.text.startswith("Which one applies? If more than one does, pick the first")
    assert labels(reply) == [
        ["Fever", "Blood thinners"], ["🤔 Not sure which"], ["⬅️ Back", "⏹ Stop"],
    ]  # fmt: skip
    assert state is not None and state.phase is Phase.WHICH


def test_a_yes_says_what_to_do_instead_with_topics_and_the_menu(engine: SessionEngine) -> None:
    state, response = taps(engine, engine.start("tiny"), "⚠️ One of these applies", "Fever")

    reply = only(response)
    assert reply.title == "What to do instead"
    assert reply.text == "Don't massage today."  # tiny offers nothing to do instead of a fever
    assert labels(reply) == [["When not to massage"], ["🏠 Main menu"], ["⬅️ Back", "⏹ Stop"]]
    assert button(response, "When not to massage").action == "topic:when-not"
    assert button(response, "🏠 Main menu").action == MAIN_MENU_ACTION
    assert state is not None and state.phase is Phase.ADVICE and state.condition == 0


def test_blood_thinners_offers_light_strokes_once_the_doctor_agrees(
    engine: SessionEngine, clock: FakeClock
) -> None:
    advice = taps(engine, engine.start("tiny"), "⚠️ One of these applies", "Blood thinners")
    assert only(advice[1]).text == (
        "Ask their doctor first.\n\nOnce their doctor agrees, light strokes only."
    )

    checklist = tap(engine, advice, "▶️ Doctor said yes: light")

    assert only(checklist[1]).title == "Get ready: Tiny back rub: light strokes only"
    assert only(checklist[1]).text.startswith("Light strokes only.\n\nHave these at hand")
    titles = run_steps(engine, clock, checklist)
    assert titles == [
        "Step 1 of 3: Settle in", "Step 2 of 3: Long strokes", "Step 3 of 3: Cover up",
    ]  # fmt: skip


def test_on_the_bedside_session_any_yes_offers_the_skin_check_without_the_rub(
    engine: SessionEngine, clock: FakeClock
) -> None:
    for condition in ("Fever", "Blood thinners"):
        advice = taps(
            engine, engine.start("bedside-back-rub"), "⚠️ One of these applies", condition
        )
        assert button(advice[1], "▶️ Skin check only").action.startswith("s:var:")
        assert "You can still check the skin." in only(advice[1]).text

    first = tap(engine, advice, "▶️ Skin check only")

    assert only(first[1]).text.startswith("No rub today.\n\nLook for red patches.")
    assert run_steps(engine, clock, first) == ["Step 1 of 1: Check the skin"]


def test_with_blood_thinners_the_bedside_session_offers_both(engine: SessionEngine) -> None:
    advice = taps(
        engine, engine.start("bedside-back-rub"), "⚠️ One of these applies", "Blood thinners"
    )

    assert [row[0].label for row in only(advice[1]).buttons[:2]] == [
        "▶️ Doctor said yes: light", "▶️ Skin check only",
    ]  # fmt: skip


def test_a_variant_the_advice_does_not_offer_cannot_be_forced(engine: SessionEngine) -> None:
    state, _ = taps(engine, engine.start("tiny"), "⚠️ One of these applies", "Fever")
    forged = make_action(SessionCommand.VARIANT, state.run_id, 2, "1")  # tiny's "light"

    after, refused = engine.press(state, forged)

    assert after == state
    assert only(refused).text.startswith("That option isn't offered here.")


@pytest.mark.parametrize("screen", ["list", "which"])
def test_not_sure_counts_as_yes(engine: SessionEngine, screen: str) -> None:
    outcome = engine.start("tiny")
    if screen == "which":
        outcome = tap(engine, outcome, "⚠️ One of these applies")
        outcome = tap(engine, outcome, "🤔 Not sure which")
    else:
        outcome = tap(engine, outcome, "🤔 Not sure")

    state, response = outcome
    assert only(response).text == "Not sure counts as yes.\n\nNot sure? Ask their doctor first."
    assert only(response).title == "Not sure? Then ask first"
    assert state is not None and state.phase is Phase.ADVICE


@pytest.mark.parametrize("typed", ["maybe", "not sure", "dont know", "Don't know", "idk"])
def test_typed_not_sure_is_understood_on_the_list_and_the_question(
    engine: SessionEngine, typed: str
) -> None:
    command = parse_command(typed)
    assert command is SessionCommand.NOT_SURE

    state, _ = engine.act(engine.start("tiny")[0], command)
    assert state is not None and state.phase is Phase.ADVICE

    question, _ = tap(engine, engine.start("tiny"), "✅ None of these")
    state, response = engine.act(question, command)
    assert state is not None and state.phase is Phase.CHECKLIST
    assert only(response).text.startswith("Not sure counts as yes.\n\nGentle: no kneading.")


def test_yes_to_the_frailty_question_runs_the_gentle_steps(
    engine: SessionEngine, clock: FakeClock
) -> None:
    checklist = taps(engine, engine.start("tiny"), "✅ None of these", "Yes")

    assert only(checklist[1]).title == "Get ready: Tiny back rub: gentle version"
    assert run_steps(engine, clock, checklist) == [
        "Step 1 of 4: Settle in", "Step 2 of 4: Long strokes", "Step 3 of 4: Soft kneading",
        "Step 4 of 4: Cover up",
    ]  # fmt: skip


def test_back_changes_a_mistapped_answer_before_the_session_starts(
    engine: SessionEngine, clock: FakeClock
) -> None:
    start = engine.start("tiny")
    which = tap(engine, start, "⚠️ One of these applies")
    assert only(tap(engine, which, "⬅️ Back")[1]).title == "Safety check 1 of 2"

    advice = tap(engine, which, "Fever")
    back_to_which = tap(engine, advice, "⬅️ Back")
    assert back_to_which[0] is not None and back_to_which[0].phase is Phase.WHICH

    gentle = taps(engine, start, "✅ None of these", "Yes")  # meant No
    question = tap(engine, gentle, "⬅️ Back")
    assert only(question[1]).text == "Is the person frail or older?"
    plain = tap(engine, question, "No")
    assert only(plain[1]).title == "Get ready: Tiny back rub"
    assert run_steps(engine, clock, plain)[2] == "Step 3 of 4: Kneading"

    back_to_list = tap(engine, question, "⬅️ Back")
    assert only(back_to_list[1]).title == "Safety check 1 of 2"


def test_back_from_a_checklist_chosen_on_the_advice_screen_returns_to_the_advice(
    engine: SessionEngine,
) -> None:
    advice = taps(engine, engine.start("tiny"), "⚠️ One of these applies", "Blood thinners")
    checklist = taps(engine, advice, "▶️ Doctor said yes: light", "☐ Oil")

    state, response = tap(engine, checklist, "⬅️ Back")

    assert only(response).title == "What to do instead"
    assert state is not None and state.variant is None and state.phase is Phase.ADVICE


def test_taps_before_step_1(engine: SessionEngine) -> None:
    """None of these, No, Ready: three taps from the first screen to the first step."""
    outcome = engine.start("tiny")
    presses = ("✅ None of these", "No", "▶️ Ready, start")
    for label in presses:
        outcome = tap(engine, outcome, label)
    assert len(presses) == 3
    assert only(outcome[1]).title == "Step 1 of 4: Settle in"


@pytest.mark.parametrize(
    ("path", "command"),
    [
        ((), SessionCommand.NEXT),
        ((), SessionCommand.BACK),
        (("⚠️ One of these applies",), SessionCommand.YES),
        (("⚠️ One of these applies", "Fever"), SessionCommand.NO),
        (("✅ None of these",), SessionCommand.READY),
    ],
)
def test_commands_that_do_not_answer_the_safety_check_leave_it_where_it_is(
    engine: SessionEngine, path: tuple[str, ...], command: SessionCommand
) -> None:
    before, _ = taps(engine, engine.start("tiny"), *path)

    state, response = engine.act(before, command)

    assert state == before
    assert only(response).buttons  # the screen's buttons come with the note


def test_stop_during_the_safety_check_cancels(engine: SessionEngine) -> None:
    for path in ((), ("⚠️ One of these applies", "Fever"), ("✅ None of these",)):
        state, response = tap(engine, taps(engine, engine.start("tiny"), *path), "⏹ Stop")

        assert state is None
        assert only(response).title == "Session cancelled"
        assert only(response).text.startswith("Nothing was started.")


def test_the_advice_screen_sends_no_reminder_but_the_question_does(engine: SessionEngine) -> None:
    advice, _ = taps(engine, engine.start("tiny"), "⚠️ One of these applies", "Fever")
    question, _ = tap(engine, engine.start("tiny"), "✅ None of these")

    assert engine.reminder(advice) == Response()
    assert only(engine.reminder(question)).text == "↩️ Your session is at the safety check."


def test_started_is_false_until_the_first_step(engine: SessionEngine, clock: FakeClock) -> None:
    state, _ = at_checklist(engine)
    assert not engine.started(state)
    assert engine.started(at_step(engine, clock, 1)[0])


def test_without_a_safety_check_the_checklist_comes_first(clock: FakeClock) -> None:
    engine = SessionEngine(NO_QUESTIONS, clock)

    _, response = engine.start("tiny")

    assert only(response).title == "Get ready: Tiny back rub"
    assert labels(only(response))[-1] == ["⏹ Stop"]


def test_without_questions_or_equipment_the_first_step_starts_at_once(clock: FakeClock) -> None:
    engine = SessionEngine(NO_QUESTIONS, clock)

    state, response = engine.start("bare")

    assert only(response).title == "Step 1 of 1: Only"
    assert armed(response).due_at == T0 + 45
    assert state is not None and state.phase is Phase.STEP


def test_unknown_session_is_not_started(engine: SessionEngine) -> None:
    state, response = engine.start("moon-walk")

    assert state is None
    assert only(response).text.startswith("I don't know that session.")
    assert "Tiny back rub" in only(response).text


# --- checklist -------------------------------------------------------------------------------


def test_ticking_toggles_an_item_and_counts_progress(engine: SessionEngine) -> None:
    ticked = tap(engine, at_checklist(engine), "☐ Oil")

    assert labels(only(ticked[1]))[:3] == [["☐ Towel"], ["☑ Oil"], ["☐ Pillow"]]
    assert only(ticked[1]).text.endswith("1 of 3 ready")

    unticked = tap(engine, ticked, "☑ Oil")

    assert labels(only(unticked[1]))[1] == ["☐ Oil"]
    assert only(unticked[1]).text.endswith("0 of 3 ready")


def test_ready_starts_the_first_step_without_any_ticks(engine: SessionEngine) -> None:
    state, response = tap(engine, at_checklist(engine), "▶️ Ready, start")

    assert only(response).title == "Step 1 of 4: Settle in"
    assert state is not None and state.phase is Phase.STEP


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (SessionCommand.PAUSE, "Nothing is running yet"),
        (SessionCommand.YES, "There's no question to answer now"),
    ],
)
def test_checklist_refuses_what_does_not_apply(
    engine: SessionEngine, command: SessionCommand, expected: str
) -> None:
    before, _ = at_checklist(engine)

    state, response = engine.act(before, command)

    assert state == before
    assert only(response).text.startswith(expected)
    assert 'press "Ready, start"' in only(response).text


def test_ticking_an_item_that_does_not_exist_is_refused(engine: SessionEngine) -> None:
    before, _ = at_checklist(engine)

    state, response = engine.act(before, SessionCommand.TICK, "7")

    assert state == before
    assert only(response).text == "There's no such item on the checklist."


# --- what a step looks like --------------------------------------------------------------------


def test_untimed_step_waits_for_next(engine: SessionEngine, clock: FakeClock) -> None:
    _, response = at_step(engine, clock, 1)

    reply = only(response)
    assert reply.title == "Step 1 of 4: Settle in"
    assert reply.text == "Get the person comfortable.\n\nPress Next when you're ready."
    assert labels(reply) == [
        ["⬅️ Back", "Next ➡️"],
        ["🔁 Repeat", "⏹ Stop"],
        ["🙌 Hands-free: on"],
    ]


def test_timed_step_shows_its_time_and_runs_a_timer(
    engine: SessionEngine, clock: FakeClock
) -> None:
    _, response = at_step(engine, clock, 2)

    reply = only(response)
    assert reply.title == "Step 2 of 4: Long strokes"
    assert reply.text == (
        "Glide up the back.\n\n⏱ 3 min\nHands-free: I'll move on when the time is up."
    )
    # The untimed step's rows, and Pause last: no button moves when it comes and goes.
    assert labels(reply) == [
        ["⬅️ Back", "Next ➡️"], ["🔁 Repeat", "⏹ Stop"], ["🙌 Hands-free: on"], ["⏸ Pause"],
    ]
    assert [[b.key for b in row] for row in reply.buttons] == [["b", "n"], ["r", "s"], ["h"], ["p"]]


def test_with_hands_free_off_a_timed_step_says_it_will_tell_when_the_time_is_up(
    engine: SessionEngine, clock: FakeClock
) -> None:
    _, response = at_step(engine, clock, 2, hands_free=False)

    # Not "Press Next" while the timer runs: that comes when the time is up.
    assert only(response).text == (
        "Glide up the back.\n\n⏱ 3 min\nI'll tell you when the time is up."
    )
    assert labels(only(response))[2] == ["✋ Hands-free: off"]


def test_the_last_step_offers_finish(engine: SessionEngine, clock: FakeClock) -> None:
    _, response = at_step(engine, clock, 4)

    assert labels(only(response))[0] == ["⬅️ Back", "✅ Finish"]


def test_repeat_shows_the_step_again_with_the_time_left(
    engine: SessionEngine, clock: FakeClock
) -> None:
    before, _ = at_step(engine, clock, 2)
    clock.advance(50)

    state, response = engine.act(before, SessionCommand.REPEAT)

    assert state == before
    assert only(response).title == "Step 2 of 4: Long strokes"
    assert "⏱ 3 min (2 min 10 s left)" in only(response).text


# --- timers ----------------------------------------------------------------------------------


def test_long_step_warns_one_minute_before_the_end(engine: SessionEngine, clock: FakeClock) -> None:
    outcome = at_step(engine, clock, 2)
    assert armed(outcome[1]).due_at == T0 + 120

    state, response = fire(engine, clock, outcome)

    assert only(response).text == '⏳ 1 minute left on "Long strokes".'
    assert armed(response).due_at == T0 + 180
    assert state is not None and state.step_index == 1


def test_short_step_gets_no_warning(engine: SessionEngine, clock: FakeClock) -> None:
    outcome = at_step(engine, clock, 3)
    assert armed(outcome[1]).due_at == T0 + 90

    _, response = fire(engine, clock, outcome)

    assert [r.title for r in response.replies] == ["", "Step 4 of 4: Cover up"]
    assert response.replies[0].text == '⏰ Time\'s up for "Kneading".'


def test_hands_free_moves_on_by_itself_when_the_time_is_up(
    engine: SessionEngine, clock: FakeClock
) -> None:
    warned = fire(engine, clock, at_step(engine, clock, 2))

    state, response = fire(engine, clock, warned)

    assert [r.text.split("\n")[0] for r in response.replies] == [
        '⏰ Time\'s up for "Long strokes".',
        "Knead the shoulders.",
    ]
    assert response.replies[1].title == "Step 3 of 4: Kneading"
    assert armed(response).due_at == clock.now() + 90
    assert state is not None and state.step_index == 2


def test_with_hands_free_off_the_end_of_a_step_waits_for_next(
    engine: SessionEngine, clock: FakeClock
) -> None:
    warned = fire(engine, clock, at_step(engine, clock, 2, hands_free=False))

    waiting = fire(engine, clock, warned)

    state, response = waiting
    assert only(response).title == "⏰ Time's up: Long strokes"
    assert only(response).text == (
        'Next up: step 3 of 4, "Kneading". Press Next when you\'re ready.'
    )
    assert response.timer is None
    assert state is not None and state.step_index == 1 and state.timer is TimerPhase.UP

    clock.advance(600)
    state, response = tap(engine, waiting, "Next ➡️")
    assert only(response).title == "Step 3 of 4: Kneading"
    assert armed(response).due_at == clock.now() + 90


def test_pause_keeps_the_remaining_time_exactly(engine: SessionEngine, clock: FakeClock) -> None:
    outcome = at_step(engine, clock, 2)
    clock.advance(50)

    paused = tap(engine, outcome, "⏸ Pause")

    assert only(paused[1]).text == (
        '⏸ Paused with 2 min 10 s left on "Long strokes". Press Resume when you\'re ready.'
    )
    assert paused[1].timer == CancelTimer()
    assert labels(only(paused[1]))[0] == ["⬅️ Back", "Next ➡️"]
    assert labels(only(paused[1]))[-1] == ["▶️ Resume"]
    assert button(paused[1], "▶️ Resume").key == "p"  # the key of Pause: one key toggles

    clock.advance(3600)  # a long break changes nothing
    _, repeated = engine.act(paused[0], SessionCommand.REPEAT)
    assert "⏱ 3 min: paused with 2 min 10 s left.\nPress Resume to carry on." in (
        only(repeated).text
    )

    resumed = tap(engine, paused, "▶️ Resume")

    assert only(resumed[1]).text == '▶️ Resumed: 2 min 10 s left on "Long strokes".'
    assert armed(resumed[1]).due_at == clock.now() + 70  # the warning, a minute before the end
    warned = fire(engine, clock, resumed)
    assert only(warned[1]).text == '⏳ 1 minute left on "Long strokes".'
    assert armed(warned[1]).due_at == clock.now() + 60


def test_resume_with_under_a_minute_left_arms_the_end(
    engine: SessionEngine, clock: FakeClock
) -> None:
    state, _ = at_step(engine, clock, 2)
    clock.advance(150)
    paused, _ = engine.act(state, SessionCommand.PAUSE)
    clock.advance(20)

    resumed, response = engine.act(paused, SessionCommand.RESUME)

    assert armed(response).due_at == clock.now() + 30
    assert resumed is not None and resumed.timer is TimerPhase.END


def test_stale_timer_token_is_ignored(engine: SessionEngine, clock: FakeClock) -> None:
    state, response = at_step(engine, clock, 2)
    old = armed(response)
    moved, _ = engine.act(state, SessionCommand.NEXT)
    clock.current = old.due_at

    after, nothing = engine.on_timer(moved, old.token)

    assert after == moved
    assert nothing == Response()


def test_timer_fired_twice_acts_once(engine: SessionEngine, clock: FakeClock) -> None:
    outcome = at_step(engine, clock, 2)
    token = armed(outcome[1]).token
    warned, _ = fire(engine, clock, outcome)

    again, nothing = engine.on_timer(warned, token)

    assert again == warned
    assert nothing == Response()


def test_token_of_another_run_is_ignored(engine: SessionEngine, clock: FakeClock) -> None:
    state, _ = at_step(engine, clock, 2)
    clock.advance(500)

    after, nothing = engine.on_timer(state, f"zzz999:{state.timer_seq}")

    assert after == state
    assert nothing == Response()


def test_timer_firing_early_is_armed_again(engine: SessionEngine, clock: FakeClock) -> None:
    state, response = at_step(engine, clock, 2)
    timer = armed(response)
    clock.advance(10)

    after, rearm = engine.on_timer(state, timer.token)

    assert after == state
    assert rearm == Response(timer=timer)


def test_warning_firing_after_the_end_moves_on(engine: SessionEngine, clock: FakeClock) -> None:
    state, response = at_step(engine, clock, 2)
    clock.advance(400)

    moved, response = engine.on_timer(state, armed(response).token)

    assert response.replies[0].text == '⏰ Time\'s up for "Long strokes".'
    assert response.replies[1].title == "Step 3 of 4: Kneading"
    assert moved is not None and moved.step_index == 2


def test_turning_hands_free_off_mid_step_makes_it_wait(
    engine: SessionEngine, clock: FakeClock
) -> None:
    outcome = at_step(engine, clock, 3)
    timer = armed(outcome[1])

    state, response = tap(engine, outcome, "🙌 Hands-free: on")

    assert only(response).text == (
        "✋ Hands-free is off: when a step's time is up I'll wait for you to press Next."
    )
    assert labels(only(response))[2] == ["✋ Hands-free: off"]
    assert response.timer is None  # the running timer is kept
    clock.current = timer.due_at
    state, response = engine.on_timer(state, timer.token)
    assert only(response).title == "⏰ Time's up: Kneading"


# --- moving around ---------------------------------------------------------------------------


def test_back_on_the_first_step_is_refused(engine: SessionEngine, clock: FakeClock) -> None:
    before, _ = at_step(engine, clock, 1)

    state, response = engine.act(before, SessionCommand.BACK)

    assert state == before
    assert only(response).text == "This is the first step; there is no step before it."
    assert labels(only(response))[0] == ["⬅️ Back", "Next ➡️"]


def test_back_returns_to_the_previous_step_with_its_full_time(
    engine: SessionEngine, clock: FakeClock
) -> None:
    outcome = at_step(engine, clock, 3)
    clock.advance(30)

    _, response = tap(engine, outcome, "⬅️ Back")

    assert only(response).title == "Step 2 of 4: Long strokes"
    assert armed(response).due_at == clock.now() + 120


def test_back_to_an_untimed_step_cancels_the_timer(engine: SessionEngine, clock: FakeClock) -> None:
    _, response = tap(engine, at_step(engine, clock, 2), "⬅️ Back")

    assert only(response).title == "Step 1 of 4: Settle in"
    assert response.timer == CancelTimer()


@pytest.mark.parametrize(
    ("step", "first", "command", "expected"),
    [
        (1, None, SessionCommand.PAUSE, "This step has no timer, so there's nothing to pause."),
        (2, SessionCommand.PAUSE, SessionCommand.PAUSE, "Already paused, with 3 min left."),
        (2, None, SessionCommand.RESUME, "Nothing is paused. The timer is running."),
        (1, None, SessionCommand.RESUME, "Nothing is paused."),
        (2, None, SessionCommand.YES, "That doesn't apply during a step."),
    ],
)
def test_step_commands_that_make_no_sense_now_are_refused(
    engine: SessionEngine,
    clock: FakeClock,
    step: int,
    first: SessionCommand | None,
    command: SessionCommand,
    expected: str,
) -> None:
    before, _ = at_step(engine, clock, step)
    if first is not None:
        before, _ = engine.act(before, first)

    state, response = engine.act(before, command)

    assert state == before
    assert only(response).text.startswith(expected)
    assert response.timer is None


def test_pause_after_the_time_is_up_is_refused(engine: SessionEngine, clock: FakeClock) -> None:
    warned = fire(engine, clock, at_step(engine, clock, 2, hands_free=False))
    before, _ = fire(engine, clock, warned)

    state, response = engine.act(before, SessionCommand.PAUSE)

    assert state == before
    assert only(response).text.startswith("The time for this step is already up")


def test_continue_resumes_when_paused_and_moves_on_otherwise(
    engine: SessionEngine, clock: FakeClock
) -> None:
    state, _ = at_step(engine, clock, 2)
    paused, _ = engine.act(state, SessionCommand.PAUSE)

    resumed, response = engine.act(paused, SessionCommand.CONTINUE)
    assert only(response).text.startswith("▶️ Resumed")

    moved, response = engine.act(resumed, SessionCommand.CONTINUE)
    assert only(response).title == "Step 3 of 4: Kneading"
    assert moved is not None and moved.step_index == 2


# --- the end ---------------------------------------------------------------------------------


def test_next_on_the_last_step_finishes_with_a_summary_and_aftercare(
    engine: SessionEngine, clock: FakeClock
) -> None:
    outcome = at_step(engine, clock, 4)
    clock.advance(21 * 60)

    state, response = tap(engine, outcome, "✅ Finish")

    assert state is None
    reply = only(response)
    assert reply.title == "🎉 Session complete"
    lines = reply.text.split("\n")
    # Steps 2 and 3 were moved on from the moment they began.
    assert lines[:3] == ["Tiny back rub", "Steps done: 2 of 4, 2 skipped", "Time taken: 21 min"]
    assert "Aftercare:" in lines
    assert "water" in reply.text and "warm" in reply.text and "oil" in reply.text
    assert response.timer == CancelTimer()


def test_hands_free_end_of_the_last_step_finishes(clock: FakeClock) -> None:
    engine = SessionEngine(NO_QUESTIONS, clock)

    state, response = fire(engine, clock, engine.start("bare"))

    assert state is None
    assert [r.title for r in response.replies] == ["", "🎉 Session complete"]
    assert "Steps done: 1 of 1\nTime taken: 45 s" in response.replies[1].text


def test_each_session_shows_its_own_aftercare(clock: FakeClock) -> None:
    engine = SessionEngine(NO_QUESTIONS, clock)
    state, _ = engine.start("bedside-back-rub")
    state, _ = engine.act(state, SessionCommand.NEXT)

    _, response = engine.act(state, SessionCommand.NEXT)

    text = only(response).text
    assert text.endswith("Aftercare:\n• Leave them repositioned.\n• Report any skin changes.")


def test_stop_mid_session_summarises_what_was_done(engine: SessionEngine, clock: FakeClock) -> None:
    outcome = at_step(engine, clock, 2)
    clock.advance(90)

    state, response = tap(engine, outcome, "⏹ Stop")

    assert state is None
    assert only(response).title == "⏹ Session stopped"
    assert only(response).text.startswith(
        "Tiny back rub\nSteps done: 1 of 4\nTime taken: 1 min 30 s"
    )
    assert response.timer == CancelTimer()


def test_stop_before_any_step_is_done_gives_no_aftercare(
    engine: SessionEngine, clock: FakeClock
) -> None:
    state, _ = at_step(engine, clock, 1)

    _, response = engine.act(state, SessionCommand.STOP)

    assert "Steps done: 0 of 4" in only(response).text
    assert "Aftercare" not in only(response).text


def test_a_step_done_twice_after_back_counts_once(engine: SessionEngine, clock: FakeClock) -> None:
    state, _ = at_step(engine, clock, 3)
    for command in (SessionCommand.BACK, SessionCommand.NEXT, SessionCommand.NEXT):
        state, _ = engine.act(state, command)

    _, response = engine.act(state, SessionCommand.STOP)

    assert "Steps done: 1 of 4, 2 skipped" in only(response).text


def test_the_summary_counts_done_and_skipped_steps_honestly(
    engine: SessionEngine, clock: FakeClock
) -> None:
    outcome = at_step(engine, clock, 2)
    state, _ = fire(engine, clock, fire(engine, clock, outcome))  # step 2's time ran: done
    clock.advance(10)
    state, _ = engine.act(state, SessionCommand.NEXT)  # step 3 with 80 of 90 s left: skipped

    _, response = engine.act(state, SessionCommand.SKIP)  # the last step, said as a skip

    assert only(response).title == "🎉 Session complete"
    assert "Steps done: 2 of 4, 2 skipped" in only(response).text


def test_a_skipped_step_done_after_back_counts_done(
    engine: SessionEngine, clock: FakeClock
) -> None:
    state, _ = at_step(engine, clock, 3)  # step 2 skipped on the way
    state, response = engine.act(state, SessionCommand.BACK)
    state, _ = fire(engine, clock, fire(engine, clock, (state, response)))  # done this time

    _, response = engine.act(state, SessionCommand.STOP)

    assert "Steps done: 2 of 4\n" in only(response).text


# --- buttons from elsewhere ------------------------------------------------------------------


def test_a_double_tap_on_next_moves_on_once(engine: SessionEngine, clock: FakeClock) -> None:
    outcome = at_step(engine, clock, 1)
    next_action = button(outcome[1], "Next ➡️").action
    moved, _ = engine.press(outcome[0], next_action)

    state, response = engine.press(moved, next_action)

    assert state == moved
    reply = only(response)
    assert reply.title == "Step 2 of 4: Long strokes"
    assert reply.text.startswith("That button was on an earlier message. Here's where we are now.")


def test_a_button_after_the_session_ended_says_so(engine: SessionEngine, clock: FakeClock) -> None:
    outcome = at_step(engine, clock, 4)
    finish = button(outcome[1], "✅ Finish").action
    ended, _ = engine.press(outcome[0], finish)

    state, response = engine.press(ended, finish)

    assert state is None
    assert only(response).text.startswith("This session has ended.")


def test_a_button_from_an_earlier_session_does_not_touch_this_one(
    engine: SessionEngine, clock: FakeClock
) -> None:
    old_outcome = at_step(engine, clock, 1)
    engine.act(old_outcome[0], SessionCommand.STOP)
    current, _ = at_step(engine, clock, 1)

    state, response = engine.press(current, button(old_outcome[1], "Next ➡️").action)

    assert state == current
    assert only(response).text.startswith("That button is from a session that has ended.")


def test_an_unknown_button_changes_nothing(engine: SessionEngine, clock: FakeClock) -> None:
    before, _ = at_step(engine, clock, 1)

    state, response = engine.press(before, "s:dance:abc:1")

    assert state == before
    assert only(response).text.startswith("I don't know that button.")


def test_starting_a_second_session_offers_continue_or_stop(
    engine: SessionEngine, clock: FakeClock
) -> None:
    state, _ = at_step(engine, clock, 2)

    response = engine.already_running(state)

    assert only(response).text == "A session is already running: continue it or stop it first."
    assert labels(only(response)) == [["▶️ Continue", "⏹ Stop"]]
    same, shown = tap(engine, (state, response), "▶️ Continue")
    assert same == state
    assert only(shown).title == "Step 2 of 4: Long strokes"
    ended, _ = tap(engine, (state, response), "⏹ Stop")
    assert ended is None


def test_reminder_says_where_the_session_waits(engine: SessionEngine, clock: FakeClock) -> None:
    state, _ = at_step(engine, clock, 2)
    clock.advance(60)

    response = engine.reminder(state)

    assert only(response).text == "↩️ Your session is at step 2 of 4, 2 min left."
    assert labels(only(response))[0] == ["⬅️ Back", "Next ➡️"]
    assert labels(only(response))[-1] == ["⏸ Pause"]


def test_every_action_fits_in_a_button(engine: SessionEngine, clock: FakeClock) -> None:
    long_run = SessionEngine(KNOWLEDGE, clock, new_run_id=lambda: "a" * 12)
    state, response = long_run.start("tiny")
    actions: list[str] = []
    for command in (SessionCommand.NO, SessionCommand.NO, SessionCommand.READY):
        actions += [b.action for reply in response.replies for row in reply.buttons for b in row]
        state, response = long_run.act(state, command)
    actions += [b.action for reply in response.replies for row in reply.buttons for b in row]

    assert actions
    assert all(len(action.encode()) <= MAX_ACTION_BYTES for action in actions)


def test_actions_round_trip() -> None:
    action = make_action(SessionCommand.TICK, "ab12cd", 3, "2")

    assert action == "s:tick:ab12cd:3:2"
    assert parse_action(action) == Action(SessionCommand.TICK, "ab12cd", 3, "2")
    assert parse_action("s:next:ab12cd:7") == (SessionCommand.NEXT, "ab12cd", 7, None)


@pytest.mark.parametrize(
    "action",
    ["", "s:", "s:next", "s:next:ab12cd", "s:fly:ab12cd:1", "t:next:ab12cd:1", "s:next:AB:1",
     "s:next:ab12cd:x", "s:next:ab12cd:1:2:3", "topic:petrissage"],
)  # fmt: skip
def test_garbage_actions_are_not_parsed(action: str) -> None:
    assert parse_action(action) is None


# --- typed commands --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("next", SessionCommand.NEXT), ("Next please", SessionCommand.NEXT),
        ("nxt", SessionCommand.NEXT), ("/next", SessionCommand.NEXT),
        ("next step", SessionCommand.NEXT), ("done", SessionCommand.NEXT),
        ("Next ➡️", SessionCommand.NEXT),
        ("go on", SessionCommand.CONTINUE), ("continue", SessionCommand.CONTINUE),
        ("contniue", SessionCommand.CONTINUE), ("carry on", SessionCommand.CONTINUE),
        ("back", SessionCommand.BACK), ("previous", SessionCommand.BACK),
        ("go back", SessionCommand.BACK), ("previus step", SessionCommand.BACK),
        ("again", SessionCommand.REPEAT), ("repeat", SessionCommand.REPEAT),
        ("say again", SessionCommand.REPEAT), ("repaet", SessionCommand.REPEAT),
        ("pause", SessionCommand.PAUSE), ("hold on", SessionCommand.PAUSE),
        ("wait", SessionCommand.PAUSE), ("Wait!", SessionCommand.PAUSE),
        ("pasue", SessionCommand.PAUSE), ("one sec", SessionCommand.PAUSE),
        ("resume", SessionCommand.RESUME), ("resme", SessionCommand.RESUME),
        ("I'm back", SessionCommand.RESUME),
        ("stop", SessionCommand.STOP), ("stop session", SessionCommand.STOP),
        ("Stop the session!", SessionCommand.STOP), ("end", SessionCommand.STOP),
        ("quit", SessionCommand.STOP), ("stpo", SessionCommand.STOP),
        ("stop sesion", SessionCommand.STOP),
        ("yes", SessionCommand.YES), ("No", SessionCommand.NO), ("nope", SessionCommand.NO),
        ("hands-free off", SessionCommand.HANDS_FREE_OFF),
        ("hands free", SessionCommand.HANDS_FREE_ON),
    ],
)  # fmt: skip
def test_short_typed_commands_are_understood(text: str, command: SessionCommand) -> None:
    assert parse_command(text) is command


@pytest.mark.parametrize(
    "text",
    [
        "what is the next technique", "is it safe to continue", "how long do I knead",
        "my back hurts", "stop kneading when it hurts?", "next next next next next next",
        "cancer", "note", "step", "what", "ok", "", "   ", "➡️", "read", "precious", "dont",
    ],
)  # fmt: skip
def test_questions_and_near_miss_words_are_not_commands(text: str) -> None:
    assert parse_command(text) is None


def test_every_listed_phrase_means_its_own_command() -> None:
    for command, phrases in _PHRASES.items():
        for phrase in phrases:
            assert parse_command(phrase) is command, phrase


def test_typed_words_drive_the_session(engine: SessionEngine, clock: FakeClock) -> None:
    state, _ = at_step(engine, clock, 1)
    for text in ("nxt", "hold on", "go on", "previous"):
        command = parse_command(text)
        assert command is not None
        state, response = engine.act(state, command)

    assert only(response).title == "Step 1 of 4: Settle in"


def test_a_typed_command_with_no_session_says_so(engine: SessionEngine) -> None:
    state, response = engine.act(None, SessionCommand.NEXT)

    assert state is None
    assert only(response).text.startswith("No guided session is running.")


# --- saving and restarting -------------------------------------------------------------------


def restarted(state: SessionState | None) -> SessionState:
    """The state as the store gives it back after a restart."""
    assert state is not None
    return SessionState.from_dict(json.loads(json.dumps(state.to_dict())))


def test_state_survives_json_at_every_phase(engine: SessionEngine, clock: FakeClock) -> None:
    state, _ = engine.start("tiny")
    steps: list[tuple[SessionCommand, str | None]] = [
        (SessionCommand.NO, None), (SessionCommand.NO, None), (SessionCommand.TICK, "1"),
        (SessionCommand.READY, None), (SessionCommand.NEXT, None), (SessionCommand.PAUSE, None),
        (SessionCommand.NEXT, None), (SessionCommand.NEXT, None),
    ]  # fmt: skip
    for command, arg in steps:
        assert restarted(state) == state
        clock.advance(12.5)
        state, _ = engine.act(state, command, arg)
    assert state is not None and state.step_index == 3
    assert restarted(state) == state


def valid_dict() -> dict[str, Any]:
    return SessionState(
        run_id="ab12cd", session_id="tiny", phase=Phase.STEP, hands_free=True, started_at=T0,
        step_index=1, step_started_at=T0, timer=TimerPhase.WARNING, timer_seq=2,
    ).to_dict()  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"version": 4}, {"run_id": "AB:12"}, {"run_id": 5}, {"session_id": ""},
        {"phase": "flying"}, {"hands_free": "yes"}, {"started_at": "soon"},
        {"started_at": float("nan")}, {"step_index": -1}, {"step_index": True},
        {"step_index": 1.5}, {"ticked": "1,2"}, {"ticked": [-1]}, {"timer": "ticking"},
        {"timer": "paused"}, {"paused_remaining": 30.0}, {"timer_seq": None},
        {"phase": "checklist"}, {"step_started_at": None}, {"extra": 1},
        {"condition": -1}, {"condition": 0}, {"condition": "fever"}, {"answers": "yes"},
        {"answers": [1]}, {"variant": ""}, {"variant": 3}, {"answers": None},
        {"steps_skipped": "1"}, {"steps_skipped": [True]}, {"steps_skipped": [0]},
    ],
)  # fmt: skip
def test_garbage_state_is_rejected(change: dict[str, Any]) -> None:
    assert SessionState.from_dict(valid_dict()) is not None

    with pytest.raises(ValueError):
        SessionState.from_dict({**valid_dict(), **change})


@pytest.mark.parametrize("data", [None, [], "state", {}, {"version": 1}])
def test_non_states_are_rejected(data: Any) -> None:
    with pytest.raises(ValueError):
        SessionState.from_dict(data)


def test_restart_after_the_time_ran_out_offers_the_next_step_without_starting_it(
    engine: SessionEngine, clock: FakeClock
) -> None:
    state, _ = at_step(engine, clock, 2)
    clock.advance(10 * 3600)  # down for hours: still one step, not a rush through several

    restored, response = engine.restore(restarted(state))

    reply = only(response)
    assert reply.title == "⏰ Time's up: Long strokes"
    assert reply.text == (
        "The time for this step was up while I was offline.\n\n"
        'Next up: step 3 of 4, "Kneading". Press Next when you\'re ready.'
    )
    assert response.timer is None
    assert restored is not None and restored.step_index == 1 and restored.hands_free
    _, response = tap(engine, (restored, response), "Next ➡️")
    assert only(response).title == "Step 3 of 4: Kneading"
    assert armed(response).due_at == clock.now() + 90


def test_restart_with_time_to_go_arms_the_timer_for_what_is_left(
    engine: SessionEngine, clock: FakeClock
) -> None:
    state, response = at_step(engine, clock, 2)
    old_token = armed(response).token
    clock.advance(30)

    restored, response = engine.restore(restarted(state))

    assert response.replies == ()
    assert armed(response).due_at == T0 + 120
    assert restored is not None
    assert engine.on_timer(restored, old_token) == (restored, Response())
    _, warned = fire(engine, clock, (restored, response))
    assert only(warned).text == '⏳ 1 minute left on "Long strokes".'


def test_restart_after_a_missed_warning_says_how_long_is_left(
    engine: SessionEngine, clock: FakeClock
) -> None:
    state, _ = at_step(engine, clock, 2)
    clock.advance(150)

    restored, response = engine.restore(restarted(state))

    assert only(response).text == '⏳ 30 s left on "Long strokes".'
    assert armed(response).due_at == T0 + 180
    assert restored is not None and restored.timer is TimerPhase.END


def test_restart_while_paused_stays_paused(engine: SessionEngine, clock: FakeClock) -> None:
    state, _ = at_step(engine, clock, 2)
    clock.advance(40)
    paused, _ = engine.act(state, SessionCommand.PAUSE)
    clock.advance(10 * 3600)

    restored, response = engine.restore(restarted(paused))

    assert restored == paused
    assert response == Response()
    assert engine.remaining(restored) == 140


@pytest.mark.parametrize("step", [1, 4])
def test_restart_on_an_untimed_step_changes_nothing(
    engine: SessionEngine, clock: FakeClock, step: int
) -> None:
    state, _ = at_step(engine, clock, step)
    clock.advance(3600)

    assert engine.restore(restarted(state)) == (state, Response())


def test_restart_after_the_session_was_removed_ends_it(
    engine: SessionEngine, clock: FakeClock
) -> None:
    state, _ = at_step(engine, clock, 2)
    other = SessionEngine(replace(KNOWLEDGE, sessions={"bare": BARE}), clock)

    restored, response = other.restore(restarted(state))

    assert restored is None
    assert only(response).text.startswith("This guided session was changed while I was away")
    assert response.timer == CancelTimer()


@pytest.mark.parametrize("action", ["s:next:run001:3", "s:next:other1:3", "garbage"])
def test_any_button_after_the_session_was_removed_ends_it(
    engine: SessionEngine, clock: FakeClock, action: str
) -> None:
    state, _ = at_step(engine, clock, 2)
    other = SessionEngine(replace(KNOWLEDGE, sessions={"bare": BARE}), clock)

    ended, response = other.press(restarted(state), action)

    assert ended is None
    assert only(response).text.startswith("This guided session was changed while I was away")


def test_format_duration_reads_naturally() -> None:
    assert [format_duration(s) for s in (0, 45, 60, 90, 180, 1264.4)] == [
        "0 s", "45 s", "1 min", "1 min 30 s", "3 min", "21 min 4 s",
    ]  # fmt: skip


# --- the real knowledge base ------------------------------------------------------------------


def test_every_real_session_runs_from_start_to_summary(clock: FakeClock) -> None:
    knowledge, problems = check_knowledge(PACKAGE_KNOWLEDGE_DIR)
    assert knowledge is not None, "\n".join(str(problem) for problem in problems)
    engine = SessionEngine(knowledge, clock)
    for session in knowledge.sessions.values():
        started = clock.now()
        state, response = engine.start(session.id)
        state, response = tap(engine, (state, response), "✅ None of these")
        for _ in knowledge.safety_check.questions_for(session.id):
            state, response = tap(engine, (state, response), "No")
        if session.equipment:
            assert only(response).text.endswith(f"0 of {len(session.equipment)} ready")
            state, response = tap(engine, (state, response), "▶️ Ready, start")
        titles: list[str] = []
        while state is not None:
            titles += [reply.title for reply in response.replies if reply.title.startswith("Step")]
            if isinstance(response.timer, ArmTimer):
                state, response = fire(engine, clock, (state, response))
            else:
                state, response = engine.act(state, SessionCommand.NEXT)
        total = len(session.steps)
        assert titles == [
            f"Step {n + 1} of {total}: {s.title}" for n, s in enumerate(session.steps)
        ]
        summary = response.replies[-1]
        assert summary.title == "🎉 Session complete"
        assert f"Steps done: {total} of {total}" in summary.text
        assert f"Time taken: {format_duration(session.total_seconds)}" in summary.text
        assert clock.now() - started == session.total_seconds


def reach_variant(
    engine: SessionEngine, knowledge: KnowledgeBase, session_id: str, variant: str
) -> Outcome:
    """Answer the real safety check the way a person would to run `session_id` in `variant`."""
    check = knowledge.safety_check
    start = engine.start(session_id)
    for question in check.questions_for(session_id):
        if question.variant == variant:
            return taps(engine, start, "✅ None of these", "Yes")
    session = knowledge.sessions[session_id]
    for condition in check.conditions:
        if variant in (condition.allows, session.unsafe_variant):
            advice = taps(engine, start, "⚠️ One of these applies", condition.button)
            return tap(engine, advice, f"▶️ {knowledge.variants[variant].button}")
    raise AssertionError(f"nothing in the safety check leads {session_id} to {variant}")


def test_every_real_variant_is_reached_through_the_safety_check_and_runs_to_the_end(
    clock: FakeClock,
) -> None:
    knowledge, problems = check_knowledge(PACKAGE_KNOWLEDGE_DIR)
    assert knowledge is not None, "\n".join(str(problem) for problem in problems)
    engine = SessionEngine(knowledge, clock)
    for session in knowledge.sessions.values():
        for variant in session.variants:
            outcome = reach_variant(engine, knowledge, session.id, variant)
            name = knowledge.variants[variant].name
            assert only(outcome[1]).title == f"Get ready: {session.title}: {name}"

            steps = session.steps_in(variant)
            assert run_steps(engine, clock, outcome) == [
                f"Step {n + 1} of {len(steps)}: {s.title}" for n, s in enumerate(steps)
            ]


def test_the_real_gentle_and_light_versions_leave_out_what_they_promise() -> None:
    knowledge, _ = check_knowledge(PACKAGE_KNOWLEDGE_DIR)
    assert knowledge is not None
    for session_id in ("full-back", "quick-back"):
        session = knowledge.sessions[session_id]
        gentle = [step.title for step in session.steps_in("gentle")]
        light = [step.title for step in session.steps_in("light")]
        assert not any("Tapotement" in title for title in gentle)
        assert any("gentle kneading" in title for title in gentle)
        assert not any(word in " ".join(light) for word in ("Petrissage", "Friction", "Tapotement"))
    bedside = knowledge.sessions["bedside-back-rub"]
    check_only = " ".join(step.title for step in bedside.steps_in("skin-check-only"))
    assert "Check the skin" in check_only and "Reposition" in check_only
    assert "Gentle strokes" not in check_only and "Note and report" in check_only


def test_a_state_saved_before_the_one_screen_check_is_read_in_todays_terms() -> None:
    old_step = {
        "version": 1, "run_id": "ab12cd", "session_id": "tiny", "phase": "step",
        "hands_free": True, "started_at": T0, "safety_index": 0, "ticked": [1],
        "step_index": 1, "step_started_at": T0, "paused_remaining": None, "timer": "warning",
        "timer_seq": 2, "steps_done": 1,
    }  # fmt: skip
    old_question = {**old_step, "phase": "safety", "safety_index": 3, "step_index": 0,
                    "step_started_at": None, "timer": "none", "steps_done": 0}  # fmt: skip

    step = SessionState.from_dict(old_step)
    question = SessionState.from_dict(old_question)

    assert (step.phase, step.step_index, step.variant, step.answers) == (Phase.STEP, 1, None, ())
    assert step.ticked == frozenset({1})
    assert question.phase is Phase.SAFETY and question.condition is None  # asked again
    assert step.to_dict()["version"] == STATE_VERSION


def test_a_state_saved_before_skips_were_counted_carries_on_with_none_skipped(
    engine: SessionEngine, clock: FakeClock
) -> None:
    state, _ = at_step(engine, clock, 3)
    saved = {key: value for key, value in state.to_dict().items() if key != "steps_skipped"}
    saved["version"] = 2

    restored = SessionState.from_dict(saved)

    assert restored == replace(state, steps_skipped=frozenset())
    _, response = engine.act(restored, SessionCommand.STOP)
    assert "Steps done: 2 of 4\n" in only(response).text
