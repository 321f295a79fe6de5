"""The terminal front end: the same conversation as the Telegram bot, in a console.

Buttons become numbered choices (type the number), or keys where the core gives one (type n
for Next, + for "Helpful"); typing a button's name presses it too ("start", "done"); commands
are the same (/session, /help, …). A picture is a line with the path of its PNG under
DATA_DIR/pictures, drawn the first time it is shown.
Input is read on a helper thread so a step's timer can speak up on time while the person is
not typing. With piped input, each line is one message; at the end of input the chat keeps
running only while a session timer is armed, so `/session` piped in walks through to the end.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from bot.clock import Clock
from bot.conversation import Conversation
from bot.pictures import PictureFiles
from bot.replies import ArmTimer, Button, CancelTimer, Response, offered_buttons

log = logging.getLogger(__name__)

TERMINAL_CHAT_ID = 0
GOODBYE = "Bye! Your progress is saved.\n"
QUIT_WORDS = frozenset({"/quit", "/exit", "quit", "exit", "bye"})


def format_remaining(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


PICTURE_LINE = "🖼 Picture: {path}"


def render_text(
    response: Response, picture_path: Callable[[str], str] | None = None
) -> tuple[str, list[Button]]:
    """Plain text for a response, and the buttons that got numbers; where its picture is
    (`picture_path` gives the file of a picture id, or "").

    A button with a key is shown with it ("[n] Next"): the same key on every screen. The
    others are numbered choices, but only in the last message that has any, so a list shown
    above a session's screen (topics under an answer asked mid-session) never takes the
    numbers of the session's own choices (the safety check's Yes and No); the earlier list
    is still shown, to be named by typing.
    """
    numbered = max(
        (i for i, message in enumerate(response.replies)
         for row in message.buttons for button in row if not button.key),
        default=-1,
    )
    blocks: list[str] = []
    choices: list[Button] = []
    for index, message in enumerate(response.replies):
        lines: list[str] = []
        if message.title:
            lines.append(f"== {message.title} ==")
        path = picture_path(message.picture) if message.picture and picture_path else ""
        if path:
            lines.append(PICTURE_LINE.format(path=path))
        lines.append(message.text)
        for row in message.buttons:
            cells = []
            for button in row:
                if button.key:
                    cells.append(f"[{button.key}] {button.label}")
                elif index == numbered:
                    choices.append(button)
                    cells.append(f"[{len(choices)}] {button.label}")
                else:
                    cells.append(f"· {button.label}")
            lines.append("  " + "   ".join(cells))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks), choices


# A number as people type one when picking from a list: "2", "2.", "2)", "#2", "-1".
TYPED_NUMBER = re.compile(r"#?\s*([-+]?\d{1,6})\s*[.)]?")


def typed_number(text: str) -> int | None:
    """The number `text` picks, or None when it is not just a number."""
    found = TYPED_NUMBER.fullmatch(text)
    return int(found.group(1)) if found else None


def choice_list(choices: list[Button]) -> str:
    """The numbered choices again, on one line, as `render_text` numbered them."""
    return "  " + "   ".join(f"[{n}] {b.label}" for n, b in enumerate(choices, start=1))


@dataclass
class TerminalChat:
    conversation: Conversation
    clock: Clock
    out: TextIO
    chat_id: int = TERMINAL_CHAT_ID
    choices: list[Button] = field(default_factory=list)  # by number, from 1
    offered: tuple[Button, ...] = ()  # all that can be pressed by typing its key or name
    timer: ArmTimer | None = None
    pictures: PictureFiles | None = None  # None: pictures are not shown

    def picture_path(self, picture_id: str) -> str:
        """The PNG of a picture, drawn now if it is not on disk yet; "" if it can't be."""
        picture = self.conversation.knowledge.pictures.get(picture_id)
        if picture is None or self.pictures is None:
            return ""
        try:
            return str(self.pictures.path(picture))
        except (OSError, ImportError) as error:  # a full disk or no Pillow: text still works
            log.warning("cannot draw picture %s: %s", picture_id, error)
            return ""

    def show(self, response: Response) -> None:
        if response.pressed is not None:
            # The pressed message's spent buttons (feedback) can't be pressed again.
            pressed = Response(replies=(response.pressed,))
            _text, self.choices = render_text(pressed)
            self.offered = offered_buttons(pressed)
        text, choices = render_text(response, picture_path=self.picture_path)
        offered = offered_buttons(response)
        if offered:
            # Numbers, keys and names always refer to the latest message that offered buttons.
            self.choices, self.offered = choices, offered
        if text:
            self.out.write(text + "\n\n")
            self.out.flush()
        if isinstance(response.timer, ArmTimer):
            self.timer = response.timer
        elif isinstance(response.timer, CancelTimer):
            self.timer = None

    def handle_line(self, line: str) -> bool:
        """Act on one typed line; False when the person wants to leave."""
        text = line.strip()
        if text.lower() in QUIT_WORDS:
            return False
        number = typed_number(text)
        if number is not None and self.choices:
            if 1 <= number <= len(self.choices):
                action = self.choices[number - 1].action
                self.show(self.conversation.handle_action(self.chat_id, action))
            else:
                self.out.write(f"Pick a number from 1 to {len(self.choices)}:\n")
                self.out.write(choice_list(self.choices) + "\n\n")
            return True
        keys = [button for button in self.offered if button.key]
        if number is not None and keys:
            # A number where only keys are offered (a step): those keys again, not a guess.
            self.out.write("Nothing here has a number. Type a key:\n")
            self.out.write("  " + "   ".join(f"[{b.key}] {b.label}" for b in keys) + "\n\n")
            return True
        if text.startswith("/"):
            command, _, args = text[1:].partition(" ")
            self.show(self.conversation.handle_command(self.chat_id, command, args))
            return True
        self.show(self.conversation.handle_text(self.chat_id, text, self.offered))
        return True

    def seconds_until_timer(self) -> float | None:
        """Real seconds to wait before the armed timer is due, or None without a timer."""
        if self.timer is None:
            return None
        return max(0.0, self.clock.real_seconds(self.timer.due_at - self.clock.now()))

    def fire_timer_if_due(self) -> None:
        timer = self.timer
        if timer is None or timer.due_at > self.clock.now():
            return
        self.timer = None
        self.show(self.conversation.handle_timer(self.chat_id, timer.token))

    def prompt(self) -> str:
        countdown = self.conversation.step_countdown(self.chat_id)
        if countdown is None:
            return "> "
        state = "paused" if countdown.paused else "left"
        return f"[{format_remaining(countdown.seconds_left)} {state}] > "

    def start(self) -> None:
        for chat_id, response in self.conversation.restore():
            if chat_id == self.chat_id:
                # Someone restarting the chat wants to see where they were, even when the
                # step's timer simply carries on; the session's screen alone, not under the
                # welcome and its menu, so its keys are the last thing shown.
                self.show(response if response.replies else response.then(
                    self.conversation.current_screen(chat_id)
                ))
                return
        self.show(self.conversation.handle_start(self.chat_id))


