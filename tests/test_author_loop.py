"""The knowledge author's loop end to end, as a person runs it from the shell: chat with the
bot, `misses`, label the YAML, add examples, `check`, `eval`, `eval --cross-validate`.

The misses log is filled by talking to `massage-bot chat`, never by writing rows.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bot.clock import FakeClock
from bot.conversation import Conversation
from bot.knowledge import KnowledgeBase
from bot.matcher import Matcher
from bot.misses import MissesPolicy
from bot.store import Store

ROOT = Path(__file__).resolve().parent.parent
DAY = 24 * 3600.0

# Someone calls kneading by a family word ("zorbing") the knowledge base has never seen, and
# once asks about car oil. The 1 picks the first topic the did-you-mean offers.
WEEK = [
    "how do i zorb the shoulder blades", "1",
    "zorbing the shoulder blades",
    "what is zorbing",
    "can you zorb the lower back",
    "car oil change please",
]


def massage_bot(*args: str, data: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    environment.update({"DATA_DIR": str(data), "MISSES_LOG": "on"})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], input=stdin, capture_output=True, text=True,
        timeout=300, env=environment, cwd=ROOT, check=False,
    )


def test_misses_to_examples_to_eval(tmp_path: Path) -> None:
    data = tmp_path / "data"
    chatted = massage_bot("chat", data=data, stdin="\n".join(WEEK) + "\n")
    assert chatted.returncode == 0, chatted.stderr

    # The author reads what people didn't get, grouped.
    text = massage_bot("misses", data=data)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("5 message(s) in ")
    assert "(terminal 5), biggest first." in text.stdout.splitlines()[0]
    first_group = text.stdout.split("\n\n")[1]
    assert first_group.startswith("1. 2 message(s)")  # the two about the shoulder blades
    assert '"how do i zorb the shoulder blades"' in first_group
    assert '"zorbing the shoulder blades"' in first_group
    assert "picked:  " in first_group and "picked:  nothing" not in first_group
    assert "now:     did you mean" in first_group

    # …and takes them as evaluation entries to label.
    dumped = massage_bot("misses", "--format", "yaml", data=data)
    assert dumped.returncode == 0, dumped.stderr
    entries = yaml.safe_load(dumped.stdout)
    assert sorted(e["q"] for e in entries) == sorted(m for m in WEEK if m != "1")
    assert {e["style"] for e in entries} == {"did-you-mean", "fallback"}
    picked = [e for e in entries if e["expect"] is not None]
    assert [e["q"] for e in picked] == ["how do i zorb the shoulder blades"]
    unlabelled = tmp_path / "unlabelled.yaml"
    unlabelled.write_text(dumped.stdout, encoding="utf-8")
    refused = massage_bot("eval", str(unlabelled), data=data)
    assert refused.returncode == 1 and "expect must be a list" in refused.stderr

    for entry in entries:  # the author's labels
        entry["expect"] = ["petrissage"] if "zorb" in entry["q"] else []
    labelled = tmp_path / "labelled.yaml"
    labelled.write_text(yaml.safe_dump(entries, sort_keys=False), encoding="utf-8")
    before = json.loads(massage_bot("eval", str(labelled), "--json", data=data).stdout)
    assert before["in_scope"]["total"] == 4
    assert before["in_scope"]["right"] == 0

    # The labelled messages go into an examples file of a copy of the knowledge base.
    kb = tmp_path / "knowledge"
    shutil.copytree(ROOT / "knowledge", kb)
    reviewed = {
        "examples": {"petrissage": [e["q"] for e in entries if e["expect"]]},
        "out_of_scope": [e["q"] for e in entries if not e["expect"]],
    }
    (kb / "examples" / "reviewed.yaml").write_text(yaml.safe_dump(reviewed), encoding="utf-8")
    checked = massage_bot("check", str(kb), data=data)
    assert checked.returncode == 0, checked.stdout
    assert "OK:" in checked.stdout

    after = json.loads(massage_bot("eval", str(labelled), "--json", "--kb", str(kb),
                                   data=data).stdout)
    assert after["in_scope"]["right"] == 4  # the change shows
    assert after["out_of_scope"]["wrong"] == 0
    crossed = massage_bot("eval", "--cross-validate", "--folds", "10", "--kb", str(kb),
                          data=data)
    assert crossed.returncode == 0, crossed.stderr
    assert crossed.stdout.startswith("In scope (")

    # Now the knowledge base answers them, as `misses` says beside each group.
    now = massage_bot("misses", "--kb", str(kb), data=data)
    assert "now:     answers petrissage" in now.stdout


def test_misses_since_and_json_from_the_bots_database(
    tmp_path: Path, knowledge: KnowledgeBase
) -> None:
    path = tmp_path / "data" / "massage-bot.sqlite3"
    clock = [time.time() - 10 * DAY]
    store = Store.open(path, now=lambda: clock[0])
    conversation = Conversation(knowledge, Matcher(knowledge), store, FakeClock(),
                                misses_policy=MissesPolicy("telegram"))
    conversation.handle_text(1, "what is zorbing")  # ten days ago
    clock[0] = time.time()
    conversation.handle_text(2, "car oil change please")
    conversation.handle_text(3, "car oil change please!")
    store.close()

    week = massage_bot("misses", "--since", "7", "--format", "json", data=tmp_path / "data")
    assert week.returncode == 0, week.stderr
    report = json.loads(week.stdout)
    assert report["messages"] == 2
    [group] = report["clusters"]
    assert group["examples"] == [{"text": "car oil change please", "count": 2}]
    assert group["decisions"] == {"fallback": 2}
    assert group["now"] == {"decision": "fallback", "topics": []}
    everything = json.loads(massage_bot("misses", "--format", "json",
                                        data=tmp_path / "data").stdout)
    assert everything["messages"] == 3 and everything["since"] is None


def test_misses_with_nothing_logged_says_so(tmp_path: Path) -> None:
    done = massage_bot("misses", data=tmp_path / "empty")
    assert done.returncode == 0
    assert done.stdout.strip() == "No misses logged."
    assert "nothing logged yet" in done.stderr
    assert not (tmp_path / "empty").exists()  # reading never creates a database
    missing = massage_bot("misses", "--db", str(tmp_path / "nope.sqlite3"), data=tmp_path)
    assert missing.returncode == 1 and "no such database" in missing.stderr
    assert massage_bot("misses", "--since", "0", data=tmp_path).returncode == 2


def test_the_terminal_chat_logs_nothing_with_misses_log_off(tmp_path: Path) -> None:
    data = tmp_path / "data"
    environment = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    environment.update({"DATA_DIR": str(data), "MISSES_LOG": "off"})
    subprocess.run([sys.executable, "-m", "bot.cli", "chat"], input="what is zorbing\n/help\n",
                   capture_output=True, text=True, timeout=60, env=environment, cwd=ROOT,
                   check=True)
    with sqlite3.connect(data / "terminal.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM misses").fetchone() == (0,)
    db.close()
