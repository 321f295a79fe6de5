"""The dialogue: text, commands, buttons and timers in; transport-free responses out.

Both front ends (Telegram and the terminal) drive this one class, so a person gets the same
answers, menus and guided sessions in either. Every state change is written to the store
before the response is returned, so whatever a front end shows has already been saved.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from bot.checklist import UNTICKED, checklist_reply, progress
from bot.clock import Clock
from bot.knowledge import (
    KIND_TITLES,
    TOPIC_KINDS,
    KnowledgeBase,
    Topic,
    check_knowledge,
    load_knowledge,
)
from bot.matcher import MAX_CANDIDATES, Match, Matcher
from bot.misses import MissesLog, MissesPolicy, privacy_line
from bot.replies import (
    Button,
    CancelTimer,
    Reply,
    Response,
    offered_buttons,
    reply,
    typed_button,
)
from bot.session import (
    SessionCommand,
    SessionEngine,
    SessionState,
    TimerPhase,
    is_session_button,
    parse_command,
)
from bot.settings import Settings
from bot.store import Store

log = logging.getLogger(__name__)

COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "Main menu"),
    ("session", "Start a guided massage, step by step"),
    ("equipment", "Checklist of what to get ready"),
    ("topics", "Browse everything I know"),
    ("settings", "Hands-free mode and pictures on or off"),
    ("stop", "Stop the current session"),
    ("help", "How to use this bot"),
)

EQUIPMENT_LIST = "equipment"
EQUIPMENT_TITLE = "What to get ready"
RELOAD_PROBLEMS_SHOWN = 10
HANDS_FREE_KEY = "hands_free"
PICTURES_KEY = "pictures"

_START_SESSION = re.compile(
    r"^\s*(?:let'?s\s+)?(?:start|begin|do|run|launch)\s+(?:a\s+|the\s+|my\s+)?"
    r"(?:guided\s+)?(?:session|massage)\s*[.!]*\s*$",
    re.IGNORECASE,
)

MENU_BUTTONS: tuple[tuple[Button, ...], ...] = (
    (Button("❓ Ask a question", "menu:ask"), Button("▶️ Guided session", "menu:session")),
    (Button("🧴 Equipment", "menu:equipment"), Button("📚 Browse topics", "menu:topics")),
)

GREETING = (
    "Hi! I help you give a relaxing back massage at home, or a gentle back rub to someone "
    "who spends most of the day in bed.\n\n"
    "• Ask me anything, e.g. \"how do I do petrissage?\" or \"what do I need?\"\n"
    "• Start a guided session and I'll walk you through it step by step, with timers, "
    "while your hands are busy.\n\n"
    "I'm not a substitute for a doctor, nurse or physiotherapist: if something hurts or "
    "worries you, stop and ask one."
)

HELP = (
    "Type a question in your own words, e.g. \"how firm should I press?\" or "
    "\"my dad can't lie on his tummy\".\n\n"
    "Commands:\n"
    "• /session: a guided massage, step by step, with timers\n"
    "• /equipment: a checklist of what to get ready\n"
    "• /topics: browse everything I know\n"
    "• /settings: hands-free mode (steps move on by themselves) and pictures\n"
    "• /stop: stop the current session\n\n"
    "During a session you can also type next, back, repeat, pause, resume, skip or stop, "
    "or any button's word (\"start\", \"done\")."
)

FALLBACK = (
    "Sorry, I can't help with that one. I only know about giving a back massage at home "
    "and a bedside back rub: techniques, what to get ready, positioning, safety, and guided "
    "sessions.\n\n"
    "If you're worried about pain or a health problem, please ask a doctor, nurse or "
    "physiotherapist. If someone has chest pain, can't breathe or has collapsed, stop and "
    "call 999 now (112 in most of Europe, 911 in North America, 000 in Australia)."
)

ASK_PROMPT = (
    "Type your question in your own words, for example:\n"
    "• how do I do effleurage?\n"
    "• what oil can I use?\n"
    "• when should I not massage?"
)

NONE_OF_THESE = (
    "Sorry I didn't get it. Try asking in other words, with the name of a technique or "
    "thing (\"kneading\", \"towels\", \"pillows\"), or browse the topics."
)
DID_YOU_MEAN = "I'm not sure I understood. Did you mean one of these?"
# Feedback under an answer to a question (not under a topic opened from a menu: nothing was
# asked there). One row, gone once pressed.
HELPFUL = "👍 Helpful"
NOT_WHAT_I_ASKED = "👎 Not what I asked"
THANKS = "Thanks, glad it helped!"
OTHER_ANSWERS = "Sorry about that. Did you mean one of these?"

# Said by a front end when handling a message failed; every text a person sees lives here.
SOMETHING_WENT_WRONG = (
    "Sorry, something went wrong on my side. Please try again, or send /start."
)
STALE_BUTTON = "That button is from an old message, so I've left it alone. Here's the menu."
UNSUPPORTED = {
    "sticker": "Nice sticker! I can only read text, though.",
    "photo": "I can't look at photos. If you're worried about a mark on the skin, show it "
    "to a nurse or doctor.",
}
UNSUPPORTED_DEFAULT = "I can only read text messages."


@dataclass(frozen=True)
class Countdown:
    seconds_left: float
    paused: bool


def topic_reply(
    topic: Topic, knowledge: KnowledgeBase, feedback: str = "", caution: str | None = None
) -> Response:
    """A topic's answer with its related topics offered as buttons; with a `feedback` handle
    (the answer to a question), a last row asks whether it helped; with a `caution` topic
    (the question said a warning sign, such as pain), that topic first."""
    buttons = [
        Button(knowledge.topics[related].title, f"topic:{related}")
        for related in topic.related
        if related in knowledge.topics and related != caution
    ]
    rows = [tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2)]
    if caution in knowledge.topics and caution != topic.id:
        rows.insert(0, (Button(f"⚠️ {knowledge.topics[caution].title}", f"topic:{caution}"),))
    if topic.checklist:
        rows.insert(0, (Button("✅ Tick off the checklist", "menu:equipment"),))
    if topic.id == "guided-session":
        rows.insert(0, (Button("▶️ Start a guided session", "menu:session"),))
    if feedback:
        rows.append((
            Button(HELPFUL, f"fb:+:{feedback}:{topic.id}", key="+"),
            Button(NOT_WHAT_I_ASKED, f"fb:-:{feedback}:{topic.id}", key="-"),
        ))
    return reply(topic.answer, title=topic.title, buttons=tuple(rows), picture=topic.picture)


def did_you_mean(text: str, topics: list[str], knowledge: KnowledgeBase, ref: str = ""
                 ) -> Response:
    """Up to MAX_CANDIDATES topics to choose from, and "None of these"; with a misses-log handle
    the choice is recorded against the logged message."""
    rows = tuple(
        (Button(knowledge.topics[topic].title,
                f"dym:{ref}:{topic}" if ref else f"topic:{topic}"),)
        for topic in topics[:MAX_CANDIDATES]
        if topic in knowledge.topics
    )
    none = Button("None of these", f"none:{ref}" if ref else "none")
    return reply(text, buttons=(*rows, (none,)))


def help_reply(privacy: str = "") -> Response:
    text = f"{HELP}\n\n{privacy}" if privacy else HELP
    return reply(text, title="How to use me", buttons=MENU_BUTTONS)


def _with_menu(response: Response) -> Response:
    """A session's last words with the main menu under them, so the person can carry on."""
    if not response.replies or response.replies[-1].buttons:
        return response
    last = replace(response.replies[-1], buttons=MENU_BUTTONS)
    return replace(response, replies=(*response.replies[:-1], last))


