"""The terminal chat driven through stdin, in-process with a fast clock and as a real process."""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.clock import ScaledClock
from bot.conversation import Conversation
from bot.knowledge import KnowledgeBase
from bot.matcher import Matcher
from bot.store import Store
from bot.terminal import TerminalChat, format_remaining, run_chat

ROOT = Path(__file__).resolve().parent.parent
SAFETY_NOS = "no\n" * 2  # "none of these", then no to the frailty question


def lines_reader(text: str):  # type: ignore[no-untyped-def]
    source = io.StringIO(text)

    def read_line(_prompt: str) -> str:
        line = source.readline()
        if not line:
            raise EOFError
        return line

    return read_line


def run_in_process(knowledge: KnowledgeBase, tmp_path: Path, text: str, speed: float) -> str:
    clock = ScaledClock(speed=speed)
    store = Store.open(tmp_path / "terminal.sqlite3")
    out = io.StringIO()
    conversation = Conversation(knowledge, Matcher(knowledge), store, clock)
    chat = TerminalChat(conversation=conversation, clock=clock, out=out)
    assert run_chat(chat, read_line=lines_reader(text), interactive=False) == 0
    store.close()
    return out.getvalue()


def test_questions_and_numbered_choices(knowledge: KnowledgeBase, tmp_path: Path) -> None:
    output = run_in_process(knowledge, tmp_path, "what is effleurage\n1\n99\n", speed=1)
    effleurage = knowledge.topics["effleurage"]
    first_related = knowledge.topics[effleurage.related[0]]
    assert f"== {effleurage.title} ==" in output
    assert f"== {first_related.title} ==" in output  # choice 1 opened the first related topic
    assert "Pick a number from 1 to" in output


@pytest.mark.parametrize("typed", ["-1", "9", "0", "#12"])
def test_a_number_out_of_range_gets_one_line_and_the_choices_again(
    knowledge: KnowledgeBase, tmp_path: Path, typed: str
) -> None:
    output = run_in_process(knowledge, tmp_path, f"what is effleurage\n{typed}\n", speed=1)
    first, _, after = output.partition("Pick a number from 1 to")
    count = int(after.split(":")[0])
    repeated = after.split("\n")[1]
    # The same choices as under the answer, no did-you-mean and no fallback.
    assert all(f"[{n}] " in repeated for n in range(1, count + 1))
    assert f"[{count + 1}] " not in repeated
    assert all(cell in first for cell in repeated.strip().split("   "))
    assert "Did you mean" not in after and "not sure" not in after.lower()


