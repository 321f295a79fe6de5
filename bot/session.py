"""Guided massage sessions: a pure state machine, commands and timer fires in, replies out.

Nothing here sends, sleeps or stores: `SessionEngine` takes the current `SessionState` and an
event and returns the next state (None once the session is over) with a `Response` saying what
to show and which timer to arm or cancel. The caller saves the state before it shows anything,
so a crash between the two loses a message, never the session.

```mermaid
stateDiagram-v2
    [*] --> Safety: start (safety questions exist)
    [*] --> Checklist: start (no questions)
    [*] --> Step: start (no questions, no equipment)
    Safety --> Safety: No, more questions
    Safety --> [*]: Yes, see a professional
    Safety --> Checklist: No to the last question
    Safety --> Step: No to the last question, no equipment
    Checklist --> Checklist: tick item
    Checklist --> Step: Ready / Next
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

Every phase also takes Repeat (show the screen again) and hands-free on/off. A command that
makes no sense where the session is (Back on step 1, Resume when not paused, Pause on an
untimed step) gets a reply saying so and leaves the state as it was.

Button actions look like `s:next:ab12cd:7`: the command, the run id of the session that sent
the button and the number of the screen it was on (safety questions, then the checklist, then
the steps, counted from 0). A button from an ended run or from an earlier screen is caught
instead of acting twice. Timer tokens look like `ab12cd:4`: the run id and a sequence number
bumped whenever a timer is armed, so a late or doubled timer fire is recognised and ignored.
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
from bot.knowledge import GuidedSession, KnowledgeBase, Step
from bot.replies import ArmTimer, Button, CancelTimer, Reply, Response

STATE_VERSION = 1
# The "1 minute left" notice: only steps long enough that a minute is a useful warning get it.
WARNING_BEFORE_END = 60.0
WARNING_MIN_STEP_SECONDS = 120
# A timer may fire a hair early (clock jitter, a sped-up clock); within this it counts as on time.
EARLY_FIRE_TOLERANCE = 1.0
RUN_ID_PATTERN = re.compile(r"^[0-9a-z]{1,12}$")
ACTION_PREFIX = "s"

SAFETY_ADVICE = (
    "That can make a massage unsafe. Please ask a doctor, nurse or physiotherapist before "
    "massaging: they can say whether it is safe and what to avoid.\n\n"
    "I've stopped the session. You can still ask me questions at any time."
)
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
    SAFETY = "safety"
    CHECKLIST = "checklist"
    STEP = "step"


class TimerPhase(StrEnum):
    NONE = "none"  # no timer: an untimed step, or before the steps
    WARNING = "warning"  # the "1 minute left" timer is armed
    END = "end"  # the end-of-step timer is armed
    UP = "up"  # the step's time is up; waiting for Next
    PAUSED = "paused"  # nothing armed; `paused_remaining` holds the time left


ARMED = (TimerPhase.WARNING, TimerPhase.END)


class SessionCommand(StrEnum):
    """What a button or a typed word asks for; the value is used in action strings."""

    YES = "yes"
    NO = "no"
    TICK = "tick"
    READY = "ready"
    NEXT = "next"
    BACK = "back"
    REPEAT = "rep"
    PAUSE = "pause"
    RESUME = "res"
    STOP = "stop"
    CONTINUE = "go"  # "continue", "go on": Resume when paused, otherwise Next
    HANDS_FREE_ON = "hf1"
    HANDS_FREE_OFF = "hf0"


@dataclass(frozen=True)
class SessionState:
    """Where one chat's guided session is. Frozen: the engine returns new states."""

    run_id: str
    session_id: str
    phase: Phase
    hands_free: bool
    started_at: float
    safety_index: int = 0
    ticked: frozenset[int] = frozenset()
    step_index: int = 0
    step_started_at: float | None = None  # clock time the current step's time began
    paused_remaining: float | None = None
    timer: TimerPhase = TimerPhase.NONE
    timer_seq: int = 0
    steps_done: int = 0  # steps moved on from, counted once each even after Back

    def __post_init__(self) -> None:
        # Checked here rather than in from_dict only, so an engine bug shows up at once too.
        if not RUN_ID_PATTERN.match(self.run_id):
            raise ValueError(f"run_id {self.run_id!r} is not 1-12 lowercase letters or digits")
        if not self.session_id or ":" in self.session_id:
            raise ValueError(f"session_id {self.session_id!r} is empty or has a colon")
        for name in ("safety_index", "step_index", "timer_seq", "steps_done"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is negative")
        if any(index < 0 for index in self.ticked):
            raise ValueError("ticked has a negative index")
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
            "safety_index": self.safety_index,
            "ticked": sorted(self.ticked),
            "step_index": self.step_index,
            "step_started_at": self.step_started_at,
            "paused_remaining": self.paused_remaining,
            "timer": self.timer.value,
            "timer_seq": self.timer_seq,
            "steps_done": self.steps_done,
        }

    @classmethod
    def from_dict(cls, data: Any) -> SessionState:
        """The state `to_dict` gave; ValueError for anything else, with what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"session state must be a mapping, not {type(data).__name__}")
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown session state version {data.get('version')!r}")
        keys = set(_STATE_KEYS)
        if set(data) != keys:
            missing = ", ".join(sorted(keys - set(data))) or "none"
            extra = ", ".join(sorted(str(key) for key in set(data) - keys)) or "none"
            raise ValueError(f"session state keys: missing {missing}; unexpected {extra}")
        ticked = data["ticked"]
        if not isinstance(ticked, list):
            raise ValueError("ticked must be a list of item numbers")
        return cls(
            run_id=_typed(data, "run_id", str),
            session_id=_typed(data, "session_id", str),
            phase=Phase(_typed(data, "phase", str)),
            hands_free=_typed(data, "hands_free", bool),
            started_at=_number(data, "started_at"),
            safety_index=_typed(data, "safety_index", int),
            ticked=frozenset(_whole(item, "ticked item") for item in ticked),
            step_index=_typed(data, "step_index", int),
            step_started_at=_optional_number(data, "step_started_at"),
            paused_remaining=_optional_number(data, "paused_remaining"),
            timer=TimerPhase(_typed(data, "timer", str)),
            timer_seq=_typed(data, "timer_seq", int),
            steps_done=_typed(data, "steps_done", int),
        )


_STATE_KEYS = (
    "version", "run_id", "session_id", "phase", "hands_free", "started_at", "safety_index",
    "ticked", "step_index", "step_started_at", "paused_remaining", "timer", "timer_seq",
    "steps_done",
)  # fmt: skip


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
            return self._act_safety(state, command)
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
        if state.phase is not Phase.STEP:
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
                    Button("▶️ Continue", make_action(SessionCommand.REPEAT, state.run_id, index)),
                    Button("⏹ Stop", make_action(SessionCommand.STOP, state.run_id, index)),
                ),
            ),
        )

    def reminder(self, state: SessionState) -> Response:
        """A one-line "the session is waiting here", e.g. after answering a question mid-session."""
        if not self._fits_knowledge(state):
            return Response()
        session = self._session(state)
        if state.phase is Phase.SAFETY:
            questions = len(self.knowledge.safety_check)
            where = f"safety question {state.safety_index + 1} of {questions}"
        elif state.phase is Phase.CHECKLIST:
            where = "the equipment checklist"
        else:
            where = f"step {state.step_index + 1} of {len(session.steps)}"
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

    def _act_safety(
        self, state: SessionState, command: SessionCommand
    ) -> tuple[SessionState | None, Response]:
        questions = self.knowledge.safety_check
        if command is SessionCommand.YES:
            question = questions[state.safety_index]
            return None, Response(
                (
                    Reply(
                        f'You answered Yes to: "{question}"\n\n{SAFETY_ADVICE}',
                        title="Please don't massage for now",
                    ),
                ),
                timer=CancelTimer(),
            )
        if command is SessionCommand.NO:
            if state.safety_index + 1 < len(questions):
                following = replace(state, safety_index=state.safety_index + 1)
                return following, self._show(following)
            return self._after_safety(state)
        return state, self._note(state, "Please answer Yes or No to the safety question first.")

    def _after_safety(self, state: SessionState) -> tuple[SessionState, Response]:
        if self._session(state).equipment:
            checklist = replace(state, phase=Phase.CHECKLIST)
            return checklist, self._show(checklist)
        return self._enter_step(state, 0)

    def _act_checklist(
        self, state: SessionState, command: SessionCommand, arg: str | None
    ) -> tuple[SessionState, Response]:
        if command is SessionCommand.TICK:
            equipment = self._session(state).equipment
            if arg is None or not arg.isdigit() or int(arg) >= len(equipment):
                return state, self._note(state, "There's no such item on the checklist.")
            ticked = replace(state, ticked=state.ticked ^ {int(arg)})
            return ticked, self._show(ticked)
        if command in (SessionCommand.READY, SessionCommand.NEXT, SessionCommand.CONTINUE):
            return self._enter_step(state, 0)
        if command in (SessionCommand.PAUSE, SessionCommand.RESUME):
            text = "Nothing is running yet: the timers start with the first step."
        elif command is SessionCommand.BACK:
            text = "The safety check is done; this checklist is the first screen."
        else:
            text = "There's no question to answer now."
        return state, self._note(
            state, f'{text} Tick what you have ready, then press "Ready, start".'
        )

    def _act_step(
        self, state: SessionState, command: SessionCommand
    ) -> tuple[SessionState | None, Response]:
        if command is SessionCommand.CONTINUE:
            command = (
                SessionCommand.RESUME if state.timer is TimerPhase.PAUSED else SessionCommand.NEXT
            )
        if command is SessionCommand.NEXT:
            return self._advance(state)
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

    def _advance(
        self, state: SessionState, before: Response | None = None
    ) -> tuple[SessionState | None, Response]:
        """Count the current step done and go to the next, or finish after the last."""
        done = replace(state, steps_done=max(state.steps_done, state.step_index + 1))
        if done.step_index + 1 >= len(self._session(done).steps):
            ended, summary = self._summary(done, stopped=False)
        else:
            ended, summary = self._enter_step(done, done.step_index + 1)
        return ended, (before or Response()).then(summary)

    def _summary(self, state: SessionState, stopped: bool) -> tuple[None, Response]:
        session = self._session(state)
        lines = [
            session.title,
            f"Steps done: {state.steps_done} of {len(session.steps)}",
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
        questions = len(self.knowledge.safety_check)
        if state.phase is Phase.SAFETY:
            return state.safety_index
        if state.phase is Phase.CHECKLIST:
            return questions
        return questions + 1 + state.step_index

    def _button(
        self, state: SessionState, label: str, command: SessionCommand, arg: str | None = None
    ) -> Button:
        return Button(label, make_action(command, state.run_id, self._screen(state), arg))

    def _show(self, state: SessionState, note: str = "") -> Response:
        """The current screen again, with `note` on top."""
        if state.phase is Phase.SAFETY:
            screen = self._safety_reply(state)
        elif state.phase is Phase.CHECKLIST:
            screen = self._checklist_reply(state)
        else:
            screen = self._step_reply(state)
        if note:
            screen = replace(screen, text=f"{note}\n\n{screen.text}")
        return Response((screen,))

    def _buttons(self, state: SessionState) -> tuple[tuple[Button, ...], ...]:
        return self._show(state).replies[0].buttons

    def _note(self, state: SessionState, text: str) -> Response:
        """A short message carrying the current screen's buttons, so the next tap is at hand."""
        return Response((Reply(text, buttons=self._buttons(state)),))

    def _hands_free_button(self, state: SessionState) -> Button:
        if state.hands_free:
            return self._button(state, "🙌 Hands-free: on", SessionCommand.HANDS_FREE_OFF)
        return self._button(state, "✋ Hands-free: off", SessionCommand.HANDS_FREE_ON)

    def _safety_reply(self, state: SessionState) -> Reply:
        questions = self.knowledge.safety_check
        text = questions[state.safety_index]
        if state.safety_index == 0:
            intro = (
                f"{self._session(state).title}: before we start, {len(questions)} quick "
                f"{'question' if len(questions) == 1 else 'questions'} about the person "
                "you'll massage. Answer Yes if it applies, or if you're not sure."
            )
            text = f"{intro}\n\n{text}"
        return Reply(
            text,
            title=f"Safety check {state.safety_index + 1} of {len(questions)}",
            buttons=(
                (
                    self._button(state, "Yes", SessionCommand.YES),
                    self._button(state, "No", SessionCommand.NO),
                ),
                (self._button(state, "⏹ Stop", SessionCommand.STOP),),
            ),
        )

    def _checklist_reply(self, state: SessionState) -> Reply:
        session = self._session(state)
        return checklist_reply(
            f"Get ready: {session.title}",
            session.equipment,
            state.ticked,
            lambda index: make_action(
                SessionCommand.TICK, state.run_id, self._screen(state), str(index)
            ),
            extra_rows=(
                (self._button(state, "▶️ Ready, start", SessionCommand.READY),),
                (
                    self._hands_free_button(state),
                    self._button(state, "⏹ Stop", SessionCommand.STOP),
                ),
            ),
            intro="Have these at hand before you start (ticking them off is optional).",
        )

    def _step_reply(self, state: SessionState) -> Reply:
        session = self._session(state)
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
                lines += [
                    timing,
                    "Hands-free: I'll move on when the time is up."
                    if state.hands_free
                    else "Press Next when you're ready.",
                ]
        else:
            lines.append("Press Next when you're ready.")
        return Reply(
            "\n".join(lines),
            title=f"Step {state.step_index + 1} of {len(session.steps)}: {step.title}",
            buttons=self._step_buttons(state),
        )

    def _step_buttons(self, state: SessionState) -> tuple[tuple[Button, ...], ...]:
        last = state.step_index + 1 == len(self._session(state).steps)
        first_row = [self._button(state, "⬅️ Back", SessionCommand.BACK)]
        if state.timer in ARMED:
            first_row.append(self._button(state, "⏸ Pause", SessionCommand.PAUSE))
        elif state.timer is TimerPhase.PAUSED:
            first_row.append(self._button(state, "▶️ Resume", SessionCommand.RESUME))
        first_row.append(
            self._button(state, "✅ Finish" if last else "Next ➡️", SessionCommand.NEXT)
        )
        return (
            tuple(first_row),
            (
                self._button(state, "🔁 Repeat", SessionCommand.REPEAT),
                self._button(state, "⏹ Stop", SessionCommand.STOP),
            ),
            (self._hands_free_button(state),),
        )

    def _time_up_reply(self, state: SessionState, offline: bool) -> Reply:
        session = self._session(state)
        step = self._step(state)
        lines = ["The time for this step was up while I was offline.", ""] if offline else []
        following = state.step_index + 1
        if following < len(session.steps):
            lines.append(
                f"Next up: step {following + 1} of {len(session.steps)}, "
                f'"{session.steps[following].title}". Press Next when you\'re ready.'
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

    def _step(self, state: SessionState) -> Step:
        return self._session(state).steps[state.step_index]

    def _fits_knowledge(self, state: SessionState) -> bool:
        """False if the knowledge changed under a saved session (a restart with new files)."""
        session = self.knowledge.sessions.get(state.session_id)
        if session is None or state.steps_done > len(session.steps):
            return False
        if state.phase is Phase.SAFETY:
            return state.safety_index < len(self.knowledge.safety_check)
        if state.phase is Phase.STEP:
            if state.step_index >= len(session.steps):
                return False
            timed = session.steps[state.step_index].seconds is not None
            return timed == (state.timer is not TimerPhase.NONE)
        return True

    def _changed(self) -> tuple[None, Response]:
        return None, Response((Reply(CHANGED_TEXT),), timer=CancelTimer())


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
        "next", "next step", "next one", "go next", "move on", "forward", "skip", "skip step",
        "skip this", "done", "finish", "finished",
        # Typos of short words, listed because short words are never matched loosely.
        "nxt", "nex", "nexr", "netx", "nect", "nextt", "mext",
    ),
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
    SessionCommand.YES: ("yes", "y", "yeah", "yep", "yup", "yes it does", "yes they do"),
    SessionCommand.NO: ("no", "nope", "nah", "no it doesnt", "no they dont", "none"),
    SessionCommand.HANDS_FREE_ON: (
        "hands free", "hands free on", "handsfree", "handsfree on", "auto", "auto on",
    ),
    SessionCommand.HANDS_FREE_OFF: (
        "hands free off", "handsfree off", "no hands free", "manual", "auto off",
    ),
}  # fmt: skip
# A safety answer is never guessed from a typo: "note" must not answer No to "any fever?".
_EXACT_ONLY = frozenset({SessionCommand.YES, SessionCommand.NO})
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
