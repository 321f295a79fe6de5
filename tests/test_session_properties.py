"""Whatever a person taps, types or waits for, and whenever timers fire or the program restarts,
the session stays consistent: one timer at most, the right one, and nothing out of range."""

from __future__ import annotations

import json

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bot.clock import FakeClock
from bot.knowledge import (
    GuidedSession,
    KnowledgeBase,
    SafetyCheck,
    SafetyCondition,
    SafetyQuestion,
    Step,
    Variant,
)
from bot.replies import ArmTimer, CancelTimer, Response
from bot.session import (
    WARNING_BEFORE_END,
    Phase,
    SessionCommand,
    SessionEngine,
    SessionState,
    TimerPhase,
    timer_token,
)

MIXED = GuidedSession(
    id="mixed",
    title="Mixed",
    summary="Untimed, long, short and a timed last step.",
    steps=(
        Step("Prepare", "Get ready."),
        Step("Long", "Long strokes.", 150),
        Step("Short", "Short strokes.", 30, variants=(("soft", None),)),
        Step("Last", "Finish off.", 125, variants=(("light", Step("Last", "Lightly.", 65)),)),
    ),
    equipment=("Towel", "Oil"),
    variants=("soft", "light"),
    unsafe_variant="light",
)
PLAIN = GuidedSession(
    id="plain", title="Plain", summary="No equipment.", steps=(Step("Only", "Do it.", 61),)
)
KNOWLEDGE = KnowledgeBase(
    topics={},
    sessions={MIXED.id: MIXED, PLAIN.id: PLAIN},
    safety_check=SafetyCheck(
        conditions=(
            SafetyCondition("fever", "A fever", "Fever", "Not today.", ()),
            SafetyCondition("thin", "Thin skin", "Thin skin", "Ask first.", (), allows="soft"),
        ),
        not_sure=SafetyCondition("not-sure", "", "", "Ask first.", ()),
        questions=(SafetyQuestion("frail", "Frail?", ("mixed",), "soft"),),
    ),
    variants={
        "soft": Variant("soft", "soft", "Softly.", "Softly", "You can go on softly."),
        "light": Variant("light", "light", "Lightly.", "Lightly", "You can go on lightly."),
    },
)

C = SessionCommand
# Weighted toward moving on and the timer commands: drawn evenly, Yes and Stop end most runs
# during the safety check, and the timed steps would hardly ever be reached.
COMMANDS = (
    [C.NO] * 3 + [C.READY] * 2 + [C.NEXT] * 3 + [C.PAUSE] * 2 + [C.RESUME] * 2
    + [C.CONTINUE, C.SKIP, C.BACK, C.REPEAT, C.TICK, C.HANDS_FREE_ON, C.HANDS_FREE_OFF, C.YES,
       C.STOP, C.NOT_SURE, C.PICK, C.VARIANT]
)  # fmt: skip
# Commands whose argument is a number: an item, a condition or a variant (some out of range).
WITH_NUMBER = frozenset({C.TICK, C.PICK, C.VARIANT})


