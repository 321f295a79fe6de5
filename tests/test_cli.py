"""`massage-bot ask`, `eval` and start-up errors, run as a person would run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from standin import TOKEN

from bot.matcher import MAX_CANDIDATES

ROOT = Path(__file__).resolve().parent.parent
DEV_SET = ROOT.parent / "shared" / "eval" / "questions-dev.yaml"


def massage_bot(*args: str, stdin: str = "", env: dict[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # No real token ever reaches these runs; a test that needs one passes it in `env`.
    environment = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin, capture_output=True, text=True, timeout=120, env=environment,
        cwd=cwd or ROOT, check=False,
    )


def test_ask_prints_the_reply_as_the_chat_would() -> None:
    done = massage_bot("ask", "how", "do", "i", "do", "effleurage")
    assert done.returncode == 0
    assert done.stdout.startswith("== Effleurage")
    assert "[1]" in done.stdout  # related topics offered as choices


def test_ask_json_with_a_question() -> None:
    done = massage_bot("ask", "--json", "what is effleurage")
    obj = json.loads(done.stdout)
    assert set(obj) == {"query", "decision", "topic", "candidates"}
    assert obj["query"] == "what is effleurage"
    assert obj["decision"] == "answer"
    assert obj["topic"] == "effleurage"
    assert obj["candidates"][0]["topic"] == "effleurage"
    assert len(obj["candidates"]) <= MAX_CANDIDATES
    assert all(isinstance(c["score"], int | float) for c in obj["candidates"])


def test_ask_json_reads_stdin_one_line_per_question_in_order() -> None:
    questions = ["what is effleurage", "tell me a joke", "", "car oil"]
    done = massage_bot("ask", "--json", stdin="\n".join(questions) + "\n")
    assert done.returncode == 0
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["query"] for o in objects] == questions
    for obj in objects:
        assert obj["decision"] in ("answer", "clarify", "fallback")
        assert (obj["topic"] is None) == (obj["decision"] != "answer")
        scores = [c["score"] for c in obj["candidates"]]
        assert scores == sorted(scores, reverse=True)
    assert objects[1]["decision"] == "fallback"
    assert objects[3]["decision"] != "answer"


def test_ask_json_flushes_each_answer_before_the_next_question() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "ask", "--json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("what is petrissage\n")
    process.stdin.flush()
    first = json.loads(process.stdout.readline())  # arrives while stdin is still open
    assert first["topic"] == "petrissage"
    process.stdin.close()
    assert process.wait(timeout=30) == 0


def test_eval_prints_the_report() -> None:
    done = massage_bot("eval", str(DEV_SET))
    assert done.returncode == 0, done.stderr
    text = done.stdout.lower()
    for word in ("direct", "wrong", "clarify", "fallback", "out-of-scope", "typo"):
        assert word in text, word


def test_invalid_knowledge_dir_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "kb"
    broken.mkdir()
    (broken / "a.yaml").write_text("topics:\n  - id: x\n    kind: nope\n")
    done = massage_bot("ask", "--kb", str(broken), "hello")
    assert done.returncode == 1
    assert "kb/a.yaml:3: topic x.kind: unknown kind 'nope'" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_without_a_token_says_so_in_one_line(tmp_path: Path) -> None:
    done = massage_bot("run", env={"TELEGRAM_BOT_TOKEN": "", "DATA_DIR": str(tmp_path)},
                       cwd=tmp_path)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1
    assert "TELEGRAM_BOT_TOKEN" in done.stderr


def test_eval_cross_validate_and_floors_on_a_small_knowledge_base() -> None:
    small = str(ROOT / "tests" / "fixtures" / "matcher" / "small")
    done = massage_bot("eval", "--cross-validate", "--kb", small, "--json", "--min-direct", "100")
    report = json.loads(done.stdout)
    assert done.returncode == 1  # nobody generalises perfectly: the floor is breached
    assert "below target: direct correct" in done.stderr
    assert report["in_scope"]["total"] == 40  # every alias and example question
    assert report["out_of_scope"]["total"] >= 1
    assert {row["topic"] for row in report["topics"]} >= {"effleurage", "petrissage"}
    text = massage_bot("eval", "--cross-validate", "--kb", small)
    assert text.returncode == 0
    assert text.stdout.startswith("In scope (40 questions):")
    refused = massage_bot("eval", "--cross-validate", str(DEV_SET))
    assert refused.returncode == 2
    assert massage_bot("eval", "--kb", small).returncode == 2


def test_eval_on_the_dev_set_holds_its_floor() -> None:
    done = massage_bot("eval", str(DEV_SET), "--min-direct", "50", "--max-wrong", "10")
    assert done.returncode == 0, done.stderr
    assert "Confusions" in done.stdout or "wrong answer      0.0%" in done.stdout


def test_ask_json_marks_small_talk_as_no_answer() -> None:
    done = massage_bot("ask", "--json", stdin="thanks!\nhello there\nhow do i do petrissage\n")
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(o["decision"], o["topic"]) for o in objects[:2]] == [
        ("smalltalk", None), ("smalltalk", None),
    ]  # fmt: skip
    assert objects[0]["smalltalk"] == "thanks"
    assert objects[2]["topic"] == "petrissage"
    assert objects[2]["candidates"][0]["phrasing"]  # why: the phrasing that matched best
    assert "petrissage" in objects[2]["candidates"][0]["words"]


def test_eval_names_an_unknown_topic_id_and_an_unlabelled_entry(tmp_path: Path) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("- q: how do i knead\n  expect: [petrisage]\n  style: direct\n")
    done = massage_bot("eval", str(typo))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"massage-bot eval: {typo}: expect names unknown topic id(s): petrisage"
    )
    empty = tmp_path / "empty.yaml"
    empty.write_text("- q: how do i knead\n  expect:\n  style: misses\n")
    done = massage_bot("eval", str(empty))
    assert done.returncode == 1 and "question 1: expect must be a list" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_with_a_malformed_setting_fails_at_once_without_restart(tmp_path: Path) -> None:
    # A bad LOG_LEVEL will not heal: one line naming it, and the exit code the service unit
    # (deploy/massage-bot.service) does not restart on.
    done = massage_bot("run", env={"LOG_LEVEL": "loud", "DATA_DIR": str(tmp_path)}, cwd=tmp_path)
    assert done.returncode == 78
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("massage-bot: LOG_LEVEL must be one of DEBUG, INFO")
    assert "LOUD" in line


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("TELEGRAM_BASE_URL", "notaurl"),
        ("TELEGRAM_BASE_FILE_URL", "files.example/bot"),
        ("WEBHOOK_URL", "http://bot.example/hook"),  # Telegram requires https
    ],
)
def test_run_with_a_malformed_url_fails_at_once_naming_it(
    tmp_path: Path, setting: str, value: str
) -> None:
    started = time.monotonic()
    done = massage_bot("run", env={
        "TELEGRAM_BOT_TOKEN": TOKEN, setting: value, "WEBHOOK_SECRET": "abc_123",
        "DATA_DIR": str(tmp_path), "LOG_LEVEL": "DEBUG",
    }, cwd=tmp_path)
    assert time.monotonic() - started < 20  # no retries: a Python start-up, no network
    assert done.returncode == 78
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"massage-bot: {setting} must be a URL starting with https://")
    assert done.stdout == ""
    assert TOKEN.split(":")[1] not in done.stderr


@pytest.mark.parametrize(
    ("command", "arguments", "settings", "not_read"),
    [
        ("run", ["exit codes: 0 stopped; 78"],
         ["TELEGRAM_BOT_TOKEN", "TELEGRAM_BASE_URL", "WEBHOOK_URL", "DATA_DIR", "LOG_LEVEL",
          "ADMIN_IDS", "MISSES_LOG"], []),
        ("ask", ["question ", "--json", "--kb DIR"], ["KNOWLEDGE_DIR"],
         ["TELEGRAM_BOT_TOKEN", "DATA_DIR"]),
        ("eval", ["file ", "--cross-validate", "--folds K", "--min-direct PCT", "--max-wrong PCT",
                  "--max-oos PCT", "--json", "--kb DIR"], ["KNOWLEDGE_DIR"],
         ["TELEGRAM_BOT_TOKEN", "DATA_DIR"]),
        ("chat", ["--speed N", "--kb DIR"], ["DATA_DIR", "KNOWLEDGE_DIR", "MISSES_LOG"],
         ["TELEGRAM_BOT_TOKEN"]),
    ],
)
def test_help_describes_the_arguments_and_the_settings_read(
    command: str, arguments: list[str], settings: list[str], not_read: list[str]
) -> None:
    done = massage_bot(command, "--help", env={"TELEGRAM_BOT_TOKEN": TOKEN})
    assert done.returncode == 0 and done.stderr == ""
    text = done.stdout
    head, _, read = text.partition("settings read (from the environment, or from .env")
    assert read, text
    for argument in arguments:
        assert argument in head, argument
    for line in head.splitlines():
        if line.startswith("  -") or line.startswith("  question") or line.startswith("  file"):
            assert len(line.split(None, 1)) == 2 or "--help" in line, line  # each described
    for name in settings:
        assert f"\n  {name} " in read, name
    for name in not_read:
        assert name not in read, name
    assert TOKEN.split(":")[1] not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_bots_settings_never_stop_the_chat_or_ask(tmp_path: Path) -> None:
    # A slip in the Telegram part of .env is for `run` to report; the terminal chat and the
    # author's tools do not read it.
    (tmp_path / ".env").write_text(
        "TELEGRAM_BASE_URL=notaurl\nWEBHOOK_URL=http://bot.example/hook\nLOG_LEVEL=loud\n"
    )
    env = {"DATA_DIR": str(tmp_path / "data")}
    asked = massage_bot("ask", "what is effleurage", env=env, cwd=tmp_path)
    assert asked.returncode == 0 and asked.stdout.startswith("== Effleurage"), asked.stderr
    chatted = massage_bot("chat", stdin="what is effleurage\n", env=env, cwd=tmp_path)
    assert chatted.returncode == 0 and "== Effleurage" in chatted.stdout, chatted.stderr
    ran = massage_bot("run", env=env, cwd=tmp_path)
    assert ran.returncode == 78
    assert ran.stderr.startswith("massage-bot: LOG_LEVEL must be one of")


def test_a_wheel_install_finds_its_knowledge_base(tmp_path: Path) -> None:
    # Installed from a wheel there is no checkout around the package: the knowledge base
    # must travel inside it. A pure-Python wheel installs by unpacking.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
         str(ROOT)], capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    site = tmp_path / "site"
    with zipfile.ZipFile(next(tmp_path.glob("massage_bot-*.whl"))) as wheel:
        wheel.extractall(site)
    # The unpacked package comes before the checkout on the path; no KNOWLEDGE_DIR points
    # anywhere else.
    env = {"PYTHONPATH": str(site), "KNOWLEDGE_DIR": ""}
    found = subprocess.run(
        [sys.executable, "-c", "import bot.settings as s; print(s.PACKAGE_KNOWLEDGE_DIR)"],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env}, cwd=tmp_path,
        check=False,
    )
    assert found.stdout.strip() == str(site / "bot" / "bundled_knowledge")
    asked = massage_bot("ask", "how do i do petrissage", env=env, cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    assert "Petrissage" in asked.stdout