_EOF = object()


def line_buffer() -> str:
    """What the person has typed so far on the prompt line, where readline knows it."""
    try:
        import readline
    except ImportError:  # no readline on this platform: the redraw just loses the echo
        return ""
    return readline.get_line_buffer()


def run_chat(
    chat: TerminalChat,
    read_line: Callable[[str], str],
    interactive: bool,
) -> int:
    """Run the chat until the person leaves (quit, Ctrl-D, Ctrl-C) or piped input ends."""
    lines: queue.Queue[object] = queue.Queue()
    ready = threading.Event()
    # The prompt is worked out on the main thread, which owns the store; the reader only shows it.
    prompt = [""]

    def reader() -> None:
        while True:
            ready.wait()
            ready.clear()
            try:
                lines.put(read_line(prompt[0]))
            except (EOFError, KeyboardInterrupt, ValueError):
                lines.put(_EOF)
                return

    threading.Thread(target=reader, daemon=True, name="terminal-input").start()
    def ask_for_input() -> None:
        prompt[0] = chat.prompt() if interactive else ""
        ready.set()

    input_open = True
    try:
        chat.start()
        ask_for_input()
        while True:
            wait = chat.seconds_until_timer()
            if not input_open and wait is None:
                return 0
            if interactive and wait is not None:
                # Wake every second to redraw the prompt's countdown.
                wait = min(wait, 1.0)
            try:
                item = lines.get(timeout=wait)
            except queue.Empty:
                if interactive:
                    chat.out.write("\r\x1b[K")
                chat.fire_timer_if_due()
                if interactive and input_open:
                    chat.out.write(chat.prompt() + line_buffer())
                    chat.out.flush()
                continue
            if item is _EOF:
                input_open = False
                if interactive:
                    chat.out.write("\n" + GOODBYE)
                    return 0
                continue
            if not chat.handle_line(str(item)):
                chat.out.write(GOODBYE)
                return 0
            chat.fire_timer_if_due()
            ask_for_input()
    except KeyboardInterrupt:
        chat.out.write("\n" + GOODBYE)
        return 0