def greeting_reply() -> Response:
    return reply(GREETING, title="Back massage helper", buttons=MENU_BUTTONS)


def smalltalk_reply(talk_id: str, knowledge: KnowledgeBase, privacy: str = "") -> Response:
    """A friendly word back for chit-chat, with the main menu: never a knowledge answer."""
    talk = next((t for t in knowledge.smalltalk if t.id == talk_id), None)
    if talk is None or talk.command == "start":
        return greeting_reply()
    if talk.command == "help":
        return help_reply(privacy)
    return reply(talk.reply, buttons=MENU_BUTTONS)


def reply_for_match(
    match: Match, knowledge: KnowledgeBase, ref: str = "", privacy: str = ""
) -> Response:
    """Turn the matcher's decision into what the person sees. `ref` is the misses log's
    handle on it (bot/misses.py), for the buttons that give feedback."""
    if match.decision == "smalltalk" and match.smalltalk is not None:
        return smalltalk_reply(match.smalltalk, knowledge, privacy)
    if match.decision == "answer" and match.topic in knowledge.topics:
        return topic_reply(knowledge.topics[match.topic], knowledge, feedback=ref,
                           caution=match.caution)
    if match.decision == "clarify" and match.candidates:
        return did_you_mean(DID_YOU_MEAN, [c.topic for c in match.candidates], knowledge, ref)
    return reply(FALLBACK, buttons=MENU_BUTTONS)


