"""What the core says back: plain data that each front end renders its own way.

Nothing here knows about Telegram or the terminal. Text is plain (no markup): the Telegram
front end escapes it for HTML and makes the title bold; the terminal prints it as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.wording import STOP_WORDS, raw_words, stem

# Telegram's callback data is at most 64 bytes; the front end adds a short version prefix.
MAX_ACTION_BYTES = 56


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # short ASCII string the core understands, e.g. "topic:petrissage"
    # A key a keyboard front end may offer for it instead of a number ("+" for Helpful).
    key: str = ""
    # A shorter label for a front end that shows buttons in a narrow space; it spells out
    # the whole `label` elsewhere, since the cut may lose words someone needs.
    short: str = ""

    def __post_init__(self) -> None:
        if len(self.action.encode()) > MAX_ACTION_BYTES:
            raise ValueError(f"action {self.action!r} is longer than {MAX_ACTION_BYTES} bytes")


@dataclass(frozen=True)
class Reply:
    text: str
    title: str = ""
    buttons: tuple[tuple[Button, ...], ...] = ()  # rows of buttons
    # The id of a diagram shown with the text (knowledge `pictures:`); "" for none. Each
    # front end shows it its own way: Telegram as a photo, the terminal as a file path.
    picture: str = ""


@dataclass(frozen=True)
class ArmTimer:
    """Arm the chat's one timer to fire at `due_at` (clock seconds), replacing any other.

    The front end calls back with `token`; the core ignores a token that is no longer current,
    so a timer that fires late or twice does no harm.
    """

    due_at: float
    token: str


@dataclass(frozen=True)
class CancelTimer:
    """Cancel the chat's timer, if any."""


TimerOrder = ArmTimer | CancelTimer


@dataclass(frozen=True)
class Response:
    replies: tuple[Reply, ...] = ()
    timer: TimerOrder | None = None  # None: leave the chat's timer as it is
    # What the message whose button was pressed shows from now on (its spent buttons gone);
    # None leaves it as it is. A front end that cannot change a shown message drops those
    # buttons from what can still be pressed.
    pressed: Reply | None = None

    def then(self, other: Response) -> Response:
        """This response followed by another; the later timer order and pressed message win."""
        return Response(
            replies=self.replies + other.replies,
            timer=other.timer if other.timer is not None else self.timer,
            pressed=other.pressed if other.pressed is not None else self.pressed,
        )


def reply(text: str, title: str = "", buttons: tuple[tuple[Button, ...], ...] = (),
          picture: str = "") -> Response:
    return Response(replies=(Reply(text=text, title=title, buttons=buttons, picture=picture),))


def offered_buttons(response: Response) -> tuple[Button, ...]:
    """Every button `response` shows, in order: what a person can press (or name) next."""
    return tuple(b for message in response.replies for row in message.buttons for b in row)


# A typed message this long is a question or a story, not words of a button (unless it is
# the button's whole label).
MAX_BUTTON_WORDS = 3


def _content_words(words: list[str]) -> frozenset[str]:
    return frozenset(stem(w) for w in words if w not in STOP_WORDS and not w.isdigit())


def typed_button(text: str, buttons: Iterable[Button]) -> Button | None:
    """The button a typed message names, or None: its key ("n"), its whole label ("ready,
    start", "done"), or words of its label that no other button has ("start" for "▶️ Ready,
    start"). A question ("oil?") names no button; `buttons` come first to last in priority.
    """
    typed = text.strip().lower()
    if not typed or "?" in typed:
        return None
    words = raw_words(typed)
    unique: dict[str, Button] = {}
    for button in buttons:
        unique.setdefault(button.action, button)
    candidates = list(unique.values())
    for button in candidates:
        if button.key and typed == button.key:
            return button
    if not words:
        return None
    for button in candidates:
        if raw_words(button.label) == words:
            return button
    wanted = _content_words(words)
    if not wanted or len(words) > MAX_BUTTON_WORDS:
        return None
    named = [b for b in candidates if wanted <= _content_words(raw_words(b.label))]
    return named[0] if len(named) == 1 else None
