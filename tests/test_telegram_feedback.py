"""Feedback buttons and the misses log on Telegram, through PTB's real stack and the stand-in."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from standin import BotFixture, StandIn, User, bot_settings, start_bot

from bot.clock import ScaledClock
from bot.conversation import NONE_OF_THESE, THANKS
from bot.knowledge import KnowledgeBase
from bot.matcher import Matcher

VAGUE = ("hands", "strokes", "oil", "back rub", "skin", "pressure", "time")
WITH_OTHERS = ("can i use baby oil", "towels", "oil", "how long", "strokes")


@pytest.fixture
async def bot(api: StandIn, tmp_path: Path, knowledge: KnowledgeBase) -> AsyncIterator[BotFixture]:
    running = await start_bot(api, bot_settings(api, tmp_path), knowledge, ScaledClock(speed=1))
    yield running
    await running.close()


@pytest.fixture
def ann(api: StandIn) -> User:
    return User(api, user_id=1001, first_name="Ann")


def first(knowledge: KnowledgeBase, questions: tuple[str, ...], decision: str,
          candidates: int = 1) -> str:
    matcher = Matcher(knowledge)
    found = [q for q in questions if matcher.match(q).decision == decision
             and len(matcher.match(q).candidates) >= candidates]
    assert found, f"one of {questions} should get {decision}"
    return found[0]


async def test_helpful_removes_the_row_from_the_answer_and_thanks(
    ann: User, knowledge: KnowledgeBase, bot: BotFixture
) -> None:
    [answer] = await ann.say("how do i do petrissage")
    labels = [label for label, _ in answer.buttons]
    assert labels[-2:] == ["👍 Helpful", "👎 Not what I asked"]
    assert answer.reply_markup is not None
    assert len(answer.reply_markup["inline_keyboard"][-1]) == 2  # one row of its own
    edit, thanks = await ann.press(answer, "Helpful", expect=2)
    assert (edit.kind, edit.message_id) == ("edit", answer.message_id)
    assert edit.html == answer.html  # the answer stays as it was…
    assert [label for label, _ in edit.buttons] == labels[:-2]  # …without the row
    assert (thanks.kind, thanks.text) == ("send", THANKS)
    assert bot.conversation.store.misses() == []


async def test_not_what_i_asked_offers_the_next_best_and_logs_the_pick(
    ann: User, knowledge: KnowledgeBase, bot: BotFixture
) -> None:
    question = first(knowledge, WITH_OTHERS, "answer", candidates=2)
    match = Matcher(knowledge).match(question)
    [answer] = await ann.say(question)
    edit, offer = await ann.press(answer, "Not what I asked", expect=2)
    assert edit.message_id == answer.message_id and "Helpful" not in str(edit.buttons)
    other = knowledge.topics[match.candidates[1].topic]
    offered = [label for label, _ in offer.buttons]
    assert (offered[0], offered[-1]) == (other.title, "None of these")
    [chosen] = await ann.press(offer, other.title)
    assert chosen.text.startswith(other.title)
    [row] = bot.conversation.store.misses()
    assert (row.text, row.decision, row.unhelpful, row.front_end) == (
        question, "answer", True, "telegram"
    )
    assert row.picked == other.id

    # The author reads it while the bot runs.
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "misses", "--db", str(bot.settings.database_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 message(s) in 1 group(s)")
    assert "(telegram 1)" in done.stdout
    assert f'"{question}"' in done.stdout and f"picked:  {other.id} 1" in done.stdout


async def test_a_did_you_mean_is_logged_with_the_choice(
    ann: User, knowledge: KnowledgeBase, bot: BotFixture
) -> None:
    question = first(knowledge, VAGUE, "clarify")
    [offer] = await ann.say(question)
    [sorry] = await ann.press(offer, "None of these")
    assert sorry.text == NONE_OF_THESE
    [row] = bot.conversation.store.misses()
    assert (row.text, row.decision, row.none_of_these) == (question, "clarify", True)
    # The log keeps the day, never the chat or who asked.
    assert str(ann.chat_id) not in repr(row) and "Ann" not in repr(row)


@pytest.mark.usefixtures("bot")
async def test_help_carries_the_privacy_line(ann: User) -> None:
    [shown] = await ann.say("/help")
    assert "Privacy: questions I couldn't answer" in shown.text
    assert "kept for 90 days, without your name or chat" in shown.text


async def test_misses_log_off(api: StandIn, tmp_path: Path, knowledge: KnowledgeBase) -> None:
    settings = bot_settings(api, tmp_path / "off", MISSES_LOG="off")
    running = await start_bot(api, settings, knowledge, ScaledClock(speed=1))
    try:
        ann = User(api, user_id=1002)
        [offer] = await ann.say(first(knowledge, VAGUE, "clarify"))
        await ann.press(offer, "None of these")
        [shown] = await ann.say("/help")
        assert "Privacy: nothing you ask is logged." in shown.text
        assert running.conversation.store.misses() == []
    finally:
        await running.close()
