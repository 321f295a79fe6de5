"""What the core says back: plain data that each front end renders its own way.

Nothing here knows about Telegram or the terminal. Text is plain (no markup): the Telegram
front end escapes it for HTML and makes the title bold; the terminal prints it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

# Telegram's callback data is at most 64 bytes; the front end adds a short version prefix.
MAX_ACTION_BYTES = 56


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # short ASCII string the core understands, e.g. "topic:petrissage"
    # A key a keyboard front end may offer for it instead of a number ("+" for Helpful).
    key: str = ""

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
