"""Guided massage sessions: a pure state machine, commands and timer fires in, replies out.

Nothing here sends, sleeps or stores: `SessionEngine` takes the current `SessionState` and an
event and returns the next state (None once the session is over) with a `Response` saying what
to show and which timer to arm or cancel. The caller saves the state before it shows anything,
so a crash between the two loses a message, never the session.

```mermaid
stateDiagram-v2
    [*] --> Safety: start (a safety check exists)
    [*] --> Checklist: start (no safety check)
    [*] --> Step: start (no safety check, no equipment)
    Safety --> Which: One of these applies
    Safety --> Advice: Not sure
    Safety --> Question: None of these (questions for this session)
    Safety --> Checklist: None of these (no questions)
    Which --> Advice: the condition that applies, or not sure which
    Which --> Safety: Back
    Advice --> Checklist: a variant it offers (skin check only, light strokes)
    Advice --> Which: Back
    Question --> Question: Yes, No or Not sure, more questions
    Question --> Checklist: the last answer (a yes picks the question's variant)
    Question --> Safety: Back from the first
    Checklist --> Checklist: tick item
    Checklist --> Step: Ready / Next
    Checklist --> Question: Back (or Advice, or Safety)
    state Step {
        [*] --> Warning: timed, 2 min or more
        [*] --> End: timed, under 2 min
        [*] --> Untimed: no time
        Warning --> End: warning timer, "1 minute left"
        Warning --> Paused: Pause
        End --> Paused: Pause
        Paused --> Warning: Resume, over 1 min left
        Paused --> End: Resume
        End --> Up: end timer, hands-free off
        Warning --> Up: restart after the time ran out
        End --> Up: restart after the time ran out
    }
    Step --> Step: Next, Back, end timer with hands-free on
    Step --> [*]: Next or hands-free end timer on the last step, summary
    Safety --> [*]: Stop
    Checklist --> [*]: Stop
    Step --> [*]: Stop, summary
```

Everything before step 1 can be gone back over, so a mis-tapped answer is changed with Back.
A yes does not just stop: the advice screen says what to do instead and may offer a
variant of the same session (the knowledge base defines which), and "Not sure" is a yes.

Every phase also takes Repeat (show the screen again) and hands-free on/off. A command that
makes no sense where the session is (Back on step 1, Resume when not paused, Pause on an
untimed step) gets a reply saying so and leaves the state as it was.

Button actions look like `s:next:ab12cd:7`: the command, the run id of the session that sent
the button and the number of the screen it was on (the condition list, which one, the advice,
each question, the checklist, then the steps, counted from 0). A button from an ended run or
from an earlier screen is caught instead of acting twice. Timer tokens look like `ab12cd:4`:
the run id and a sequence number bumped whenever a timer is armed, so a late or doubled timer
fire is recognised and ignored.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, NamedTuple

from rapidfuzz.distance import OSA

from bot.checklist import checklist_reply
from bot.clock import Clock
from bot.knowledge import (
    GuidedSession,
    KnowledgeBase,
    SafetyCondition,
    SafetyQuestion,
    Step,
    Variant,
)
from bot.replies import ArmTimer, Button, CancelTimer, Reply, Response

STATE_VERSION = 3
# The "1 minute left" notice: only steps long enough that a minute is a useful warning get it.
WARNING_BEFORE_END = 60.0
WARNING_MIN_STEP_SECONDS = 120
# Next with more than this share of a timed step's time still to go skips the step: the
# summary counts it skipped, not done. Finishing a little early is still doing the step.
SKIPPED_IF_LEFT_OVER = 0.5
# A timer may fire a hair early (clock jitter, a sped-up clock); within this it counts as on time.
EARLY_FIRE_TOLERANCE = 1.0
RUN_ID_PATTERN = re.compile(r"^[0-9a-z]{1,12}$")
ACTION_PREFIX = "s"

CONDITIONS_INTRO = (
    "{title}: before we start, does any of these apply to the person today? "
    "If you're not sure, count it as yes."
)
WHICH_TEXT = (
    "Which one applies? If more than one does, pick the first of them on the list, and "
    "mention them all when you ask their doctor, nurse or midwife."
)
NOT_SURE_NOTE = "Not sure counts as yes."
ANSWER_FIRST = "Please answer the safety question first: tap a button below."
# Handled by the conversation: the main menu. Nothing here knows what is on it.
MAIN_MENU_ACTION = "menu:home"
STALE_NOTE = "That button was on an earlier message. Here's where we are now."
ENDED_RUN_NOTE = "That button is from a session that has ended. This is the one running now."
UNKNOWN_BUTTON_NOTE = "I don't know that button. Here's where we are now."
ENDED_TEXT = 'This session has ended. Say "start a session" to begin a new one.'
NO_SESSION_TEXT = 'No guided session is running. Say "start a session" to begin one.'
CHANGED_TEXT = (
    "This guided session was changed while I was away (its steps were updated), so I've "
    'ended it. Say "start a session" to begin again.'
)


class Phase(StrEnum):
    SAFETY = "safety"  # the list of conditions: none of these, one applies, not sure
    WHICH = "which"  # which condition applies
    ADVICE = "advice"  # what to do instead, for `condition`
    QUESTION = "question"  # the follow-up questions for this session, one per screen
    CHECKLIST = "checklist"
    STEP = "step"


BEFORE_STEPS = frozenset(
    {Phase.SAFETY, Phase.WHICH, Phase.ADVICE, Phase.QUESTION, Phase.CHECKLIST}
)


class TimerPhase(StrEnum):
    NONE = "none"  # no timer: an untimed step, or before the steps
    WARNING = "warning"  # the "1 minute left" timer is armed
    END = "end"  # the end-of-step timer is armed
    UP = "up"  # the step's time is up; waiting for Next
    PAUSED = "paused"  # nothing armed; `paused_remaining` holds the time left


ARMED = (TimerPhase.WARNING, TimerPhase.END)


class SessionCommand(StrEnum):
    """What a button or a typed word asks for; the value is used in action strings."""

    YES = "yes"  # "One of these applies", or Yes to a question
    NO = "no"  # "None of these", or No to a question
    NOT_SURE = "unsure"  # counts as yes
    PICK = "pick"  # the condition that applies (its number)
    VARIANT = "var"  # go on in a variant the advice offers (its number in the session's list)
    TICK = "tick"
    READY = "ready"
    NEXT = "next"
    SKIP = "skip"  # Next, said as a skip: the step counts skipped
    BACK = "back"
    REPEAT = "rep"
    PAUSE = "pause"
    RESUME = "res"
    STOP = "stop"
    CONTINUE = "go"  # "continue", "go on": Resume when paused, otherwise Next
    HANDS_FREE_ON = "hf1"
    HANDS_FREE_OFF = "hf0"


# One key per action of the session's own, the same on every screen, for a keyboard front
# end to show and take ("n" is Next on a step and Ready on the checklist: both move on).
# The answers of the safety check, the conditions, variants and checklist items have none:
# they are choices, numbered where a front end numbers them.
SESSION_KEYS: dict[SessionCommand, str] = {
    SessionCommand.NEXT: "n", SessionCommand.READY: "n", SessionCommand.BACK: "b",
    SessionCommand.PAUSE: "p", SessionCommand.RESUME: "p", SessionCommand.STOP: "s",
    SessionCommand.REPEAT: "r", SessionCommand.HANDS_FREE_ON: "h",
    SessionCommand.HANDS_FREE_OFF: "h",
}  # fmt: skip


def is_session_button(button: Button) -> bool:
    """True for a button of a guided session (its action is the engine's)."""
    return button.action.startswith(ACTION_PREFIX + ":")


def session_button(label: str, command: SessionCommand, action: str) -> Button:
    """A session button, with its command's key if it has one."""
    return Button(label, action, key=SESSION_KEYS.get(command, ""))


@dataclass(frozen=True)
class SessionState:
    """Where one chat's guided session is. Frozen: the engine returns new states."""

    run_id: str
    session_id: str
    phase: Phase
    hands_free: bool
    started_at: float
    condition: int | None = None  # the condition whose advice is shown (its list position)
    answers: tuple[bool, ...] = ()  # yes/no to this session's questions, in order
    variant: str | None = None  # chosen on the advice screen
    ticked: frozenset[int] = frozenset()
    step_index: int = 0
    step_started_at: float | None = None  # clock time the current step's time began
    paused_remaining: float | None = None
    timer: TimerPhase = TimerPhase.NONE
    timer_seq: int = 0
    steps_done: int = 0  # steps moved on from, counted once each even after Back
    # Of those, the ones moved on from early (Next with most of the time left, or "skip")
    # and not done since; the summary counts them apart.
    steps_skipped: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        # Checked here rather than in from_dict only, so an engine bug shows up at once too.
        if not RUN_ID_PATTERN.match(self.run_id):
            raise ValueError(f"run_id {self.run_id!r} is not 1-12 lowercase letters or digits")
        if not self.session_id or ":" in self.session_id:
            raise ValueError(f"session_id {self.session_id!r} is empty or has a colon")
        for name in ("step_index", "timer_seq", "steps_done"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is negative")
        if self.condition is not None and self.condition < 0:
            raise ValueError("condition is negative")
        if self.phase is Phase.ADVICE and self.condition is None:
            raise ValueError("the advice screen needs its condition")
        if self.condition is not None and self.phase in (Phase.SAFETY, Phase.WHICH, Phase.QUESTION):
            raise ValueError(f"condition is set on the {self.phase} screen")
        if self.condition is not None and self.phase is not Phase.ADVICE and self.variant is None:
            raise ValueError("past the advice screen, a condition comes with the variant chosen")
        if self.variant is not None and not self.variant:
            raise ValueError("variant is empty")
        if any(index < 0 for index in self.ticked):
            raise ValueError("ticked has a negative index")
        if any(not 0 <= index < self.steps_done for index in self.steps_skipped):
            raise ValueError("steps_skipped has a step that was not moved on from")
        if not math.isfinite(self.started_at):
            raise ValueError("started_at is not a finite number")
        if (self.paused_remaining is not None) != (self.timer is TimerPhase.PAUSED):
            raise ValueError("paused_remaining must be set exactly when the timer is paused")
        if self.paused_remaining is not None and not 0 <= self.paused_remaining < math.inf:
            raise ValueError("paused_remaining must be a finite number of seconds, 0 or more")
        if self.timer is not TimerPhase.NONE and (
            self.phase is not Phase.STEP
            or self.step_started_at is None
            or not math.isfinite(self.step_started_at)
        ):
            raise ValueError(f"timer {self.timer} needs a step phase and its start time")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for the store."""
        return {
            "version": STATE_VERSION,
            "run_id": self.run_id,
            "session_id": self.session_id,
            "phase": self.phase.value,
            "hands_free": self.hands_free,
            "started_at": self.started_at,
            "condition": self.condition,
            "answers": list(self.answers),
            "variant": self.variant,
            "ticked": sorted(self.ticked),
            "step_index": self.step_index,
            "step_started_at": self.step_started_at,
            "paused_remaining": self.paused_remaining,
            "timer": self.timer.value,
            "timer_seq": self.timer_seq,
            "steps_done": self.steps_done,
            "steps_skipped": sorted(self.steps_skipped),
        }

    @classmethod
    def from_dict(cls, data: Any) -> SessionState:
        """The state `to_dict` gave; ValueError for anything else, with what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"session state must be a mapping, not {type(data).__name__}")
        if data.get("version") == 1:
            data = _from_version_1(data)
        if data.get("version") == 2:
            data = _from_version_2(data)
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown session state version {data.get('version')!r}")
        keys = set(_STATE_KEYS)
        if set(data) != keys:
            missing = ", ".join(sorted(keys - set(data))) or "none"
            extra = ", ".join(sorted(str(key) for key in set(data) - keys)) or "none"
            raise ValueError(f"session state keys: missing {missing}; unexpected {extra}")
        ticked, answers, skipped = data["ticked"], data["answers"], data["steps_skipped"]
        if not isinstance(ticked, list):
            raise ValueError("ticked must be a list of item numbers")
        if not isinstance(skipped, list):
            raise ValueError("steps_skipped must be a list of step numbers")
        if not isinstance(answers, list) or not all(isinstance(a, bool) for a in answers):
            raise ValueError("answers must be a list of true or false")
        condition, variant = data["condition"], data["variant"]
        return cls(
            run_id=_typed(data, "run_id", str),
            session_id=_typed(data, "session_id", str),
            phase=Phase(_typed(data, "phase", str)),
            hands_free=_typed(data, "hands_free", bool),
            started_at=_number(data, "started_at"),
            condition=None if condition is None else _whole(condition, "condition"),
            answers=tuple(answers),
            variant=None if variant is None else _typed(data, "variant", str),
            ticked=frozenset(_whole(item, "ticked item") for item in ticked),
            step_index=_typed(data, "step_index", int),
            step_started_at=_optional_number(data, "step_started_at"),
            paused_remaining=_optional_number(data, "paused_remaining"),
            timer=TimerPhase(_typed(data, "timer", str)),
            timer_seq=_typed(data, "timer_seq", int),
            steps_done=_typed(data, "steps_done", int),
            steps_skipped=frozenset(_whole(step, "skipped step") for step in skipped),
        )


_STATE_KEYS = (
    "version", "run_id", "session_id", "phase", "hands_free", "started_at", "condition",
    "answers", "variant", "ticked", "step_index", "step_started_at", "paused_remaining",
    "timer", "timer_seq", "steps_done", "steps_skipped",
)  # fmt: skip


def _from_version_1(data: Mapping[str, Any]) -> dict[str, Any]:
    """A state saved before the one-screen safety check, in today's terms.

    Version 1 asked its safety questions one by one; a session still in them starts the check
    again on its first screen. Checklist and steps carry on as they were, in no variant.
    """
    upgraded = {key: value for key, value in data.items() if key != "safety_index"}
    upgraded.update(version=2, condition=None, answers=[], variant=None)
    return upgraded


def _from_version_2(data: Mapping[str, Any]) -> dict[str, Any]:
    """A state saved before skipped steps were counted: none counts as skipped, as before."""
    return {**data, "version": 3, "steps_skipped": []}


def _whole(value: Any, name: str) -> int:
    # bool is an int in Python; true/false in JSON is garbage for a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {value!r}")
    return value


def _typed(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    if kind is int:
        return _whole(value, key)
    if not isinstance(value, kind):
        raise ValueError(f"{key} must be a {kind.__name__}, not {value!r}")
    return value


def _number(data: Mapping[str, Any], key: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number, not {value!r}")
    return float(value)


def _optional_number(data: Mapping[str, Any], key: str) -> float | None:
    return None if data[key] is None else _number(data, key)


def timer_token(state: SessionState) -> str:
    """The token of the timer `state` expects; any other token is stale."""
    return f"{state.run_id}:{state.timer_seq}"


class Action(NamedTuple):
    command: SessionCommand
    run_id: str
    index: int  # the screen the button was on
    arg: str | None  # the item number of a tick


def make_action(command: SessionCommand, run_id: str, index: int, arg: str | None = None) -> str:
    parts = [ACTION_PREFIX, command.value, run_id, str(index)]
    if arg is not None:
        parts.append(arg)
    return ":".join(parts)


_ACTION_PATTERN = re.compile(r"^s:([a-z0-9]{1,8}):([0-9a-z]{1,12}):(\d{1,4})(?::(\d{1,4}))?$")


def parse_action(action: str) -> Action | None:
    """(command, run_id, index, arg) of an `s:` action string, or None if it is not one."""
    match = _ACTION_PATTERN.match(action)
    if match is None:
        return None
    name, run_id, index, arg = match.groups()
    try:
        command = SessionCommand(name)
    except ValueError:
        return None
    return Action(command, run_id, int(index), arg)


def format_duration(seconds: float) -> str:
    """ "45 s", "3 min", "2 min 10 s": how long, the way a person says it."""
    total = max(0, round(seconds))
    minutes, rest = divmod(total, 60)
    if minutes == 0:
        return f"{rest} s"
    return f"{minutes} min" if rest == 0 else f"{minutes} min {rest} s"


def _time_left(seconds: float) -> str:
    # The usual warning fires exactly a minute before the end; say it as people do.
    return "1 minute left" if round(seconds) == 60 else f"{format_duration(seconds)} left"


def _random_run_id() -> str:
    return secrets.token_hex(3)


class SessionEngine:
    """The guided-session state machine over one knowledge base and one clock."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        clock: Clock,
        new_run_id: Callable[[], str] = _random_run_id,
    ) -> None:
        self.knowledge = knowledge
        self.clock = clock
        self.new_run_id = new_run_id

    # --- entry points ---------------------------------------------------------------------

    def start(
        self, session_id: str, hands_free: bool = True
    ) -> tuple[SessionState | None, Response]:
        """Begin `session_id`: the safety check, then the equipment, then the steps."""
        session = self.knowledge.sessions.get(session_id)
        if session is None or not session.steps:
            names = ", ".join(s.title for s in self.knowledge.sessions.values()) or "none"
            return None, _text_reply(f"I don't know that session. Sessions I know: {names}.")
        state = SessionState(
            run_id=self.new_run_id(),
            session_id=session_id,
            phase=Phase.SAFETY,
            hands_free=hands_free,
            started_at=self.clock.now(),
        )
        if self.knowledge.safety_check:
            return state, self._show(state)
        return self._after_safety(state)

    def started(self, state: SessionState) -> bool:
        """True once the steps have begun; before that nothing is lost by starting afresh."""
        return state.phase not in BEFORE_STEPS

    def act(
        self, state: SessionState | None, command: SessionCommand, arg: str | None = None
    ) -> tuple[SessionState | None, Response]:
        """A typed command or a pressed button (after `press` checked it), on the current screen."""
        if state is None:
            return None, _text_reply(NO_SESSION_TEXT)
        if not self._fits_knowledge(state):
            return self._changed()
        if command is SessionCommand.STOP:
            return self.stop(state)
        if command is SessionCommand.REPEAT:
            return state, self._show(state)
        if command in (SessionCommand.HANDS_FREE_ON, SessionCommand.HANDS_FREE_OFF):
            return self.set_hands_free(state, command is SessionCommand.HANDS_FREE_ON)
        if state.phase is Phase.SAFETY:
            return self._act_conditions(state, command)
        if state.phase is Phase.WHICH:
            return self._act_which(state, command, arg)
        if state.phase is Phase.ADVICE:
            return self._act_advice(state, command, arg)
        if state.phase is Phase.QUESTION:
            return self._act_question(state, command)
        if state.phase is Phase.CHECKLIST:
            return self._act_checklist(state, command, arg)
        return self._act_step(state, command)

    def press(
        self, state: SessionState | None, action: str
    ) -> tuple[SessionState | None, Response]:
        """A pressed `s:` button: acts only if it belongs to this run and the current screen."""
        if state is None:
            return None, _text_reply(ENDED_TEXT)
        if not self._fits_knowledge(state):  # before anything below shows the current screen
            return self._changed()
        parsed = parse_action(action)
        if parsed is None:
            return state, self._show(state, UNKNOWN_BUTTON_NOTE)
        if parsed.run_id != state.run_id:
            return state, self._show(state, ENDED_RUN_NOTE)
        if parsed.index != self._screen(state):
            # A double tap, or a tap on an older message: acting would do the step twice.
            return state, self._show(state, STALE_NOTE)
        return self.act(state, parsed.command, parsed.arg)

    def on_timer(
        self, state: SessionState | None, token: str
    ) -> tuple[SessionState | None, Response]:
        """The chat's timer fired with `token`; stale tokens change nothing and say nothing."""
        if state is None or state.timer not in ARMED or token != timer_token(state):
            return state, Response()
        if not self._fits_knowledge(state):
            return self._changed()
        now = self.clock.now()
        due = self._due(state)
        if now < due - EARLY_FIRE_TOLERANCE:
            return state, Response(timer=ArmTimer(due, token))
        end = self._end(state)
        if state.timer is TimerPhase.WARNING and now < end:
            return self._warn(state, end - now)
        return self._time_up(state)

    def restore(self, state: SessionState) -> tuple[SessionState | None, Response]:
        """After a restart: re-arm a timer still to come; own up to one that ran out meanwhile.

        A step whose time ran out while the program was down is shown as finished and the next
        one is offered, never started: the person may not be there any more, and several steps
        must not rush past unseen. A paused session stays paused.
        """
        if not self._fits_knowledge(state):
            return self._changed()
        if state.timer not in ARMED:
            return state, Response()
        now = self.clock.now()
        end = self._end(state)
        if now >= end:
            up = replace(state, timer=TimerPhase.UP)
            return up, Response((self._time_up_reply(up, offline=True),))
        if state.timer is TimerPhase.WARNING and now >= self._due(state):
            return self._warn(state, end - now)
        rearmed = replace(state, timer_seq=state.timer_seq + 1)
        return rearmed, Response(timer=ArmTimer(self._due(rearmed), timer_token(rearmed)))

    def stop(self, state: SessionState) -> tuple[None, Response]:
        """End the session now: a summary if the steps had begun."""
        if not self._fits_knowledge(state):
            return self._changed()
        if state.phase in BEFORE_STEPS:
            return None, Response(
                (
                    Reply(
                        'Nothing was started. Say "start a session" whenever you\'re ready.',
                        title="Session cancelled",
                    ),
                ),
                timer=CancelTimer(),
            )
        return self._summary(state, stopped=True)

    def set_hands_free(self, state: SessionState, on: bool) -> tuple[SessionState | None, Response]:
        """Hands-free on: a step whose time is up moves on by itself; off: it waits for Next."""
        if not self._fits_knowledge(state):
            return self._changed()
        updated = replace(state, hands_free=on)
        text = (
            "🙌 Hands-free is on: when a step's time is up I'll move on by myself."
            if on
            else "✋ Hands-free is off: when a step's time is up I'll wait for you to press Next."
        )
        return updated, self._note(updated, text)

    def already_running(self, state: SessionState) -> Response:
        """The reply to starting a second session while `state` runs."""
        index = self._screen(state)
        return _text_reply(
            "A session is already running: continue it or stop it first.",
            buttons=(
                (
                    session_button(
                        "▶️ Continue", SessionCommand.REPEAT,
                        make_action(SessionCommand.REPEAT, state.run_id, index),
                    ),
                    session_button(
                        "⏹ Stop", SessionCommand.STOP,
                        make_action(SessionCommand.STOP, state.run_id, index),
                    ),
                ),
            ),
        )

    def reminder(self, state: SessionState) -> Response:
        """A one-line "the session is waiting here", e.g. after answering a question mid-session."""
        if not self._fits_knowledge(state):
            return Response()
        if state.phase is Phase.ADVICE:
            return Response()  # they were told what to do instead; no nudging back
        if state.phase in (Phase.SAFETY, Phase.WHICH, Phase.QUESTION):
            where = "the safety check"
        elif state.phase is Phase.CHECKLIST:
            where = "the equipment checklist"
        else:
            where = f"step {state.step_index + 1} of {len(self.steps(state))}"
            remaining = self.remaining(state)
            if state.timer is TimerPhase.PAUSED:
                where += f", paused with {format_duration(remaining or 0)} left"
            elif state.timer in ARMED:
                where += f", {format_duration(remaining or 0)} left"
        return self._note(state, f"↩️ Your session is at {where}.")

    def remaining(self, state: SessionState) -> float | None:
        """Seconds left on the current step's time, or None if it has no time running."""
        if state.phase is not Phase.STEP or state.timer is TimerPhase.NONE:
            return None
        if state.timer is TimerPhase.PAUSED:
            return state.paused_remaining
        if state.timer is TimerPhase.UP:
            return 0.0
        return max(0.0, self._end(state) - self.clock.now())

    # --- phases ---------------------------------------------------------------------------

    def _act_conditions(
        self, state: SessionState, command: SessionCommand
    ) -> tuple[SessionState | None, Response]:
        if command is SessionCommand.NO:
            return self._after_conditions(state)
        if command is SessionCommand.YES:
            which = replace(state, phase=Phase.WHICH)
            return which, self._show(which)
        if command is SessionCommand.NOT_SURE:
            return self._advise(state, len(self.knowledge.safety_check.conditions), NOT_SURE_NOTE)
        if command is SessionCommand.BACK:
            return state, self._note(state, "This is the first question; nothing to go back to.")
        return state, self._note(state, ANSWER_FIRST)

    def _act_which(
        self, state: SessionState, command: SessionCommand, arg: str | None
    ) -> tuple[SessionState | None, Response]:
        conditions = self.knowledge.safety_check.conditions
        if command is SessionCommand.PICK:
            if arg is None or not arg.isdigit() or int(arg) >= len(conditions):
                return state, self._note(state, "That isn't one of the conditions on the list.")
            return self._advise(state, int(arg))
        if command is SessionCommand.NOT_SURE:
            return self._advise(state, len(conditions), NOT_SURE_NOTE)
        if command is SessionCommand.BACK:
            return self._to_conditions(state)
        return state, self._note(state, "Tap the one that applies, or Not sure.")

    def _act_advice(
        self, state: SessionState, command: SessionCommand, arg: str | None
    ) -> tuple[SessionState | None, Response]:
        if command is SessionCommand.VARIANT:
            variants = self._session(state).variants
            known = arg is not None and arg.isdigit() and int(arg) < len(variants)
            chosen = variants[int(arg)] if known and arg is not None else ""
            if chosen not in self._offered_variants(state):
                return state, self._note(state, "That option isn't offered here.")
            return self._after_safety(replace(state, variant=chosen))
        if command is SessionCommand.BACK:
            if state.condition == len(self.knowledge.safety_check.conditions):
                return self._to_conditions(state)  # "not sure" came from the list itself
            which = replace(state, phase=Phase.WHICH, condition=None)
            return which, self._show(which)
        return state, self._note(
            state, "Choose one of the buttons below, or Back if you tapped the wrong answer."
        )

    def _act_question(
        self, state: SessionState, command: SessionCommand
    ) -> tuple[SessionState | None, Response]:
        if command in (SessionCommand.YES, SessionCommand.NO, SessionCommand.NOT_SURE):
            answered = replace(state, answers=(*state.answers, command is not SessionCommand.NO))
            note = NOT_SURE_NOTE if command is SessionCommand.NOT_SURE else ""
            if len(answered.answers) < len(self._questions(state)):
                return answered, self._show(answered, note)
            following, response = self._after_safety(answered)
            return following, _with_note(response, note)
        if command is SessionCommand.BACK:
            if not state.answers:
                return self._to_conditions(state)
            back = replace(state, answers=state.answers[:-1])
            return back, self._show(back)
        return state, self._note(state, ANSWER_FIRST)

    def _to_conditions(self, state: SessionState) -> tuple[SessionState, Response]:
        """Back to the first screen: every answer of the safety check is undone."""
        first = replace(state, phase=Phase.SAFETY, condition=None, answers=(), variant=None)
        return first, self._show(first)

    def _advise(
        self, state: SessionState, condition: int, note: str = ""
    ) -> tuple[SessionState, Response]:
        advice = replace(state, phase=Phase.ADVICE, condition=condition, variant=None)
        return advice, self._show(advice, note)

    def _after_conditions(self, state: SessionState) -> tuple[SessionState, Response]:
        """None of the conditions applies: this session's questions, then the checklist."""
        cleared = replace(state, condition=None, answers=(), variant=None)
        if self._questions(state):
            question = replace(cleared, phase=Phase.QUESTION)
            return question, self._show(question)
        return self._after_safety(cleared)

    def _after_safety(self, state: SessionState) -> tuple[SessionState, Response]:
        if self._session(state).equipment:
            checklist = replace(state, phase=Phase.CHECKLIST)
            return checklist, self._show(checklist)
        entered, response = self._enter_step(state, 0)
        variant = self._variant(entered)
        return entered, _with_note(response, variant.note if variant else "")

    def _act_checklist(
        self, state: SessionState, command: SessionCommand, arg: str | None
    ) -> tuple[SessionState, Response]:
        if command is SessionCommand.TICK:
            equipment = self._session(state).equipment
            if arg is None or not arg.isdigit() or int(arg) >= len(equipment):
                return state, self._note(state, "There's no such item on the checklist.")
            ticked = replace(state, ticked=state.ticked ^ {int(arg)})
            return ticked, self._show(ticked)
        if command in (
            SessionCommand.READY, SessionCommand.NEXT, SessionCommand.SKIP, SessionCommand.CONTINUE
        ):
            return self._enter_step(state, 0)
        if command is SessionCommand.BACK:
            return self._back_from_checklist(state)
        if command in (SessionCommand.PAUSE, SessionCommand.RESUME):
            text = "Nothing is running yet: the timers start with the first step."
        else:
            text = "There's no question to answer now."
        return state, self._note(
            state, f'{text} Tick what you have ready, then press "Ready, start".'
        )

    def _back_from_checklist(self, state: SessionState) -> tuple[SessionState, Response]:
        """The screen before the checklist: the variant's advice, the last question or the list."""
        if state.condition is not None:
            return self._advise(state, state.condition)
        if state.answers:
            back = replace(state, phase=Phase.QUESTION, answers=state.answers[:-1])
            return back, self._show(back)
        if self.knowledge.safety_check:
            return self._to_conditions(state)
        return state, self._note(state, "This checklist is the first screen.")

    def _act_step(
        self, state: SessionState, command: SessionCommand
    ) -> tuple[SessionState | None, Response]:
        if command is SessionCommand.CONTINUE:
            command = (
                SessionCommand.RESUME if state.timer is TimerPhase.PAUSED else SessionCommand.NEXT
            )
        if command in (SessionCommand.NEXT, SessionCommand.SKIP):
            return self._advance(
                state, skipped=command is SessionCommand.SKIP or self._cut_short(state)
            )
        if command is SessionCommand.BACK:
            if state.step_index == 0:
                return state, self._note(
                    state, "This is the first step; there is no step before it."
                )
            return self._enter_step(state, state.step_index - 1)
        if command is SessionCommand.PAUSE:
            return self._pause(state)
        if command is SessionCommand.RESUME:
            return self._resume(state)
        return state, self._note(
            state, "That doesn't apply during a step. Use Next, Back, Pause, Repeat or Stop."
        )

    def _pause(self, state: SessionState) -> tuple[SessionState, Response]:
        if state.timer is TimerPhase.NONE:
            return state, self._note(
                state,
                "This step has no timer, so there's nothing to pause. Take your time and "
                "press Next when you're ready.",
            )
        if state.timer is TimerPhase.PAUSED:
            left = format_duration(state.paused_remaining or 0)
            return state, self._note(
                state, f"Already paused, with {left} left. Press Resume to carry on."
            )
        if state.timer is TimerPhase.UP:
            return state, self._note(
                state,
                "The time for this step is already up, so there's nothing to pause. "
                "Press Next when you're ready.",
            )
        left = max(0.0, self._end(state) - self.clock.now())
        paused = replace(state, timer=TimerPhase.PAUSED, paused_remaining=left)
        text = (
            f"⏸ Paused with {format_duration(left)} left on "
            f'"{self._step(paused).title}". Press Resume when you\'re ready.'
        )
        return paused, Response((Reply(text, buttons=self._buttons(paused)),), timer=CancelTimer())

    def _resume(self, state: SessionState) -> tuple[SessionState, Response]:
        if state.timer is not TimerPhase.PAUSED or state.paused_remaining is None:
            running = " The timer is running." if state.timer in ARMED else ""
            return state, self._note(state, f"Nothing is paused.{running}")
        left = state.paused_remaining
        resumed, order = self._arm(state, left)
        text = f'▶️ Resumed: {format_duration(left)} left on "{self._step(resumed).title}".'
        return resumed, Response((Reply(text, buttons=self._buttons(resumed)),), timer=order)

    # --- steps and timers -----------------------------------------------------------------

    def _enter_step(self, state: SessionState, index: int) -> tuple[SessionState, Response]:
        """Show step `index` and start its time afresh (Back gives the full time again)."""
        entered = replace(
            state,
            phase=Phase.STEP,
            step_index=index,
            step_started_at=self.clock.now(),
            paused_remaining=None,
            timer=TimerPhase.NONE,
        )
        seconds = self._step(entered).seconds
        order: ArmTimer | CancelTimer = CancelTimer()  # leaving a timed step stops its timer
        if seconds:
            entered, order = self._arm(entered, float(seconds))
        return entered, Response((self._step_reply(entered),), timer=order)

    def _arm(self, state: SessionState, left: float) -> tuple[SessionState, ArmTimer]:
        """Run the current step's time with `left` seconds to go: warning first if useful."""
        now = self.clock.now()
        seconds = self._step(state).seconds or 0
        warn = seconds >= WARNING_MIN_STEP_SECONDS and left > WARNING_BEFORE_END
        armed = replace(
            state,
            # Moved so that "start + seconds" is still the end: one formula for the end.
            step_started_at=now + left - seconds,
            paused_remaining=None,
            timer=TimerPhase.WARNING if warn else TimerPhase.END,
            timer_seq=state.timer_seq + 1,
        )
        return armed, ArmTimer(self._due(armed), timer_token(armed))

    def _warn(self, state: SessionState, left: float) -> tuple[SessionState, Response]:
        """The "1 minute left" notice, and the end timer armed in the warning's place."""
        warned = replace(state, timer=TimerPhase.END, timer_seq=state.timer_seq + 1)
        text = f'⏳ {_time_left(left)} on "{self._step(warned).title}".'
        return warned, Response(
            (Reply(text),), timer=ArmTimer(self._end(warned), timer_token(warned))
        )

    def _time_up(self, state: SessionState) -> tuple[SessionState | None, Response]:
        if state.hands_free:
            notice = Reply(f'⏰ Time\'s up for "{self._step(state).title}".')
            return self._advance(state, Response((notice,)))
        up = replace(state, timer=TimerPhase.UP)
        return up, Response((self._time_up_reply(up, offline=False),))

    def _cut_short(self, state: SessionState) -> bool:
        """Whether moving on now leaves most of the step's time unused."""
        seconds = self._step(state).seconds
        left = self.remaining(state)
        return bool(seconds) and left is not None and left > seconds * SKIPPED_IF_LEFT_OVER

    def _advance(
        self, state: SessionState, before: Response | None = None, skipped: bool = False
    ) -> tuple[SessionState | None, Response]:
        """Count the current step done (or skipped) and go to the next, or finish after the last.

        A step done once stays done if it is skipped on a second pass after Back; a skipped
        one done properly later counts done.
        """
        index = state.step_index
        if not skipped:
            skips = state.steps_skipped - {index}
        elif index >= state.steps_done:
            skips = state.steps_skipped | {index}
        else:
            skips = state.steps_skipped
        done = replace(
            state, steps_done=max(state.steps_done, index + 1), steps_skipped=skips
        )
        if done.step_index + 1 >= len(self.steps(done)):
            ended, summary = self._summary(done, stopped=False)
        else:
            ended, summary = self._enter_step(done, done.step_index + 1)
        return ended, (before or Response()).then(summary)

    def _summary(self, state: SessionState, stopped: bool) -> tuple[None, Response]:
        session = self._session(state)
        skipped = len(state.steps_skipped)
        counted = f"Steps done: {state.steps_done - skipped} of {len(self.steps(state))}"
        lines = [
            self._title(state),
            f"{counted}, {skipped} skipped" if skipped else counted,
            f"Time taken: {format_duration(self.clock.now() - state.started_at)}",
        ]
        if state.steps_done and session.aftercare:
            lines += ["", "Aftercare:", *(f"• {line}" for line in session.aftercare)]
        title = "⏹ Session stopped" if stopped else "🎉 Session complete"
        return None, Response((Reply("\n".join(lines), title=title),), timer=CancelTimer())

    def _end(self, state: SessionState) -> float:
        return (state.step_started_at or 0.0) + (self._step(state).seconds or 0)

    def _due(self, state: SessionState) -> float:
        end = self._end(state)
        return end - WARNING_BEFORE_END if state.timer is TimerPhase.WARNING else end

    # --- screens --------------------------------------------------------------------------

    def _screen(self, state: SessionState) -> int:
        """The number of the screen `state` is on; buttons carry it to detect stale presses."""
        questions = len(self._questions(state))
        before_questions = {Phase.SAFETY: 0, Phase.WHICH: 1, Phase.ADVICE: 2}
        if state.phase in before_questions:
            return before_questions[state.phase]
        if state.phase is Phase.QUESTION:
            return 3 + len(state.answers)
        if state.phase is Phase.CHECKLIST:
            return 3 + questions
        return 4 + questions + state.step_index

    def _button(
        self, state: SessionState, label: str, command: SessionCommand, arg: str | None = None
    ) -> Button:
        action = make_action(command, state.run_id, self._screen(state), arg)
        return session_button(label, command, action)

    def _show(self, state: SessionState, note: str = "") -> Response:
        """The current screen again, with `note` on top."""
        if state.phase is Phase.SAFETY:
            screen = self._conditions_reply(state)
        elif state.phase is Phase.WHICH:
            screen = self._which_reply(state)
        elif state.phase is Phase.ADVICE:
            screen = self._advice_reply(state)
        elif state.phase is Phase.QUESTION:
            screen = self._question_reply(state)
        elif state.phase is Phase.CHECKLIST:
            screen = self._checklist_reply(state)
        else:
            screen = self._step_reply(state)
        return _with_note(Response((screen,)), note)

    def _buttons(self, state: SessionState) -> tuple[tuple[Button, ...], ...]:
        return self._show(state).replies[0].buttons

    def _note(self, state: SessionState, text: str) -> Response:
        """A short message carrying the current screen's buttons, so the next tap is at hand."""
        return Response((Reply(text, buttons=self._buttons(state)),))

    def _hands_free_button(self, state: SessionState) -> Button:
        if state.hands_free:
            return self._button(state, "🙌 Hands-free: on", SessionCommand.HANDS_FREE_OFF)
        return self._button(state, "✋ Hands-free: off", SessionCommand.HANDS_FREE_ON)

    def _check_title(self, state: SessionState, number: int) -> str:
        return f"Safety check {number} of {self.knowledge.safety_check.screens(state.session_id)}"

    def _back_and_stop(self, state: SessionState) -> tuple[Button, ...]:
        return (
            self._button(state, "⬅️ Back", SessionCommand.BACK),
            self._button(state, "⏹ Stop", SessionCommand.STOP),
        )

    def _conditions_reply(self, state: SessionState) -> Reply:
        conditions = self.knowledge.safety_check.conditions
        intro = CONDITIONS_INTRO.format(title=self._session(state).title)
        listed = "\n".join(f"• {condition.text}" for condition in conditions)
        return Reply(
            f"{intro}\n\n{listed}",
            title=self._check_title(state, 1),
            buttons=(
                (self._button(state, "✅ None of these", SessionCommand.NO),),
                (
                    self._button(state, "⚠️ One of these applies", SessionCommand.YES),
                    self._button(state, "🤔 Not sure", SessionCommand.NOT_SURE),
                ),
                (self._button(state, "⏹ Stop", SessionCommand.STOP),),
            ),
        )

    def _which_reply(self, state: SessionState) -> Reply:
        conditions = self.knowledge.safety_check.conditions
        picks = [
            self._button(state, condition.button, SessionCommand.PICK, str(index))
            for index, condition in enumerate(conditions)
        ]
        return Reply(
            WHICH_TEXT,
            title=self._check_title(state, 1),
            buttons=(
                *(tuple(picks[i : i + 2]) for i in range(0, len(picks), 2)),
                (self._button(state, "🤔 Not sure which", SessionCommand.NOT_SURE),),
                self._back_and_stop(state),
            ),
        )

    def _condition(self, state: SessionState) -> SafetyCondition:
        check = self.knowledge.safety_check
        index = state.condition or 0
        if index < len(check.conditions):
            return check.conditions[index]
        assert check.not_sure is not None  # the loader requires it with any condition
        return check.not_sure

    def _offered_variants(self, state: SessionState) -> tuple[str, ...]:
        """The variants the advice screen offers: the session's own after any yes, and the
        condition's once a professional agrees, where the session can run them."""
        session = self._session(state)
        wanted = (session.unsafe_variant, self._condition(state).allows)
        return tuple(v for v in session.variants if v in wanted)

    def _advice_reply(self, state: SessionState) -> Reply:
        condition = self._condition(state)
        session = self._session(state)
        offered = self._offered_variants(state)
        variants = [self.knowledge.variants[v] for v in offered]
        text = "\n\n".join([condition.advice, *(variant.offer for variant in variants)])
        rows: list[tuple[Button, ...]] = [
            (
                self._button(
                    state, f"▶️ {variant.button}", SessionCommand.VARIANT,
                    str(session.variants.index(variant.id)),
                ),
            )
            for variant in variants
        ]
        topics = [
            Button(self.knowledge.topics[ref].title, f"topic:{ref}")
            for ref in condition.related
            if ref in self.knowledge.topics
        ]
        rows += [tuple(topics[i : i + 2]) for i in range(0, len(topics), 2)]
        rows.append((Button("🏠 Main menu", MAIN_MENU_ACTION),))
        rows.append(self._back_and_stop(state))
        unsure = condition is self.knowledge.safety_check.not_sure
        title = "Not sure? Then ask first" if unsure else "What to do instead"
        return Reply(text, title=title, buttons=tuple(rows))

    def _question_reply(self, state: SessionState) -> Reply:
        question = self._questions(state)[len(state.answers)]
        return Reply(
            question.text,
            title=self._check_title(state, 2 + len(state.answers)),
            buttons=(
                (
                    self._button(state, "Yes", SessionCommand.YES),
                    self._button(state, "No", SessionCommand.NO),
                ),
                (self._button(state, "🤔 Not sure", SessionCommand.NOT_SURE),),
                self._back_and_stop(state),
            ),
        )

    def _checklist_reply(self, state: SessionState) -> Reply:
        session = self._session(state)
        variant = self._variant(state)
        intro = "Have these at hand before you start (ticking them off is optional)."
        back_row: tuple[Button, ...] = (
            self._back_and_stop(state)
            if self.knowledge.safety_check
            else (self._button(state, "⏹ Stop", SessionCommand.STOP),)
        )
        return checklist_reply(
            f"Get ready: {self._title(state)}",
            session.equipment,
            state.ticked,
            lambda index: make_action(
                SessionCommand.TICK, state.run_id, self._screen(state), str(index)
            ),
            extra_rows=(
                (self._button(state, "▶️ Ready, start", SessionCommand.READY),),
                (self._hands_free_button(state),),
                back_row,
            ),
            intro=f"{variant.note}\n\n{intro}" if variant else intro,
        )

    def _step_reply(self, state: SessionState) -> Reply:
        steps = self.steps(state)
        step = self._step(state)
        lines = [step.text, ""]
        if step.seconds:
            timing = f"⏱ {format_duration(step.seconds)}"
            left = self.remaining(state) or 0.0
            if state.timer is TimerPhase.PAUSED:
                lines += [
                    f"{timing}: paused with {format_duration(left)} left.",
                    "Press Resume to carry on.",
                ]
            elif state.timer is TimerPhase.UP:
                lines += [f"{timing}: time's up.", "Press Next when you're ready."]
            else:
                if left < step.seconds - 0.5:  # not fresh: Repeat or a reminder mid-step
                    timing += f" ({format_duration(left)} left)"
                # While the time runs, one instruction: what happens when it is up (Next
                # is on the screen for moving on early, and saying so would contradict it).
                lines += [
                    timing,
                    "Hands-free: I'll move on when the time is up."
                    if state.hands_free
                    else "I'll tell you when the time is up.",
                ]
        else:
            lines.append("Press Next when you're ready.")
        return Reply(
            "\n".join(lines),
            title=f"Step {state.step_index + 1} of {len(steps)}: {step.title}",
            buttons=self._step_buttons(state),
            picture=step.picture,
        )

    def _step_buttons(self, state: SessionState) -> tuple[tuple[Button, ...], ...]:
        """The same rows on every step, timed or not: Pause or Resume, only where there is a
        timer, comes last, so no other button moves when it comes and goes."""
        last = state.step_index + 1 == len(self.steps(state))
        rows: list[tuple[Button, ...]] = [
            (
                self._button(state, "⬅️ Back", SessionCommand.BACK),
                self._button(state, "✅ Finish" if last else "Next ➡️", SessionCommand.NEXT),
            ),
            (
                self._button(state, "🔁 Repeat", SessionCommand.REPEAT),
                self._button(state, "⏹ Stop", SessionCommand.STOP),
            ),
            (self._hands_free_button(state),),
        ]
        if state.timer in ARMED:
            rows.append((self._button(state, "⏸ Pause", SessionCommand.PAUSE),))
        elif state.timer is TimerPhase.PAUSED:
            rows.append((self._button(state, "▶️ Resume", SessionCommand.RESUME),))
        return tuple(rows)

    def _time_up_reply(self, state: SessionState, offline: bool) -> Reply:
        steps = self.steps(state)
        step = self._step(state)
        lines = ["The time for this step was up while I was offline.", ""] if offline else []
        following = state.step_index + 1
        if following < len(steps):
            lines.append(
                f"Next up: step {following + 1} of {len(steps)}, "
                f'"{steps[following].title}". Press Next when you\'re ready.'
            )
        else:
            lines.append("That was the last step. Press Finish for the summary.")
        return Reply(
            "\n".join(lines),
            title=f"⏰ Time's up: {step.title}",
            buttons=self._step_buttons(state),
        )

    # --- knowledge ------------------------------------------------------------------------

    def _session(self, state: SessionState) -> GuidedSession:
        return self.knowledge.sessions[state.session_id]

    def _questions(self, state: SessionState) -> tuple[SafetyQuestion, ...]:
        return self.knowledge.safety_check.questions_for(state.session_id)

    def _variant_id(self, state: SessionState) -> str | None:
        """The chosen variant, or the first one a yes to a question picked."""
        if state.variant is not None:
            return state.variant
        for question, yes in zip(self._questions(state), state.answers, strict=False):
            if yes:
                return question.variant
        return None

    def _variant(self, state: SessionState) -> Variant | None:
        variant_id = self._variant_id(state)
        return None if variant_id is None else self.knowledge.variants.get(variant_id)

    def _title(self, state: SessionState) -> str:
        variant = self._variant(state)
        title = self._session(state).title
        return f"{title}: {variant.name}" if variant else title

    def steps(self, state: SessionState) -> tuple[Step, ...]:
        """The steps `state` runs: the session's, as its variant adapts them."""
        return self._session(state).steps_in(self._variant_id(state))

    def _step(self, state: SessionState) -> Step:
        return self.steps(state)[state.step_index]

    def _fits_knowledge(self, state: SessionState) -> bool:
        """False if the knowledge changed under a saved session (a restart with new files)."""
        session = self.knowledge.sessions.get(state.session_id)
        if session is None:
            return False
        variant = self._variant_id(state)
        if variant is not None and (
            variant not in session.variants or variant not in self.knowledge.variants
        ):
            return False
        steps = session.steps_in(variant)
        if state.steps_done > len(steps):
            return False
        check = self.knowledge.safety_check
        questions = check.questions_for(state.session_id)
        if state.phase in (Phase.SAFETY, Phase.WHICH, Phase.ADVICE) and not check:
            return False
        if state.condition is not None and state.condition > len(check.conditions):
            return False
        if state.phase is Phase.QUESTION:
            return len(state.answers) < len(questions)
        if len(state.answers) > len(questions):
            return False
        if state.phase is Phase.STEP:
            if state.step_index >= len(steps):
                return False
            timed = steps[state.step_index].seconds is not None
            return timed == (state.timer is not TimerPhase.NONE)
        return True

    def _changed(self) -> tuple[None, Response]:
        return None, Response((Reply(CHANGED_TEXT),), timer=CancelTimer())


def _with_note(response: Response, note: str) -> Response:
    """`response` with `note` on top of its first message (unchanged without a note)."""
    if not note or not response.replies:
        return response
    first, *rest = response.replies
    return replace(response, replies=(replace(first, text=f"{note}\n\n{first.text}"), *rest))


def _text_reply(text: str, buttons: tuple[tuple[Button, ...], ...] = ()) -> Response:
    return Response((Reply(text, buttons=buttons),))


# --- typed commands ---------------------------------------------------------------------

# Words that carry no command ("next please", "ok stop"); a message of only these is no command.
_FILLERS = frozenset(
    {"please", "pls", "plz", "now", "the", "a", "ok", "okay", "then", "and", "so", "um", "uh",
     "hey", "just"}
)  # fmt: skip
# Longer messages are questions or chat, not commands ("what is the next technique").
MAX_COMMAND_WORDS = 3
MAX_MESSAGE_WORDS = 5
_PHRASES: dict[SessionCommand, tuple[str, ...]] = {
    SessionCommand.NEXT: (
        "next", "next step", "next one", "go next", "move on", "forward", "done", "finish",
        "finished",
        # Typos of short words, listed because short words are never matched loosely.
        "nxt", "nex", "nexr", "netx", "nect", "nextt", "mext",
    ),
    SessionCommand.SKIP: ("skip", "skip step", "skip this", "skip it", "skip this step"),
    SessionCommand.CONTINUE: (
        "continue", "go on", "carry on", "keep going", "go", "ready", "ready start", "lets go",
    ),
    SessionCommand.BACK: (
        "back", "go back", "previous", "prev", "previous step", "step back", "back one",
        "bakc", "bck", "bak", "bac",
    ),
    SessionCommand.REPEAT: (
        "repeat", "again", "say again", "repeat step", "repeat that", "once more", "show again",
        "show step", "where was i", "where am i",
    ),
    SessionCommand.PAUSE: (
        "pause", "wait", "hold on", "hold", "hang on", "one moment", "one sec", "one second",
        "just a sec", "just a moment", "pause timer", "stop timer", "stop the timer", "break",
        "paus", "wiat",
    ),
    SessionCommand.RESUME: ("resume", "unpause", "resume timer", "im back", "start timer"),
    SessionCommand.STOP: (
        "stop", "stop session", "end", "end session", "quit", "exit", "cancel", "stop massage",
        "end massage", "stop it", "cancel session",
        "stpo", "sotp", "stp", "qiut", "quti",
    ),
    SessionCommand.YES: (
        "yes", "y", "yeah", "yep", "yup", "yes it does", "yes they do", "one applies",
        "one of these", "one of them", "yes one applies",
    ),
    SessionCommand.NO: (
        "no", "nope", "nah", "no it doesnt", "no they dont", "none", "none of these",
        "none of them", "none apply",
    ),
    SessionCommand.NOT_SURE: (
        "not sure", "im not sure", "unsure", "maybe", "perhaps", "possibly", "dont know",
        "i dont know", "do not know", "dunno", "idk", "no idea", "not certain", "cant say",
    ),
    SessionCommand.HANDS_FREE_ON: (
        "hands free", "hands free on", "handsfree", "handsfree on", "auto", "auto on",
    ),
    SessionCommand.HANDS_FREE_OFF: (
        "hands free off", "handsfree off", "no hands free", "manual", "auto off",
    ),
}  # fmt: skip
# A safety answer is never guessed from a typo: "note" must not answer No to "any fever?".
_EXACT_ONLY = frozenset({SessionCommand.YES, SessionCommand.NO, SessionCommand.NOT_SURE})
# Real words one typo away from a command; alone they mean something else.
_NEVER_COMMANDS = frozenset({"cancer", "read", "reads", "precious"})
# Loose matching starts at this length: below it, one typo turns a word into another word.
_FUZZY_MIN_CHARS = 5


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("'", "").replace("\u2019", ""))


def _normalized(text: str) -> str:
    return " ".join(word for word in _words(text) if word not in _FILLERS)


_COMMAND_OF_PHRASE: dict[str, SessionCommand] = {
    _normalized(phrase): command for command, phrases in _PHRASES.items() for phrase in phrases
}


def parse_command(text: str) -> SessionCommand | None:
    """The session command a short typed message means, or None if it is not one.

    Conservative: at most three meaningful words, so "what is the next technique" is a
    question, not Next. Typos are forgiven only in words of five letters or more with the same
    first letter, one slip for short phrases, two for long ones; safety answers must be exact.
    """
    words = _words(text)
    if not words or len(words) > MAX_MESSAGE_WORDS:
        return None
    phrase = _normalized(text)
    if not phrase or len(phrase.split()) > MAX_COMMAND_WORDS or phrase in _NEVER_COMMANDS:
        return None
    exact = _COMMAND_OF_PHRASE.get(phrase)
    if exact is not None:
        return exact
    best: set[SessionCommand] = set()
    best_distance = math.inf
    for candidate, command in _COMMAND_OF_PHRASE.items():
        if command in _EXACT_ONLY or len(candidate) < _FUZZY_MIN_CHARS or candidate[0] != phrase[0]:
            continue
        limit = 1 if len(candidate) < 8 else 2
        distance = OSA.distance(phrase, candidate, score_cutoff=limit)
        if distance > limit:
            continue
        if distance < best_distance:
            best, best_distance = {command}, distance
        elif distance == best_distance:
            best.add(command)
    # Two commands equally close: a guess could do the wrong thing, so none.
    return best.pop() if len(best) == 1 else None
