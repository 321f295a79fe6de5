"""`massage-bot chat --speed`: a session saved by one run keeps its times in the next."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bot.clock import ScaledClock, carry_on

SPEED = 60
# The full massage: four untimed steps, the oil (30 s), then effleurage for 5 minutes.
TO_EFFLEURAGE = "/session\n1\nno\nno\nready\n" + "next\n" * 4
EFFLEURAGE = "Step 6 of 13: Effleurage"
EFFLEURAGE_SECONDS = 300
DURATION = re.compile(r"(?:(\d+) min)? ?(?:(\d+) s)?")


def seconds(text: str) -> int:
    """'4 min 36 s', '2 min', '7 s' as seconds."""
    found = DURATION.fullmatch(text.strip())
    assert found and text.strip(), text
    return int(found.group(1) or 0) * 60 + int(found.group(2) or 0)


def chat(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "chat", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, cwd=data_dir.parent,
    )


def when_seen(process: subprocess.Popen[str], *markers: str) -> dict[str, float]:
    """The time each marker first showed in the output, read until the last one."""
    lines: queue.Queue[tuple[float, str] | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, ""):
            lines.put((time.time(), line))
            if markers[-1] in line:
                return
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: dict[str, float] = {}
    output = ""
    while markers[-1] not in seen:
        item = lines.get(timeout=30)
        assert item is not None, f"{markers[-1]!r} never came; output was:\n{output}"
        at, line = item
        output += line
        for marker in markers:
            if marker in line:
                seen.setdefault(marker, at)
    return seen


def test_a_sped_up_session_killed_and_restarted_keeps_its_time_left_and_time_taken(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    began = time.time()
    first = chat(data, "--speed", str(SPEED))
    try:
        assert first.stdin is not None
        first.stdin.write(TO_EFFLEURAGE)
        first.stdin.flush()
        seen = when_seen(first, "Step 1 of 13", EFFLEURAGE)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

    restarted = time.time()
    second = chat(data, "--speed", str(SPEED))
    out, err = second.communicate("stop\n", timeout=60)
    ended = time.time()
    assert second.returncode == 0 and "Traceback" not in err, err

    # The demo clock is the wall clock sped up 60 times, the same in both runs, so what the
    # restarted run says follows from when things happened, give or take the rounding.
    restored = out[out.index(EFFLEURAGE):]
    shown = re.search(r"\(([^()]*) left\)", restored)
    assert shown, f"the restored step shows no time left:\n{restored}"
    left = seconds(shown.group(1))
    assert left <= EFFLEURAGE_SECONDS - SPEED * (restarted - seen[EFFLEURAGE]) + 1, restored
    assert left >= EFFLEURAGE_SECONDS - SPEED * (ended - began) - 1, restored
    summary = re.search(r"Time taken: (.*)", out)
    assert summary, out
    taken = seconds(summary.group(1))
    # At least the oil's 30 s and the wait for the restart; at most all the time there was.
    assert taken >= SPEED * (restarted - seen["Step 1 of 13"]) - 1, out
    assert taken <= SPEED * (ended - began) + 1, out


def test_a_session_saved_at_one_speed_carries_on_in_step_at_another() -> None:
    wall = [1_000.0]
    first = carry_on(None, 60, wall=lambda: wall[0])
    assert first.now() == 1_000.0  # nothing saved: the wall time
    deadline = first.now() + 240  # a 4-minute step, due 4 s later at 60 times
    wall[0] += 2  # half of it done, then the program is stopped
    halfway = first.now()
    again = carry_on(first.anchor(), 1, wall=lambda: wall[0])
    assert again.now() == halfway  # the same moment reads the same in the next run
    wall[0] += 120  # at speed 1 the other half takes two real minutes
    assert again.now() == deadline
    assert again.real_seconds(60) == 60


def test_an_unreadable_anchor_starts_from_the_wall_time() -> None:
    for saved in ("", "not json", "[1]", '{"speed": 2}', '{"speed": 1, "wall_at": "x"}'):
        assert carry_on(saved, 5, wall=lambda: 42.0).now() == 42.0


def test_the_default_scaled_clock_starts_at_the_wall_time() -> None:
    clock = ScaledClock(speed=1000)
    assert abs(clock.now() - time.time()) < 60
