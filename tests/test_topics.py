"""The topics added for people's own questions: each is found by its own wordings and by new
ones, and the long answers lead with what not to do."""

from __future__ import annotations

import re

import pytest

from bot.knowledge import KnowledgeBase
from bot.matcher import Matcher

# Topics added for issue 9, with phrasings that appear nowhere in the knowledge base: the way
# a partner or carer might type them, typos and all.
NEW_TOPICS: dict[str, tuple[str, ...]] = {
    "back-pain": (
        "can a massage sort out his lumbago", "wifes lower back is agony, will a rub help",
        "shooting pain down his leg from his back, can i massage",
    ),
    "neck-and-shoulders": (
        "ok to rub the back of her neck?", "how to massage someones neck without hurting them",
        "is pressing on the throat dangerous",
    ),
    "lower-back-and-tailbone": (
        "how low down the back do i massage", "can i press on the coccyx",
        "massaging the small of his back",
    ),
    "fragile-skin": (
        "grans skin rips so easily, how do i rub her back",
        "her skin bruises at the slightest touch", "massage for very thin elderly skin",
    ),
    "skin-conditions": (
        "is it ok to massage over psoriasis patches", "he has bad eczema on his shoulders",
        "spotty back, what oil won't make it worse",
    ),
    "tattoos-and-scars": (
        "when can i massage over a new tattoo", "can i rub over his scar from the operation",
        "is massaging over tattoos ok",
    ),
    "after-surgery": (
        "dad just had a new hip, can he have a back rub",
        "massage after an operation, how long to wait", "can i rub near the stitches",
    ),
    "pregnancy": (
        "back massage for my pregnant partner",
        "can my pregnant wife lie on her tummy for a massage",
        "what not to do when massaging someone who is pregnant",
    ),
    "fire-safety": (
        "can emollient cream on sheets catch fire", "candles and oxygen, is it dangerous",
        "fire risk from massage oil on towels",
    ),
    "ticklish": (
        "he's too ticklish for a massage", "how to stop it tickling when i massage her",
        "my girlfriend is super ticklish",
    ),
    "dementia-and-agitation": (
        "nan has alzheimers and gets very agitated",
        "can a back rub calm someone with dementia",
        "he gets confused and lashes out when i touch him",
    ),
    "sleep-or-tears": (
        "she fell asleep during the back rub", "why did my husband cry during the massage",
        "he nodded off while i was massaging him",
    ),
    "modesty-and-draping": (
        "mum doesnt want to take her top off", "can i massage over his t shirt",
        "how to keep my dad's dignity when he's undressed",
    ),
    "meals-and-alcohol": (
        "is it ok to massage after a big dinner", "he's had a few beers, can i massage him",
        "should we wait after eating before a back rub",
    ),
    "when-you-are-unwell": (
        "i've got a cold, can i still give mum her back rub",
        "should i massage my dad if i have flu",
        "im poorly with a cough, is it ok to do the massage",
    ),
    "tired-hands": (
        "my hands ache after giving a massage", "my thumbs get sore from massaging",
        "how do i stop my wrists hurting when i knead",
    ),
    "sitting-or-cannot-turn": (
        "massage for someone stuck in a wheelchair",
        "how to rub his back while he sits in a chair",
        "she can't be turned in bed, how do i do her back",
    ),
    "petroleum-jelly-and-spirit": (
        "is vaseline ok for massage", "should i use surgical spirit on her back",
        "is rubbing alcohol good for the back",
    ),
}  # fmt: skip

# An answer longer than this leads with what the person must not do (or it would be split).
LONG_ANSWER_WORDS = 125
MUST_NOT = re.compile(r"\b(don't|never|do not|no|not|stop|skip|avoid)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def matcher(knowledge: KnowledgeBase) -> Matcher:
    return Matcher(knowledge)


def test_the_new_topics_exist(knowledge: KnowledgeBase) -> None:
    missing = set(NEW_TOPICS) - set(knowledge.topics)
    assert not missing


@pytest.mark.parametrize("topic_id", sorted(NEW_TOPICS))
def test_a_new_topic_is_found_by_each_of_its_own_wordings(
    knowledge: KnowledgeBase, matcher: Matcher, topic_id: str
) -> None:
    topic = knowledge.topics[topic_id]
    for wording in topic.aliases + topic.questions:
        assert matcher.match(wording).topic == topic_id, wording


def test_new_topics_are_found_by_wordings_they_have_never_seen(matcher: Matcher) -> None:
    """Most new phrasings are answered; the rest ask back with the topic among the choices.
    None is answered with another topic."""
    answered = asked_back = 0
    for topic_id, phrasings in NEW_TOPICS.items():
        for text in phrasings:
            match = matcher.match(text)
            if match.decision == "answer":
                assert match.topic == topic_id, (text, match.topic)
                answered += 1
            else:
                assert match.decision == "clarify", (text, match)
                assert topic_id in [c.topic for c in match.candidates], (text, match)
                asked_back += 1
    assert answered / (answered + asked_back) >= 0.8, (answered, asked_back)


def test_long_answers_lead_with_what_not_to_do(knowledge: KnowledgeBase) -> None:
    for topic in knowledge.topics.values():
        if len(topic.answer.split()) > LONG_ANSWER_WORDS:
            first = topic.answer.split("\n\n")[0]
            assert MUST_NOT.search(first), topic.id


@pytest.mark.parametrize("topic_id", sorted(NEW_TOPICS))
def test_new_topics_point_to_related_topics_and_safety_ones_say_when_to_get_help(
    knowledge: KnowledgeBase, topic_id: str
) -> None:
    topic = knowledge.topics[topic_id]
    assert len(topic.related) >= 2
    if topic.kind == "safety":
        assert re.search(r"\b(doctor|nurse|GP|midwife|999|111|physio)", topic.answer), topic_id
