"""The README's transcript of a guided session in the terminal chat: real output, made here.

`make readme` (python tests/readme_transcript.py --write) writes it into README.md between
the markers; tests/test_readme.py fails when README.md no longer shows what the chat says.

The real terminal front end (TerminalChat, as `massage-bot chat` runs it) is fed the lines a
person would type, each shown after the prompt the chat would show; the clock is a FakeClock
moved on to each timer's end, so the transcript is the same on every machine.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

from bot.clock import FakeClock
from bot.conversation import Conversation
from bot.knowledge import load_knowledge
from bot.matcher import Matcher
from bot.store import Store
from bot.terminal import TerminalChat

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BEGIN = "<!-- transcript: made by `make readme` (tests/readme_transcript.py); do not edit -->"
END = "<!-- end of transcript -->"
WAIT = None  # in the script: let the armed timer run out
# /session, the quick massage, no to both safety questions, "start" (the button's word), two
# untimed steps (by key, then by word), the oil's 30 s running out (hands-free moves on), then
# stop by its key.
SCRIPT: tuple[str | None, ...] = ("/session", "2", "no", "no", "start", "n", "next", WAIT, "s")


def transcript(knowledge_dir: Path = ROOT / "knowledge") -> str:
    """What the terminal chat shows for SCRIPT, typed lines after their prompts."""
    knowledge = load_knowledge(knowledge_dir)
    clock = FakeClock()
    out = io.StringIO()
    with tempfile.TemporaryDirectory() as data, Store.open(Path(data) / "t.sqlite3") as store:
        chat = TerminalChat(
            conversation=Conversation(knowledge, Matcher(knowledge), store, clock),
            clock=clock, out=out,
        )
        for line in SCRIPT:
            if line is WAIT:
                assert chat.timer is not None, "the script waits where no timer runs"
                clock.current = max(clock.current, chat.timer.due_at)
                chat.fire_timer_if_due()
                continue
            out.write(chat.prompt() + line + "\n")
            assert chat.handle_line(line)
    # Trailing spaces would be lost by editors and break the comparison for nothing.
    return "\n".join(row.rstrip() for row in out.getvalue().rstrip().splitlines())


def block(text: str) -> str:
    return f"{BEGIN}\n```text\n{text}\n```\n{END}"


def shown_in(readme: str) -> str | None:
    """The block README.md shows now, or None without the markers."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        return None
    return readme[start:end + len(END)]


def main(argv: list[str]) -> int:
    readme = README.read_text(encoding="utf-8")
    current = shown_in(readme)
    if current is None:
        print(f"{README}: no transcript markers ({BEGIN!r} … {END!r})", file=sys.stderr)
        return 1
    fresh = block(transcript())
    if "--write" not in argv:
        print(fresh)
        return 0
    if fresh != current:
        README.write_text(readme.replace(current, fresh), encoding="utf-8")
        print(f"{README}: transcript regenerated")
    else:
        print(f"{README}: transcript already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