_Handler = TypeVar("_Handler", bound=Callable[..., Response])


def _pictures_as_chosen(handler: _Handler) -> _Handler:
    """An entry point whose response leaves out pictures for a person who turned them off."""

    @functools.wraps(handler)
    def handle(self: Conversation, chat_id: int, *args: Any, **kwargs: Any) -> Response:
        return self._as_chosen(chat_id, handler(self, chat_id, *args, **kwargs))

    return handle  # type: ignore[return-value]


@dataclass
class Conversation:
    knowledge: KnowledgeBase
    matcher: Matcher
    store: Store
    clock: Clock
    engine: SessionEngine = field(init=False)
    # Whether and how this front end logs misses; None logs nothing (bot/misses.py).
    misses_policy: MissesPolicy | None = None
    misses: MissesLog = field(init=False)

    def __post_init__(self) -> None:
        self.engine = SessionEngine(self.knowledge, self.clock)
        self.misses = MissesLog(self.store, self.misses_policy)

    # --- entry points used by the front ends -------------------------------------------

    @_pictures_as_chosen
    def handle_start(self, chat_id: int, payload: str = "") -> Response:
        """/start, optionally with a deep-link payload: a topic id or session-<id>."""
        payload = payload.strip()
        if payload.startswith("session-") and payload[8:] in self.knowledge.sessions:
            return self._start_session(chat_id, payload[8:])
        if payload in self.knowledge.topics:
            return topic_reply(self.knowledge.topics[payload], self.knowledge)
        return greeting_reply()

    @_pictures_as_chosen
    def handle_command(self, chat_id: int, command: str, args: str = "") -> Response:
        command = command.lower().lstrip("/")
        if command == "start":
            return self.handle_start(chat_id, args)
        if command == "session":
            session_id = args.strip().removeprefix("session-")
            if session_id in self.knowledge.sessions:
                return self._start_session(chat_id, session_id)
            return self._session_picker(chat_id)
        if command == "equipment":
            return self._equipment(chat_id)
        if command == "topics":
            return self._kinds()
        if command == "settings":
            return self._settings(chat_id)
        if command == "stop":
            return self._stop(chat_id)
        if command == "help":
            return help_reply(privacy_line(self.misses_policy))
        return reply(f"I don't know the command /{command}.\n\n{HELP}", buttons=MENU_BUTTONS)

    @_pictures_as_chosen
    def handle_text(self, chat_id: int, text: str, offered: Sequence[Button] = ()) -> Response:
        """A typed message. `offered` are the buttons the front end showed last: a message
        that names one of them (its key, its label, its label's main word) presses it."""
        text = text.strip()
        if not text:
            return reply(ASK_PROMPT)
        state = self._load_state(chat_id)
        if state is not None:
            command = parse_command(text)
            if command is not None:
                return self._session_act(chat_id, state, self.engine.act(state, command))
        button = self._typed_button(state, text, offered)
        if button is not None:
            response = self.handle_action(chat_id, button.action)
            if (state is not None and not is_session_button(button)
                    and not any(map(is_session_button, offered_buttons(response)))):
                # Like a question mid-session: answered, and the session waits where it was.
                response = response.then(self.engine.reminder(state))
            return response
        if _START_SESSION.match(text):
            return self._session_picker(chat_id)
        # The matcher bounds its own work and keeps a long message's question sentences.
        match = self.matcher.match(text)
        log.info("match decision=%s topic=%s", match.decision, match.topic)
        ref = self.misses.note(text, match)
        response = reply_for_match(match, self.knowledge, ref, privacy_line(self.misses_policy))
        if state is not None:
            # A question mid-session is answered and the session waits where it was.
            response = response.then(self.engine.reminder(state))
        return response

    def acts_on_session(self, chat_id: int, text: str, offered: Sequence[Button] = ()) -> bool:
        """Whether typed `text` would act on the chat's running session (a group's front end
        lets only its owner do that)."""
        state = self._load_state(chat_id)
        if state is None:
            return False
        if parse_command(text) is not None:
            return True
        button = self._typed_button(state, text, offered)
        return button is not None and is_session_button(button)

    def _typed_button(
        self, state: SessionState | None, text: str, offered: Sequence[Button]
    ) -> Button | None:
        """The button `text` names: of the running session's screen as it is now, first,
        then of what was shown last (its session buttons may be from an older screen)."""
        if state is None:
            return typed_button(text, offered)
        screen = offered_buttons(self.engine.act(state, SessionCommand.REPEAT)[1])
        others = [b for b in offered if not is_session_button(b)]
        return typed_button(text, (*screen, *others))

    @_pictures_as_chosen
    def handle_action(self, chat_id: int, action: str) -> Response:
        """A pressed button. Unknown, forged or stale actions get a polite reply."""
        kind, _, arg = action.partition(":")
        if kind == "s":
            return self._session_action(chat_id, action)
        if kind == "topic" and arg in self.knowledge.topics:
            return topic_reply(self.knowledge.topics[arg], self.knowledge)
        if kind == "menu":
            return self._menu(chat_id, arg)
        if kind == "kind" and arg in TOPIC_KINDS:
            return self._topics_of_kind(arg)
        if kind == "pick" and arg in self.knowledge.sessions:
            return self._start_session(chat_id, arg)
        if kind == "ck":
            return self._tick(chat_id, arg)
        if kind == "hf" and arg in ("on", "off"):
            return self._set_hands_free(chat_id, arg == "on")
        if kind == "pic" and arg in ("on", "off"):
            self.store.set_preference(chat_id, PICTURES_KEY, "1" if arg == "on" else "0")
            return self._settings(chat_id)
        if kind == "fb":
            sign, _, rest = arg.partition(":")
            ref, _, topic = rest.partition(":")
            if sign in ("+", "-") and ref and topic in self.knowledge.topics:
                return self._feedback(ref, topic, helpful=sign == "+")
        if kind == "dym":
            ref, _, topic = arg.partition(":")
            if topic in self.knowledge.topics:
                self.misses.pick(ref, topic)  # a choice from the offer is feedback too
                return topic_reply(self.knowledge.topics[topic], self.knowledge)
        if kind == "none":
            if arg:
                self.misses.pick(arg, None)
            return reply(NONE_OF_THESE, buttons=((Button("📚 Browse topics", "menu:topics"),),))
        log.info("unknown action %r", action[:64])
        return reply(STALE_BUTTON, buttons=MENU_BUTTONS)

    @_pictures_as_chosen
    def handle_timer(self, chat_id: int, token: str) -> Response:
        state = self._load_state(chat_id)
        if state is None:
            return Response()
        return self._session_act(chat_id, state, self.engine.on_timer(state, token))

    def unsupported(self, chat_id: int, kind: str) -> Response:
        text = UNSUPPORTED.get(kind, UNSUPPORTED_DEFAULT)
        response = reply(f"{text} Type your question, or /help.")
        state = self._load_state(chat_id)
        if state is not None:
            response = response.then(self.engine.reminder(state))
        return response

    def restore(self) -> list[tuple[int, Response]]:
        """At start-up: bring every saved session back, honestly, after a stop or crash."""
        restored: list[tuple[int, Response]] = []
        for chat_id, data in self.store.active_sessions():
            state = self._decode_state(chat_id, data)
            if state is None:
                continue
            outcome = self.engine.restore(state)
            restored.append(
                (chat_id, self._as_chosen(chat_id, self._session_act(chat_id, state, outcome)))
            )
        return restored

    @_pictures_as_chosen
    def restore_chat(self, chat_id: int) -> Response:
        """`restore` for one chat, for a front end that brings thousands back a few at a time
        (and a chat first, the moment its person writes)."""
        state = self._load_state(chat_id)
        if state is None:
            return Response()
        return self._session_act(chat_id, state, self.engine.restore(state))

    def inline_answers(self, query: str, limit: int = 5) -> list[Topic]:
        return [
            self.knowledge.topics[candidate.topic]
            for candidate in self.matcher.search(query, limit=limit)
            if candidate.topic in self.knowledge.topics
        ]

    @_pictures_as_chosen
    def current_screen(self, chat_id: int) -> Response:
        """The running session's current screen again, or nothing when none runs."""
        state = self._load_state(chat_id)
        if state is None:
            return Response()
        return self._session_act(chat_id, state, self.engine.act(state, SessionCommand.REPEAT))

    def reload(self, directory: Path) -> Response:
        """Load the knowledge base again (an admin's /reload); keep the old one if it's invalid.

        Running sessions carry on; the engine ends politely any whose steps changed.
        """
        knowledge, problems = check_knowledge(directory)
        if knowledge is None:
            shown = "\n".join(f"• {problem}" for problem in problems[:RELOAD_PROBLEMS_SHOWN])
            more = len(problems) - RELOAD_PROBLEMS_SHOWN
            extra = f"\n…and {more} more." if more > 0 else ""
            return reply(
                f"Not reloaded: the knowledge base has {len(problems)} problem(s). "
                f"I keep answering from the old one.\n\n{shown}{extra}",
                title="Reload failed",
            )
        self.knowledge = knowledge
        self.matcher = Matcher(knowledge)
        self.engine = SessionEngine(knowledge, self.clock)
        log.info("knowledge base reloaded: %s", knowledge.summary())
        warned = f" {len(problems)} warning(s): run massage-bot check." if problems else ""
        return reply(f"Reloaded: {knowledge.summary()}.{warned}", title="Knowledge base")

    def step_countdown(self, chat_id: int) -> Countdown | None:
        """Time left on the running step's timer, for a front end's countdown."""
        state = self._load_state(chat_id)
        remaining = None if state is None else self.engine.remaining(state)
        if state is None or remaining is None:
            return None
        return Countdown(seconds_left=remaining, paused=state.timer is TimerPhase.PAUSED)

    # --- feedback on answers ----------------------------------------------------------------

    def _feedback(self, ref: str, topic_id: str, helpful: bool) -> Response:
        """👍 or 👎 under an answer: the row goes; after 👎 the next best topics are offered
        (or a hint to ask in other words) and the question goes into the misses log."""
        topic = self.knowledge.topics[topic_id]
        [answer] = topic_reply(topic, self.knowledge).replies
        held = self.misses.close(ref)  # None once given, so a second press records nothing
        if helpful:  # thanked once: a second tap (before the row went) only edits
            return Response(replies=(Reply(THANKS),) if held else (), pressed=answer)
        others: list[tuple[str, float]] = []
        miss = ""
        if held is not None:
            others = [(t, score) for t, score in held.candidates if t != topic_id]
            if not others and held.text:
                # Looser than the match: the topics ranked next, as good as a did-you-mean.
                floor = self.matcher.params.clarify_min
                others = [
                    (c.topic, c.score)
                    for c in self.matcher.search(held.text, limit=MAX_CANDIDATES)
                    if c.topic != topic_id and c.score >= floor
                ]
            others = others[: MAX_CANDIDATES - 1]  # with the answer, a did-you-mean's worth
            answered = next((c for c in held.candidates if c[0] == topic_id), (topic_id, 0.0))
            miss = self.misses.unhelpful(held.text, (answered, *others))
        if not others:
            rephrase = reply(NONE_OF_THESE, buttons=((Button("📚 Browse topics", "menu:topics"),),))
            return Response(replies=rephrase.replies, pressed=answer)
        offer = did_you_mean(OTHER_ANSWERS, [t for t, _ in others], self.knowledge, miss)
        return Response(replies=offer.replies, pressed=answer)

    # --- menus ---------------------------------------------------------------------------

    def _menu(self, chat_id: int, item: str) -> Response:
        if item == "ask":
            return reply(ASK_PROMPT)
        if item == "session":
            return self._session_picker(chat_id)
        if item == "equipment":
            return self._equipment(chat_id)
        if item == "topics":
            return self._kinds()
        return greeting_reply()

    def _kinds(self) -> Response:
        rows = tuple(
            (Button(KIND_TITLES[kind], f"kind:{kind}"),)
            for kind in TOPIC_KINDS
            if self.knowledge.topics_of_kind(kind)
        )
        return reply("Pick a subject:", title="Browse topics", buttons=rows)

    def _topics_of_kind(self, kind: str) -> Response:
        topics = self.knowledge.topics_of_kind(kind)
        buttons = [Button(topic.title, f"topic:{topic.id}") for topic in topics]
        rows = [tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2)]
        rows.append((Button("⬅️ All subjects", "menu:topics"),))
        return reply("Pick a topic:", title=KIND_TITLES[kind], buttons=tuple(rows))

    def _equipment(self, chat_id: int) -> Response:
        topic = self.knowledge.topics.get("equipment")
        items = topic.checklist if topic else ()
        if not items:
            return topic_reply(topic, self.knowledge) if topic else reply(FALLBACK)
        ticked = self.store.ticked(chat_id, EQUIPMENT_LIST)
        checklist = checklist_reply(
            EQUIPMENT_TITLE,
            items,
            ticked,
            tick_action=lambda index: f"ck:{index}",
            extra_rows=((Button("✔️ Done", "ck:done", key="d"),
                         Button("Clear all ticks", "ck:clear")),),
            intro="Tick off what you have ready.",
        )
        return Response(replies=(checklist,))

    def _equipment_done(self, chat_id: int) -> Response:
        """The list closed: how many are ready and what is still to get, and the main menu."""
        topic = self.knowledge.topics.get("equipment")
        items = topic.checklist if topic else ()
        ticked = self.store.ticked(chat_id, EQUIPMENT_LIST)
        missing = [item for index, item in enumerate(items) if index not in ticked]
        if missing:
            text = f"{progress(items, ticked)}. Still to get:\n" + "\n".join(
                f"{UNTICKED} {item}" for item in missing
            )
        else:
            text = "Everything is ready. Enjoy the massage!"
        return reply(text, title=EQUIPMENT_TITLE, buttons=MENU_BUTTONS)

    def _tick(self, chat_id: int, arg: str) -> Response:
        topic = self.knowledge.topics.get("equipment")
        count = len(topic.checklist) if topic else 0
        if arg == "done":
            return self._equipment_done(chat_id)
        if arg == "clear":
            self.store.clear_ticks(chat_id, EQUIPMENT_LIST)
        elif arg.isdigit() and int(arg) < count:
            index = int(arg)
            ticked = index in self.store.ticked(chat_id, EQUIPMENT_LIST)
            self.store.set_tick(chat_id, EQUIPMENT_LIST, index, not ticked)
        else:
            return reply(STALE_BUTTON, buttons=MENU_BUTTONS)
        return self._equipment(chat_id)

    def _settings(self, chat_id: int) -> Response:
        on = self._hands_free(chat_id)
        text = (
            "Hands-free mode is ON: when a timed step ends I announce the next one and start "
            "its timer, so you can keep your hands on the massage."
            if on
            else "Hands-free mode is OFF: when a timed step ends I tell you, then wait for you "
            "to press Next."
        )
        toggle = Button("Turn hands-free off", "hf:off") if on else Button(
            "Turn hands-free on", "hf:on"
        )
        if self.pictures_on(chat_id):
            text += "\n\nPictures are ON: techniques, positions and their steps come with a " \
                "diagram."
            pictures = Button("Turn pictures off", "pic:off")
        else:
            text += "\n\nPictures are OFF: answers and steps are text only."
            pictures = Button("Turn pictures on", "pic:on")
        return reply(text, title="Settings", buttons=((toggle,), (pictures,)))

    def pictures_on(self, chat_id: int) -> bool:
        return self.store.preference(chat_id, PICTURES_KEY, "1") == "1"

    def _as_chosen(self, chat_id: int, response: Response) -> Response:
        """`response` without its pictures when the person turned them off (/settings)."""
        pictures = any(r.picture for r in response.replies) or (
            response.pressed is not None and response.pressed.picture
        )
        if not pictures or self.pictures_on(chat_id):  # no store read when there is none
            return response
        plain = [replace(r, picture="") for r in response.replies]
        pressed = replace(response.pressed, picture="") if response.pressed else None
        return replace(response, replies=tuple(plain), pressed=pressed)

    def _hands_free(self, chat_id: int) -> bool:
        return self.store.preference(chat_id, HANDS_FREE_KEY, "1") == "1"

    def _set_hands_free(self, chat_id: int, on: bool) -> Response:
        self.store.set_preference(chat_id, HANDS_FREE_KEY, "1" if on else "0")
        state = self._load_state(chat_id)
        response = self._settings(chat_id)
        if state is not None:
            response = response.then(
                self._session_act(chat_id, state, self.engine.set_hands_free(state, on))
            )
        return response

    # --- guided sessions -----------------------------------------------------------------

    def _running(self, chat_id: int) -> SessionState | None:
        """The chat's session if its steps have begun. One still in the safety check or the
        checklist has nothing to lose, so starting again replaces it (after advice not to
        massage, say, a person may want the menu's sessions without stopping first)."""
        state = self._load_state(chat_id)
        return state if state is not None and self.engine.started(state) else None

    def _session_picker(self, chat_id: int) -> Response:
        state = self._running(chat_id)
        if state is not None:
            return self.engine.already_running(state)
        rows = tuple(
            (Button(session.title, f"pick:{session.id}"),)
            for session in self.knowledge.sessions.values()
        )
        lines = [f"• {s.title}: {s.summary}" for s in self.knowledge.sessions.values()]
        return reply(
            "Which massage shall we do?\n\n" + "\n".join(lines),
            title="Guided session",
            buttons=rows,
        )

    def _start_session(self, chat_id: int, session_id: str) -> Response:
        state = self._running(chat_id)
        if state is not None:
            return self.engine.already_running(state)
        # Saved over any session still before its steps (see `_running`).
        return self._session_act(
            chat_id, None, self.engine.start(session_id, hands_free=self._hands_free(chat_id))
        )

    def _session_action(self, chat_id: int, action: str) -> Response:
        state = self._load_state(chat_id)
        if state is None:
            return reply(
                "This session has ended. Start a new one whenever you like.",
                buttons=((Button("▶️ Guided session", "menu:session"),),),
            )
        return self._session_act(chat_id, state, self.engine.press(state, action))

    def _stop(self, chat_id: int) -> Response:
        state = self._load_state(chat_id)
        if state is None:
            return Response(
                replies=(Reply("There's no session running.", buttons=MENU_BUTTONS),),
                timer=CancelTimer(),
            )
        return self._session_act(chat_id, state, self.engine.stop(state))

    def _session_act(
        self,
        chat_id: int,
        before: SessionState | None,
        outcome: tuple[SessionState | None, Response],
    ) -> Response:
        """Save the engine's new state, then hand back its response: save before show."""
        after, response = outcome
        if after is None:
            if before is not None:
                self.store.delete_session(chat_id)
                response = _with_menu(response)
        elif after != before:
            self.store.save_session(chat_id, after.to_dict())
            if before is not None and after.hands_free != before.hands_free:
                # Switching hands-free inside a session is also the person's preference.
                self.store.set_preference(chat_id, HANDS_FREE_KEY, "1" if after.hands_free else "0")
        return response

    def _load_state(self, chat_id: int) -> SessionState | None:
        data = self.store.load_session(chat_id)
        return None if data is None else self._decode_state(chat_id, data)

    def _decode_state(self, chat_id: int, data: dict[str, Any]) -> SessionState | None:
        """A stored session, or None (and the row dropped) when it cannot be read back."""
        try:
            return SessionState.from_dict(data)
        except ValueError as error:
            log.warning("dropping unreadable session of chat %s: %s", chat_id, error)
            self.store.delete_session(chat_id)
            return None


def build_conversation(settings: Settings, clock: Clock) -> Conversation:
    """The Telegram bot's conversation over the configured knowledge base and store.

    Raises KnowledgeError (every problem, with file and line) or StoreError (path and reason).
    """
    knowledge = load_knowledge(settings.knowledge_dir)
    store = Store.open(settings.database_path)
    return Conversation(knowledge=knowledge, matcher=Matcher(knowledge), store=store, clock=clock,
                        misses_policy=MissesPolicy.from_settings(settings, "telegram"))
