"""The misses log and feedback on answers, as a person meets them in the conversation.

The log is filled by talking to the bot, never by inserting rows; what it holds is then read
back from the store as `massage-bot misses` would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.conversation import FALLBACK, NONE_OF_THESE, THANKS, Conversation
from bot.knowledge import KnowledgeBase
from bot.matcher import Match, Matcher
from bot.misses import MAX_TEXT_CHARS, MissesPolicy
from bot.replies import Button, Response
from bot.store import FEEDBACK_KEEP_SECONDS, MissRow, Store

CHAT = 42
# Messages of every kind; each test takes the first that the matcher treats as it needs, so
# that tuning the matcher moves which one, not whether the test means anything.
QUESTIONS = (
    "hands", "strokes", "oil", "how long", "towels", "can i use baby oil",
    "how hard should i press", "is it safe", "pillows", "how do i do petrissage",
    "my mum is in bed all day", "back rub", "what about the neck", "skin", "pressure",
    "lying down", "time", "mum",
)  # fmt: skip


@dataclass
class Now:
    """Wall-clock seconds as the store sees them (and so the log's day), moved on by the test."""

    seconds: float = datetime(2025, 3, 10, 9, 30, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.seconds

    def days_later(self, days: int) -> None:
        self.seconds += days * 24 * 3600


@dataclass
class Bot:
    """A conversation with a misses log, its store reopened as a restart would."""

    knowledge: KnowledgeBase
    matcher: Matcher
    path: Path
    policy: MissesPolicy | None
    now: Now = field(default_factory=Now)
    store: Store = field(init=False)
    conversation: Conversation = field(init=False)

    def __post_init__(self) -> None:
        self.start()

    def start(self, policy: MissesPolicy | str | None = "same") -> None:
        if policy != "same":
            self.policy = policy  # type: ignore[assignment]
        self.store = Store.open(self.path, now=self.now)
        self.conversation = Conversation(
            knowledge=self.knowledge, matcher=self.matcher, store=self.store,
            clock=FakeClock(), misses_policy=self.policy,
        )

    def restart(self, policy: MissesPolicy | str | None = "same") -> None:
        self.store.close()
        self.start(policy)

    def say(self, text: str) -> Response:
        return self.conversation.handle_text(CHAT, text)

    def press(self, response: Response, label_part: str) -> Response:
        return self.conversation.handle_action(CHAT, button(response, label_part).action)

    def log(self) -> list[MissRow]:
        return self.store.misses()


@pytest.fixture(scope="module")
def matcher(knowledge: KnowledgeBase) -> Matcher:
    return Matcher(knowledge)


@pytest.fixture
def bot(knowledge: KnowledgeBase, matcher: Matcher, tmp_path: Path) -> Iterator[Bot]:
    running = Bot(knowledge, matcher, tmp_path / "bot.sqlite3", MissesPolicy("terminal"))
    yield running
    running.store.close()


def first(matcher: Matcher, wanted: Callable[[Match], bool]) -> tuple[str, Match]:
    found = [(q, matcher.match(q)) for q in QUESTIONS]
    matching = [(q, m) for q, m in found if wanted(m)]
    assert matching, "one of the test's messages should be matched like this"
    return matching[0]


def is_clarify(match: Match) -> bool:
    return match.decision == "clarify"


def is_answer_with_others(match: Match) -> bool:
    return match.decision == "answer" and len(match.candidates) >= 2


def is_lone_answer(match: Match) -> bool:
    return match.decision == "answer" and len(match.candidates) == 1


def buttons(response: Response) -> list[Button]:
    return [b for message in response.replies for row in message.buttons for b in row]


def button(response: Response, label_part: str) -> Button:
    matching = [b for b in buttons(response) if label_part in b.label]
    assert matching, f"no button with {label_part!r} in {[b.label for b in buttons(response)]}"
    return matching[-1]


def labels(response: Response) -> list[str]:
    return [b.label for b in buttons(response)]


# --- what goes into the log ----------------------------------------------------------------------


def test_a_did_you_mean_is_logged_and_the_choice_recorded(bot: Bot, matcher: Matcher) -> None:
    question, match = first(matcher, is_clarify)
    offer = bot.say(question)
    [row] = bot.log()
    assert (row.text, row.decision, row.front_end, row.day) == (
        question, "clarify", "terminal", "2025-03-10"
    )
    assert [topic for topic, _ in row.candidates] == [c.topic for c in match.candidates]
    assert [score for _, score in row.candidates] == [round(c.score, 1) for c in match.candidates]
    assert row.picked is None and not row.none_of_these

    chosen = bot.knowledge.topics[match.candidates[-1].topic]
    answer = bot.press(offer, chosen.title)
    assert answer.replies[0].title == chosen.title  # the choice is answered as before
    [row] = bot.log()
    assert row.picked == chosen.id  # and recorded as feedback


def test_none_of_these_is_recorded(bot: Bot, matcher: Matcher) -> None:
    question, _match = first(matcher, is_clarify)
    sorry = bot.press(bot.say(question), "None of these")
    assert sorry.replies[0].text == NONE_OF_THESE
    [row] = bot.log()
    assert row.none_of_these and row.picked is None


def test_a_fallback_is_logged_and_an_answer_or_small_talk_is_not(bot: Bot) -> None:
    assert bot.say("how do I change the oil in my car?").replies[0].text == FALLBACK
    bot.say("how do i do petrissage")
    bot.say("thanks!")
    bot.say("???")  # nothing an author could read
    [row] = bot.log()
    assert (row.text, row.decision, row.candidates) == (
        "how do I change the oil in my car?", "fallback", ()
    )


def test_the_log_keeps_no_chat_no_name_and_no_time(bot: Bot, matcher: Matcher) -> None:
    bot.say(first(matcher, is_clarify)[0])
    bot.store.close()
    with sqlite3.connect(bot.path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(misses)")}
        held = {row[1] for row in db.execute("PRAGMA table_info(open_answers)")}
    assert not {"chat_id", "user_id", "name", "created_at"} & columns
    assert "day" in columns
    assert not {"chat_id", "user_id", "name"} & held
    bot.start()


def test_the_text_is_plain_anonymous_and_at_most_500_characters(bot: Bot) -> None:
    bot.say("<b>Help</b>  @jane_smith said call 07700 900123 or jane@example.org: car oil")
    bot.say("tell me about car engines " * 40)
    first_row, second_row = bot.log()
    assert first_row.text == "Help @someone said call [number] or [email]: car oil"
    assert len(second_row.text) == MAX_TEXT_CHARS
    assert second_row.text.startswith("tell me about car engines tell me")


# --- feedback under answers ---------------------------------------------------------------------


def test_an_answer_to_a_question_asks_whether_it_helped_in_one_row(bot: Bot) -> None:
    [answer] = bot.say("how do i do petrissage").replies
    assert [b.label for b in answer.buttons[-1]] == ["👍 Helpful", "👎 Not what I asked"]
    assert [b.key for b in answer.buttons[-1]] == ["+", "-"]
    assert all("👍" not in b.label for row in answer.buttons[:-1] for b in row)
    # A topic opened from a button answered no question: nothing to rate.
    related = bot.press(bot.say("how do i do petrissage"), bot.knowledge.topics[
        bot.knowledge.topics["petrissage"].related[0]].title)
    assert not any("Helpful" in label for label in labels(related))


def test_helpful_thanks_and_the_row_goes(bot: Bot) -> None:
    answer = bot.say("how do i do petrissage")
    thanks = bot.press(answer, "Helpful")
    assert [m.text for m in thanks.replies] == [THANKS]
    assert thanks.pressed is not None
    assert thanks.pressed.text == answer.replies[0].text
    assert thanks.pressed.buttons == answer.replies[0].buttons[:-1]  # only the row goes
    assert bot.log() == []  # a helpful answer is not a miss
    # Tapped twice before the row went: thanked once.
    again = bot.press(answer, "Helpful")
    assert again.replies == () and again.pressed == thanks.pressed
    # The other button on an old copy: feedback was given, so a hint and nothing recorded.
    assert bot.press(answer, "Not what I asked").replies[0].text == NONE_OF_THESE
    assert bot.log() == []


def test_not_what_i_asked_offers_the_next_best_and_logs_it(bot: Bot, matcher: Matcher) -> None:
    question, match = first(matcher, is_answer_with_others)
    answer = bot.say(question)
    offer = bot.press(answer, "Not what I asked")
    assert offer.pressed is not None and offer.pressed.buttons == answer.replies[0].buttons[:-1]
    others = [c.topic for c in match.candidates[1:]]
    assert labels(offer) == [bot.knowledge.topics[t].title for t in others] + ["None of these"]
    [row] = bot.log()
    assert (row.text, row.decision, row.unhelpful) == (question, "answer", True)
    assert [t for t, _ in row.candidates] == [match.topic, *others]
    assert row.candidates[0][1] == round(match.candidates[0].score, 1)

    chosen = bot.knowledge.topics[others[0]]
    assert bot.press(offer, chosen.title).replies[0].title == chosen.title
    [row] = bot.log()
    assert row.picked == chosen.id
    # Feedback is given once: the same button again logs nothing more.
    bot.press(answer, "Not what I asked")
    assert len(bot.log()) == 1


def test_not_what_i_asked_with_nothing_else_close_suggests_rephrasing(
    bot: Bot, matcher: Matcher
) -> None:
    bot.restart(MissesPolicy("terminal", enabled=False))  # no question held: nothing to search
    question, _match = first(matcher, is_lone_answer)
    hint = bot.press(bot.say(question), "Not what I asked")
    assert hint.replies[0].text == NONE_OF_THESE
    assert labels(hint) == ["📚 Browse topics"]
    assert hint.pressed is not None


def test_feedback_a_day_later_only_suggests_rephrasing(bot: Bot, matcher: Matcher) -> None:
    question, _match = first(matcher, is_answer_with_others)
    answer = bot.say(question)
    bot.now.seconds += FEEDBACK_KEEP_SECONDS + 1
    hint = bot.press(answer, "Not what I asked")
    assert hint.replies[0].text == NONE_OF_THESE
    assert bot.log() == []  # the question was not kept that long


def test_feedback_survives_a_restart(bot: Bot, matcher: Matcher) -> None:
    question, _match = first(matcher, is_answer_with_others)
    answer = bot.say(question)
    bot.restart()
    bot.press(answer, "Not what I asked")
    assert [row.text for row in bot.log()] == [question]


# --- keep time, MISSES_LOG=off, and what /help says ---------------------------------------------


def test_entries_are_kept_for_the_keep_days_then_pruned_at_start_up(
    bot: Bot, matcher: Matcher
) -> None:
    bot.restart(MissesPolicy("terminal", keep_days=30))
    question, _match = first(matcher, is_clarify)
    bot.say(question)
    bot.now.days_later(29)
    bot.restart()
    assert len(bot.log()) == 1  # the 30th day
    bot.now.days_later(1)
    bot.restart()
    assert bot.log() == []


def test_a_bot_running_for_days_prunes_once_a_day(bot: Bot, matcher: Matcher) -> None:
    question, _match = first(matcher, is_clarify)
    bot.say(question)
    bot.now.days_later(90)
    assert bot.conversation.misses.prune_if_due() == 1
    assert bot.conversation.misses.prune_if_due() == 0  # done for the day
    bot.say(question)
    assert [row.day for row in bot.log()] == ["2025-06-08"]


def test_misses_log_off_records_nothing_and_forgets_what_was_kept(
    bot: Bot, matcher: Matcher
) -> None:
    clarify, _ = first(matcher, is_clarify)
    bot.say(clarify)
    assert len(bot.log()) == 1
    bot.restart(MissesPolicy("terminal", enabled=False))
    assert bot.log() == []
    offer = bot.say(clarify)
    bot.press(offer, "None of these")
    question, match = first(matcher, is_answer_with_others)
    # Feedback still helps the person: the next best topics are offered.
    offered = bot.press(bot.say(question), "Not what I asked")
    assert labels(offered)[0] == bot.knowledge.topics[match.candidates[1].topic].title
    bot.press(offered, labels(offered)[0])
    assert bot.log() == []
    bot.store.close()
    with sqlite3.connect(bot.path) as db:
        assert db.execute("SELECT text FROM open_answers").fetchall() == []
    bot.start()


def test_help_says_what_is_kept_and_for_how_long(bot: Bot) -> None:
    bot.restart(MissesPolicy("terminal", keep_days=30))
    text = bot.conversation.handle_command(CHAT, "help").replies[0].text
    assert ("Privacy: questions I couldn't answer, and answers you mark 👎, are kept for 30 "
            "days") in text
    assert "without your name or chat" in text
    bot.restart(MissesPolicy("terminal", enabled=False))
    for shown in (bot.conversation.handle_command(CHAT, "help"), bot.say("help")):
        assert "Privacy: nothing you ask is logged." in shown.replies[0].text


def test_answers_no_longer_open_to_feedback_are_pruned(bot: Bot) -> None:
    bot.say("how do i do petrissage")
    bot.say("how do i do effleurage")
    assert bot.store.prune().open_answers == 0
    bot.now.seconds += FEEDBACK_KEEP_SECONDS + 1
    assert bot.store.prune().open_answers == 2


def test_a_database_of_the_previous_version_gains_the_log_and_keeps_its_sessions(
    tmp_path: Path, knowledge: KnowledgeBase, matcher: Matcher
) -> None:
    from bot.store import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        for statement in (*MIGRATIONS[0], *MIGRATIONS[1]):
            db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        db.execute("INSERT INTO active_sessions VALUES (1, '{\"step\": 2}', 1e12)")
    db.close()
    upgraded = Bot(knowledge, matcher, path, MissesPolicy("telegram"))
    try:
        assert upgraded.store.load_session(1) == {"step": 2}
        upgraded.say("how do I change the oil in my car?")
        assert [row.front_end for row in upgraded.log()] == ["telegram"]
    finally:
        upgraded.store.close()


def test_the_longest_topic_id_allowed_still_fits_its_feedback_buttons(
    knowledge: KnowledgeBase,
) -> None:
    from bot.conversation import did_you_mean, topic_reply
    from bot.knowledge import MAX_ID_CHARS
    from bot.misses import new_ref

    long_id = "a" * MAX_ID_CHARS
    topic = replace(knowledge.topics["petrissage"], id=long_id)
    shown = topic_reply(topic, knowledge, feedback=new_ref())  # raises if a button is too long
    assert labels(shown)[-1] == "👎 Not what I asked"
    longer = replace(knowledge, topics={**knowledge.topics, long_id: topic})
    assert labels(did_you_mean("?", [long_id], longer, new_ref()))[0] == topic.title


def test_what_counts_as_similar_is_fitted_on_the_knowledge_base(knowledge: KnowledgeBase) -> None:
    from bot.misses_report import DEFAULT_SIMILARITY, LOOSEST, content_key, fit_similarity

    fitted = fit_similarity(knowledge)
    assert LOOSEST < fitted < 100
    assert fit_similarity(knowledge, precision=0.97) >= fitted  # stricter, never looser
    tiny = replace(knowledge, topics={"petrissage": knowledge.topics["petrissage"]})
    assert fit_similarity(tiny) == DEFAULT_SIMILARITY  # too few pairs to say
    assert content_key("How do I zorb the shoulder-blades?") == "zorb shoulder blades"
