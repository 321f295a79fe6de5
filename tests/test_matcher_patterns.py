"""The ways a matcher goes wrong on questions nobody here wrote, each with phrasings of our own
(issue 8): what the person would see for each."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge import load_knowledge
from bot.matcher import Match, Matcher

KNOWLEDGE = Path(__file__).parent.parent / "knowledge"


@pytest.fixture(scope="module")
def real() -> Matcher:
    return Matcher(load_knowledge(KNOWLEDGE))


@pytest.fixture(scope="module")
def safety_topics() -> set[str]:
    knowledge = load_knowledge(KNOWLEDGE)
    return {topic.id for topic in knowledge.topics.values() if topic.kind == "safety"}


def offered(match: Match) -> list[str]:
    return [c.topic for c in match.candidates]


def right_or_asked(match: Match, topics: set[str]) -> bool:
    """Answered with one of `topics`, or asked back with one of them among the choices: never
    a wrong answer."""
    if match.decision == "answer":
        return match.topic in topics
    return match.decision == "clarify" and bool(topics & set(offered(match)))


# -- a description instead of a name ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("what's the one where you cup your hands and clap them quickly on the back", "tapotement"),
        ("squishing the flesh between my fingers and thumb like play dough", "petrissage"),
        ("slow long sweeps with both palms from the waist up to the neck", "effleurage"),
        ("tiny firm circles with my thumb on one tight spot", "friction"),
        ("my hands rest on his back and tremble quickly, what's that called", "vibration"),
    ],
)
def test_a_movement_described_is_the_technique(real: Matcher, text: str, topic: str) -> None:
    assert right_or_asked(real.match(text), {topic})


# -- a story before the question ---------------------------------------------------------


def test_the_question_after_a_story_decides(real: Matcher) -> None:
    text = (
        "My husband is a plumber and spends all day under sinks, so by Friday his back is "
        "in knots. Our kids are finally in bed and he's on the sofa moaning. "
        "How long should I spend on each part of the massage?"
    )
    assert right_or_asked(real.match(text), {"duration"})


def test_a_carer_story_does_not_outvote_the_question(real: Matcher) -> None:
    text = (
        "I work nights in a nursing home and one of my ladies has been in bed since her "
        "stroke, she loves a back rub before she settles. Once the rub is over, what should "
        "I do for her?"
    )
    match = real.match(text)
    assert right_or_asked(match, {"aftercare", "finishing"})


# -- generic how-to is not answered with a side topic ------------------------------------


def test_a_sore_back_is_not_a_bedsore(real: Matcher) -> None:
    match = real.match("his back is really sore after work")
    assert not (match.decision == "answer" and match.topic == "bedsore-prevention")


def test_where_the_hands_go_first_is_not_about_oil(real: Matcher) -> None:
    match = real.match("where do my hands go at the very start")
    assert not (match.decision == "answer" and match.topic == "oil-and-lotion")


def test_a_plain_how_to_gets_the_whole_massage(real: Matcher) -> None:
    assert right_or_asked(real.match("how do you give someone a back rub"), {"procedure"})


def test_massage_for_a_bad_lower_back_is_not_turned_away(real: Matcher) -> None:
    match = real.match("massage for a bad lower back")
    assert match.decision != "fallback"
    assert set(offered(match)) & {"back-pain", "lower-back-and-tailbone", "benefits"}


# -- did you mean: not timid, not a lone guess -------------------------------------------


@pytest.mark.parametrize(
    ("text", "topic"),
    [("how do i do efleurage", "effleurage"), ("talcum powdr", "talcum-powder")],
)
def test_a_clear_one_topic_question_with_a_typo_is_answered(
    real: Matcher, text: str, topic: str
) -> None:
    assert real.match(text).topic == topic


@pytest.mark.parametrize(
    "text",
    ["could a massage make things worse", "is there anything else", "what about the other bit"],
)
def test_never_a_single_weak_guess(real: Matcher, text: str) -> None:
    match = real.match(text)
    if match.decision == "clarify":
        assert len(match.candidates) >= 2 or match.confidence >= real.params.lone_probability


# -- pain and safety words pull the safety topics -----------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "it hurts her when i push near the shoulder blade",
        "his fingers go numb when i press his upper back",
        "there's a red patch on her bottom that stays red when i press it",
        "he takes warfarin, is kneading ok",
    ],
)
def test_pain_and_safety_words_are_never_answered_with_comfort_alone(
    real: Matcher, safety_topics: set[str], text: str
) -> None:
    match = real.match(text)
    if match.decision == "answer":
        # A safety topic, or a comfort topic with the safety topic offered beside it.
        assert match.topic in safety_topics or match.caution in safety_topics
    else:
        assert set(offered(match)) & safety_topics


@pytest.mark.parametrize(
    ("text", "caution"),
    [
        ("my wife says it hurts when i knead the top of her shoulders", "contraindications"),
        ("she said her arm went all tingly while i was doing her neck", "contraindications"),
        ("mum's got a red mark on her hip, can i put lotion on it", "bedsore-prevention"),
    ],
)
def test_a_warning_sign_puts_its_safety_topic_in_front_of_the_person(
    real: Matcher, text: str, caution: str
) -> None:
    match = real.match(text)
    if match.decision == "answer" and match.topic != caution:
        assert match.caution == caution
    else:
        assert match.topic == caution or caution in offered(match)


@pytest.mark.parametrize(
    "text",
    [
        "my father had a stroke in the summer, can i rub his back",
        "is it safe to give my wife a massage after her stroke",
        "grandad has had a stroke, what should i be careful of",
    ],
)
def test_a_stroke_that_is_an_illness_is_a_safety_question(
    real: Matcher, safety_topics: set[str], text: str
) -> None:
    # "Stroke" is also a massage stroke; "had a stroke" is the illness, never a technique.
    match = real.match(text)
    assert match.decision in ("answer", "clarify")
    assert "contraindications" in offered(match)
    if match.decision == "answer":
        assert match.topic in safety_topics or match.caution in safety_topics


def test_a_massage_stroke_is_still_a_massage_stroke(real: Matcher) -> None:
    assert real.match("what stroke do i end with").topic == "finishing"
    assert real.match("do i stroke towards the heart or away").topic == "stroke-direction"


def test_hurt_said_of_the_givers_own_hands_still_gets_its_answer(real: Matcher) -> None:
    # A warning sign offers its topic; it does not turn a clear answer into a question.
    match = real.match("my thumbs hurt after ten minutes of kneading, how do i save them")
    assert (match.decision, match.topic) == ("answer", "tired-hands")


# -- markup does not change the decision --------------------------------------------------


@pytest.mark.parametrize(
    ("marked", "plain"),
    [
        ("<b>how</b> do i do *petrissage*", "how do i do petrissage"),
        ("<i>which</i> __oil__ is best?", "which oil is best?"),
        ("how long ~~should~~ it `take`", "how long should it take"),
    ],
)
def test_markup_does_not_change_the_decision(real: Matcher, marked: str, plain: str) -> None:
    assert real.match(marked) == real.match(plain)


# -- small talk is not a knowledge answer -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "talk"),
    [
        ("hello!", "greeting"),
        ("thank you so much 🙏", "thanks"),
        ("yep", "yes"),
        ("nah", "no"),
        ("help", "help"),
        ("who made you?", "who-are-you"),
        ("thnx", "thanks"),
    ],
)
def test_small_talk_gets_no_topic(real: Matcher, text: str, talk: str) -> None:
    match = real.match(text)
    assert (match.decision, match.topic, match.smalltalk) == ("smalltalk", None, talk)


@pytest.mark.parametrize(
    ("text", "talk"),
    [("cheers mate, thats great", "thanks"), ("ok ta, bye then", "goodbye"),
     ("hiya, how are you", "greeting")],
)
def test_small_talk_strung_together_is_still_small_talk(
    real: Matcher, text: str, talk: str
) -> None:
    match = real.match(text)
    assert (match.decision, match.smalltalk) == ("smalltalk", talk)


def test_small_talk_words_that_make_a_question_are_a_question(real: Matcher) -> None:
    # Every word here is in some small-talk phrasing ("good morning", "what do i do"), but
    # together they ask what a massage is good for.
    match = real.match("what good is it")
    assert match.decision != "smalltalk"


def test_a_greeting_with_a_question_is_a_question(real: Matcher) -> None:
    match = real.match("hi there, how do i do petrissage?")
    assert match.topic == "petrissage"
