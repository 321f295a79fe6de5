"""What the README tells a newcomer holds: its transcript, its commands, where data is kept."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from readme_transcript import README, ROOT, block, shown_in, transcript

from bot.settings import load_settings


def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_the_transcript_in_the_readme_is_what_the_chat_says_now() -> None:
    current = shown_in(readme())
    assert current is not None, "README.md has lost its transcript markers"
    assert current == block(transcript()), (
        "README.md's terminal transcript is out of date: run `make readme` to regenerate it"
    )


def test_the_transcript_walks_a_session_from_the_menu_to_its_summary() -> None:
    text = transcript()
    assert text.startswith("> /session\n")
    assert "== Step 1 of " in text and "Time's up" in text
    assert re.search(r"\n\[\d+:\d\d left\] > s\n", text)  # the prompt counts down
    assert "Time taken: 30 s" in text  # the oil's 30 s, on the transcript's own clock


def documented(command_start: str) -> list[str]:
    """The README's shell line that starts with `command_start`, without its comment."""
    for line in readme().splitlines():
        if line.startswith(command_start):
            return shlex.split(line.split("#", 1)[0])
    raise AssertionError(f"README.md shows no {command_start!r} line")


def test_the_readmes_one_test_command_runs_that_one_test() -> None:
    command = documented(".venv/bin/python -m pytest tests/")
    assert "::" in command[-1]
    done = subprocess.run(
        [sys.executable, *command[1:], "-q", "-p", "no:cacheprovider"], cwd=ROOT,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^1 passed", done.stdout, re.MULTILINE), done.stdout


def test_the_readme_names_lint_bench_and_the_make_targets_exist() -> None:
    targets = set(re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    for target in ("lint", "bench", "readme", "test"):
        assert documented(f"make {target}") == ["make", target]
        assert target in targets, target


def test_the_store_is_where_the_readme_says(tmp_path: Path) -> None:
    text = readme()
    assert "in `DATA_DIR`; without it in `$XDG_DATA_HOME/massage-bot`, and without that\n" \
           "in `~/.local/share/massage-bot`" in text
    home = {"HOME": str(tmp_path)}
    assert load_settings(home, dotenv=None).data_dir == tmp_path / ".local/share/massage-bot"
    xdg = {**home, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert load_settings(xdg, dotenv=None).data_dir == tmp_path / "xdg/massage-bot"
    chosen = {**xdg, "DATA_DIR": str(tmp_path / "mine")}
    assert load_settings(chosen, dotenv=None).data_dir == tmp_path / "mine"
    # And the chat really puts its store there.
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_DIR", "XDG_DATA_HOME")}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "chat"], input="what is effleurage\n",
        env={**env, **home}, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".local/share/massage-bot/terminal.sqlite3").is_file()