def test_a_number_typed_with_a_dot_picks_that_choice(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    output = run_in_process(knowledge, tmp_path, "what is effleurage\n1.\n", speed=1)
    first_related = knowledge.topics[knowledge.topics["effleurage"].related[0]]
    assert f"== {first_related.title} ==" in output


def test_whole_session_runs_hands_free_on_a_fast_clock(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    # Two Nexts pass the untimed set-up steps; after that the timers carry the session along
    # after the input has ended, announcing each step on time.
    script = f"/session\n2\n{SAFETY_NOS}ready\nnext\nnext\n"
    output = run_in_process(knowledge, tmp_path, script, speed=3000)
    steps = knowledge.sessions["quick-back"].steps
    for number, step in enumerate(steps, start=1):
        assert f"Step {number} of {len(steps)}: {step.title}" in output
    assert "1 minute left" in output or "left on" in output
    assert output.index("Time's up") < output.index(f"Step 4 of {len(steps)}")
    # The untimed last step waits for Next: the chat ends there, the session saved.
    assert "Session complete" not in output


def test_a_carer_answering_yes_still_gets_the_skin_check_in_the_terminal(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    # /session, 3 = the bedside rub, 2 = "One of these applies", 1 = "Fever or unwell",
    # 1 = "Skin check only"; then the untimed steps are walked through with "next".
    steps = knowledge.sessions["bedside-back-rub"].steps_in("skin-check-only")
    script = "/session\n3\n2\n1\n1\nready\n" + "next\n" * len(steps)
    output = run_in_process(knowledge, tmp_path, script, speed=3000)
    assert "== What to do instead ==" in output
    assert "[1] ▶️ Skin check only, no rub" in output
    for number, step in enumerate(steps, start=1):
        assert f"Step {number} of {len(steps)}: {step.title}" in output
    assert "Gentle strokes" not in output
    assert f"Steps done: {len(steps)} of {len(steps)}" in output


def test_typed_not_sure_and_back_in_the_terminal(knowledge: KnowledgeBase, tmp_path: Path) -> None:
    # 1 = the full massage; "none of these"; "dont know" to the frailty question counts as
    # yes; "back" changes the answer to "no".
    script = "/session\n1\nnone of these\ndont know\nback\nno\n"
    output = run_in_process(knowledge, tmp_path, script, speed=1)
    assert "Not sure counts as yes." in output
    gentle = output.index("== Get ready: Full back massage: gentle version ==")
    assert output.index("== Get ready: Full back massage ==") > gentle


def test_format_remaining() -> None:
    assert format_remaining(185.4) == "3:05"
    assert format_remaining(-3) == "0:00"


# --- as a real process -------------------------------------------------------------------


def spawn(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "chat", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, cwd=tmp_path,
    )


@pytest.fixture
def output_lines() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def wait_for(process: subprocess.Popen[str], marker: str, timeout: float = 20) -> str:
    """Read the process's output until `marker` shows up."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, ""):
            lines.put(line)
            if marker in line:
                return
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = ""
    while True:
        line = lines.get(timeout=timeout)
        if line is None:
            raise AssertionError(f"{marker!r} never came; output was:\n{seen}")
        seen += line
        if marker in line:
            return seen


def test_piped_question_prints_the_answer_and_exits(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat"],
        input="how do i do petrissage\n", capture_output=True, text=True, timeout=60,
        env={**os.environ, "DATA_DIR": str(tmp_path)}, cwd=tmp_path, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "== Petrissage" in done.stdout
    assert "kneading" in done.stdout.lower()
    assert done.stderr == ""


def test_kill_9_mid_session_loses_nothing(
    tmp_path: Path, output_lines: list[subprocess.Popen[str]]
) -> None:
    first = spawn(tmp_path)
    output_lines.append(first)
    assert first.stdin is not None
    first.stdin.write(f"/session\n2\n{SAFETY_NOS}ready\nnext\nnext\n")
    first.stdin.flush()
    wait_for(first, "Step 3 of 9")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    second = spawn(tmp_path)
    output_lines.append(second)
    out, err = second.communicate("stop\n", timeout=60)
    assert "Step 3 of 9" in out  # restored where the person was, with its timer
    assert "Steps done: 2 of 9" in out or "Steps done: 3 of 9" in out
    assert "Traceback" not in err


def test_ctrl_c_leaves_cleanly(tmp_path: Path, output_lines: list[subprocess.Popen[str]]) -> None:
    process = spawn(tmp_path)
    output_lines.append(process)
    wait_for(process, "Browse topics")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "Bye" in out
    assert "Traceback" not in err


def test_prompt_counts_down_and_shows_a_pause(knowledge: KnowledgeBase, tmp_path: Path) -> None:
    clock = ScaledClock(speed=1)
    with Store.open(tmp_path / "terminal.sqlite3") as store:
        conversation = Conversation(knowledge, Matcher(knowledge), store, clock)
        chat = TerminalChat(conversation=conversation, clock=clock, out=io.StringIO())
        assert chat.prompt() == "> "
        for line in ("/session", "2", *SAFETY_NOS.split(), "ready", "next", "next", "next"):
            chat.handle_line(line)
        # Step 4 of the quick massage lasts 2 min 30 s.
        assert chat.prompt() in ("[2:30 left] > ", "[2:29 left] > ")
        chat.handle_line("pause")
        assert chat.prompt().endswith(" paused] > ")


def test_feedback_keys_under_an_answer_go_once_pressed(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    output = run_in_process(knowledge, tmp_path, "what is effleurage\n+\n+\n", speed=1)
    assert "[+] 👍 Helpful   [-] 👎 Not what I asked" in output
    assert output.count("Thanks, glad it helped!") == 1  # the second + is not a key any more
    # The related topics keep their numbers once the row has gone.
    output = run_in_process(knowledge, tmp_path, "what is effleurage\n+\n1\n", speed=1)
    effleurage = knowledge.topics["effleurage"]
    assert f"== {knowledge.topics[effleurage.related[0]].title} ==" in output


def test_the_summary_says_how_many_steps_were_skipped(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    # The quick massage on a slow clock: the two untimed set-up steps are done with Next,
    # the first timed one is moved on from at once (skipped), and "skip" skips the next.
    script = f"/session\n2\n{SAFETY_NOS}ready\nnext\nnext\nnext\nskip\nstop\n"
    output = run_in_process(knowledge, tmp_path, script, speed=1)
    total = len(knowledge.sessions["quick-back"].steps)
    assert f"Steps done: 2 of {total}, 2 skipped" in output


def test_a_session_saved_by_the_previous_version_resumes(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    # Saved before skipped steps were counted (state version 2): on step 2, one step done.
    now = ScaledClock(speed=1).now()
    old = {
        "version": 2, "run_id": "ab12cd", "session_id": "quick-back", "phase": "step",
        "hands_free": False, "started_at": now - 60, "condition": None, "answers": [False],
        "variant": None, "ticked": [0], "step_index": 1, "step_started_at": now - 10,
        "paused_remaining": None, "timer": "none", "timer_seq": 0, "steps_done": 1,
    }  # fmt: skip
    with Store.open(tmp_path / "terminal.sqlite3") as store:
        store.save_session(0, old)
    output = run_in_process(knowledge, tmp_path, "stop\n", speed=1)
    steps = knowledge.sessions["quick-back"].steps
    assert f"Step 2 of {len(steps)}: {steps[1].title}" in output
    assert f"Steps done: 1 of {len(steps)}\n" in output


# --- the same keys on every screen, and buttons named by typing (issue 11) ----------------


def blocks_titled(output: str, prefix: str) -> list[str]:
    """The screens of `output` whose title starts with `prefix`."""
    return [block for block in output.split("\n\n== ") if block.startswith(prefix)]


def test_a_session_keeps_its_keys_on_every_step_timed_or_not(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    # Slow clock: the timed step 3 stays on screen. Only keys are typed after the check.
    script = f"/session\n2\n{SAFETY_NOS}n\nn\nn\np\np\ns\n"
    output = run_in_process(knowledge, tmp_path, script, speed=1)
    steps = blocks_titled(output, "Step ")
    assert [block.split(":")[0] for block in steps] == ["Step 1 of 9", "Step 2 of 9", "Step 3 of 9"]
    for block in steps:
        assert "  [b] ⬅️ Back   [n] Next ➡️\n  [r] 🔁 Repeat   [s] ⏹ Stop\n  [h] " in block
        assert not re.search(r"\[\d+\]", block)  # no numbers on a step: nothing to choose
    assert "[p] ⏸ Pause" in steps[2] and "[p]" not in steps[0]
    assert "⏸ Paused with" in output and "▶️ Resumed" in output  # p, then p again


def test_a_digit_in_the_safety_check_answers_it_even_after_a_question(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    # On the frailty question, a question; its answer lists related topics. Then "2": No.
    script = "/session\n2\n1\nwhat is effleurage\n2\n"
    output = run_in_process(knowledge, tmp_path, script, speed=1)
    answer, _, after = output.partition("== Effleurage")[2].partition("↩️ Your session is at")
    related = knowledge.topics[knowledge.topics["effleurage"].related[1]].title
    assert f"· {related}" in answer and "[1]" not in answer  # named by typing, not numbered
    assert "  [1] Yes   [2] No\n" in after
    assert "== Get ready: Quick back massage ==" in after  # "2" was No
    assert f"== {related}" not in output


def test_keys_still_work_after_a_question_mid_step(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    script = f"/session\n2\n{SAFETY_NOS}n\nwhat oil can i use\nn\n"
    output = run_in_process(knowledge, tmp_path, script, speed=1)
    oil = output.index("== Oil or lotion")
    assert "  [1] " in output[oil:]  # mid-step, the answer's topics are choices again
    assert output.index("== Step 2 of 9") > oil


@pytest.mark.parametrize(
    ("typed", "seen"),
    [
        ("start", "== Step 1 of 9"),  # "▶️ Ready, start"
        ("ready, start", "== Step 1 of 9"),
        ("large towels", "1 of 6 ready"),  # "⬜ 2 large towels": a word no other item has
        ("back", "== Safety check 2 of 2"),
    ],
)
def test_a_word_of_a_button_typed_presses_it(
    knowledge: KnowledgeBase, tmp_path: Path, typed: str, seen: str
) -> None:
    output = run_in_process(knowledge, tmp_path, f"/session\n2\n{SAFETY_NOS}{typed}\n", speed=1)
    assert seen in output.partition("== Get ready")[2]
    assert "Did you mean" not in output and "can't help" not in output


def test_a_word_several_buttons_share_or_a_question_presses_none(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    # "towel" is on three items; "oil?" is a question about oil, not a tick.
    output = run_in_process(knowledge, tmp_path, f"/session\n2\n{SAFETY_NOS}towel\noil?\n",
                            speed=1)
    assert "1 of 6 ready" not in output
    assert "↩️ Your session is at the equipment checklist." in output


# --- one instruction per screen, one list (issue 11, point 3) --------------------------------


def test_each_step_says_one_instruction_and_timed_ones_do_not_say_press_next(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    # Hands-free off, the full massage walked through with n on a slow clock, then stopped.
    steps = knowledge.sessions["full-back"].steps
    script = "/settings\n1\n/session\n1\nno\nno\nn\n" + "n\n" * (len(steps) - 1) + "s\n"
    output = run_in_process(knowledge, tmp_path, script, speed=1)
    screens = blocks_titled(output, "Step ")
    assert len(screens) == len(steps)
    for screen, step in zip(screens, steps, strict=True):
        text = screen.split("\n  [")[0]  # the words, without the keys under them
        assert text.count("Press ") + text.count("I'll ") == 1, text
        if step.seconds:
            assert "Press" not in text and "I'll tell you when the time is up." in text


def test_a_restart_shows_the_session_without_the_welcome_above_its_keys(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    run_in_process(knowledge, tmp_path, f"/session\n2\n{SAFETY_NOS}n\nn\n", speed=1)
    output = run_in_process(knowledge, tmp_path, "", speed=1)
    assert output.startswith("== Step 2 of 9")
    assert "Back massage helper" not in output and "Ask a question" not in output
    assert output.rstrip().endswith("[h] 🙌 Hands-free: on")  # the session's own keys last


def test_the_equipment_checklist_is_one_compact_list_with_ticks_and_done(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    items = knowledge.topics["equipment"].checklist
    output = run_in_process(knowledge, tmp_path, "/equipment\n1\ndone\n", speed=1)
    lists = blocks_titled(output, "What to get ready")
    assert len(lists) == 3  # the list, the list after the tick, and the list closed
    first, ticked, closed = lists
    assert "Tap" not in output
    for item in items:  # once each, whole, on its own line with its box
        assert first.count(item) == 1 and f"☐ {item}\n" in first
    assert f"[1] ☑ {items[0]}\n" in ticked and f"1 of {len(items)} ready" in ticked
    assert ticked.count(items[1]) == 1
    assert "[d] ✔️ Done" in first
    assert f"1 of {len(items)} ready. Still to get:" in closed
    assert items[0] not in closed and f"☐ {items[1]}" in closed


def test_a_number_on_a_step_gets_its_keys_again_not_a_guess(
    knowledge: KnowledgeBase, tmp_path: Path
) -> None:
    output = run_in_process(knowledge, tmp_path, f"/session\n2\n{SAFETY_NOS}n\n2\n", speed=1)
    after = output.partition("Nothing here has a number. Type a key:\n")[2]
    assert after.startswith("  [b] ⬅️ Back   [n] Next ➡️   [r] 🔁 Repeat")
    assert "Did you mean" not in output and "can't help" not in output