class SessionMachine(RuleBasedStateMachine):
    """A chat as the front end sees it: the saved state and the one timer it has armed."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.engine = SessionEngine(KNOWLEDGE, self.clock)
        self.state: SessionState | None = None
        self.armed: ArmTimer | None = None
        self.actions: list[str] = []  # every button ever shown, old ones included

    def apply(self, outcome: tuple[SessionState | None, Response], answered: bool) -> None:
        state, response = outcome
        if answered:
            assert response.replies, "a tap or a typed command always gets a reply"
        if isinstance(response.timer, ArmTimer):
            assert response.timer.due_at >= self.clock.now()
            self.armed = response.timer  # arming replaces the chat's one timer
        elif isinstance(response.timer, CancelTimer):
            self.armed = None
        self.state = state
        self.actions += [
            button.action for reply in response.replies for row in reply.buttons for button in row
        ]

    @initialize(hands_free=st.booleans(), to_the_steps=st.booleans())
    def begin(self, hands_free: bool, to_the_steps: bool) -> None:
        self.apply(self.engine.start(MIXED.id, hands_free=hands_free), answered=True)
        if to_the_steps:
            for command in (C.NO, C.NO, C.READY):
                self.apply(self.engine.act(self.state, command), answered=True)

    @rule(session_id=st.sampled_from(sorted(KNOWLEDGE.sessions)), hands_free=st.booleans())
    def start(self, session_id: str, hands_free: bool) -> None:
        if self.state is None:
            self.apply(self.engine.start(session_id, hands_free=hands_free), answered=True)
        else:
            self.apply((self.state, self.engine.already_running(self.state)), answered=True)

    @rule(command=st.sampled_from(COMMANDS), item=st.integers(0, 3))
    def command(self, command: SessionCommand, item: int) -> None:
        arg = str(item) if command in WITH_NUMBER else None
        self.apply(self.engine.act(self.state, command, arg), answered=True)

    @precondition(lambda self: self.actions)
    @rule(data=st.data())
    def press(self, data: st.DataObject) -> None:
        action = data.draw(st.sampled_from(self.actions))
        self.apply(self.engine.press(self.state, action), answered=True)

    @rule(seconds=st.one_of(st.sampled_from([1.0, 59.0, 60.0, 61.0]), st.floats(0, 400)))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.armed is not None)
    @rule(on_time=st.booleans())
    def timer_fires(self, on_time: bool) -> None:
        timer = self.armed
        assert timer is not None
        self.armed = None  # a fired timer is gone unless the engine arms one again
        if on_time:
            self.clock.current = max(self.clock.current, timer.due_at)
        self.apply(self.engine.on_timer(self.state, timer.token), answered=False)

    @rule(back=st.integers(1, 3))
    def stale_timer_fires(self, back: int) -> None:
        before = self.state
        token = f"{before.run_id}:{before.timer_seq - back}" if before else "gone:1"

        assert self.engine.on_timer(before, token) == (before, Response())

    @rule()
    def restart(self) -> None:
        self.armed = None  # the job queue died with the process
        if self.state is not None:
            saved = json.loads(json.dumps(self.state.to_dict()))
            self.apply(self.engine.restore(SessionState.from_dict(saved)), answered=False)

    @invariant()
    def indexes_stay_in_range(self) -> None:
        if self.state is None:
            return
        session = KNOWLEDGE.sessions[self.state.session_id]
        steps = self.engine.steps(self.state)
        check = KNOWLEDGE.safety_check
        assert len(self.state.answers) <= len(check.questions_for(session.id))
        assert self.state.condition is None or 0 <= self.state.condition <= len(check.conditions)
        assert self.state.variant is None or self.state.variant in session.variants
        assert 0 <= self.state.step_index < len(steps)
        assert 0 <= self.state.steps_done <= len(steps)
        assert all(0 <= i < self.state.steps_done for i in self.state.steps_skipped)
        assert all(0 <= index < len(session.equipment) for index in self.state.ticked)

    @invariant()
    def exactly_the_expected_timer_is_armed(self) -> None:
        if self.state is None or self.state.timer not in (TimerPhase.WARNING, TimerPhase.END):
            assert self.armed is None
            return
        assert self.armed is not None
        assert self.armed.token == timer_token(self.state)
        assert self.state.phase is Phase.STEP and self.state.step_started_at is not None
        seconds = self.engine.steps(self.state)[self.state.step_index].seconds
        assert seconds is not None
        end = self.state.step_started_at + seconds
        warning = self.state.timer is TimerPhase.WARNING
        assert self.armed.due_at == (end - WARNING_BEFORE_END if warning else end)

    @invariant()
    def remaining_time_is_never_negative(self) -> None:
        if self.state is None:
            return
        remaining = self.engine.remaining(self.state)
        step = self.engine.steps(self.state)[self.state.step_index]
        if remaining is None:
            assert self.state.phase is not Phase.STEP or step.seconds is None
        else:
            assert step.seconds is not None
            assert 0 <= remaining <= step.seconds

    @invariant()
    def state_round_trips_through_the_store(self) -> None:
        if self.state is not None:
            saved = json.loads(json.dumps(self.state.to_dict()))
            assert SessionState.from_dict(saved) == self.state


SessionMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
TestSessionMachine = SessionMachine.TestCase
