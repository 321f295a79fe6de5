"""Matcher behaviour by style of message, on a small fixture knowledge base and the real one."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.evaluation import evaluate, format_report, load_questions
from bot.knowledge import KnowledgeBase, Topic, load_knowledge
from bot.matcher import MAX_CANDIDATES, Match, Matcher, raw_words, stem

FIXTURES = Path(__file__).parent / "fixtures" / "matcher"


@pytest.fixture(scope="module")
def small() -> Matcher:
    return Matcher(load_knowledge(FIXTURES / "small", require_contract=False))


def assert_invariants(match: Match) -> None:
    assert match.decision in ("answer", "clarify", "fallback")
    assert (match.topic is not None) == (match.decision == "answer")
    assert len(match.candidates) <= MAX_CANDIDATES
    scores = [c.score for c in match.candidates]
    # Best first; but an answer's topic comes first even when another scores higher (the
    # author filed the message word for word under it), the rest best first after it.
    ranked = scores[1:] if match.decision == "answer" else scores
    assert ranked == sorted(ranked, reverse=True)
    assert all(0.0 <= score <= 100.0 for score in scores)
    assert len({c.topic for c in match.candidates}) == len(match.candidates)
    if match.decision == "answer":
        assert match.candidates[0].topic == match.topic
    if match.decision == "clarify":
        assert match.candidates


def answered(matcher: Matcher, text: str) -> str | None:
    match = matcher.match(text)
    assert_invariants(match)
    return match.topic


# -- text handling ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [("kneading", "knead"), ("sores", "sore"), ("massaging", "massage"), ("rubbing", "rub"),
     ("lying", "lie"), ("bodies", "body"), ("strokes", "stroke"), ("pillows", "pillow")],
)  # fmt: skip
def test_stem_meets_word_forms(a: str, b: str) -> None:
    assert stem(a) == stem(b)


def test_stem_leaves_short_and_double_s_words() -> None:
    assert stem("oil") == "oil"
    assert stem("press") == "press"


def test_raw_words_folds_case_accents_and_apostrophes() -> None:
    assert raw_words("What's EFFLEURAGE? Pétrissage, can't") == [
        "whats", "effleurage", "petrissage", "cant",
    ]  # fmt: skip


# -- styles on the fixture knowledge base ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("how do i do petrisage", "petrissage"),
        ("efleurage", "effleurage"),
        ("tapotment", "tapotement"),
        ("wich oil shud i use", "oil-and-lotion"),
    ],
)
def test_typos_are_corrected_against_the_knowledge_base(
    small: Matcher, text: str, topic: str
) -> None:
    assert answered(small, text) == topic


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("kneading", "petrissage"),
        ("how do i do the kneading", "petrissage"),
        ("percussion", "tapotement"),
        ("the tapping one with fists", "tapotement"),
        ("my dad cant lie on his tummy", "side-lying"),
    ],
)
def test_aliases_and_descriptions(small: Matcher, text: str, topic: str) -> None:
    assert answered(small, text) == topic


@pytest.mark.parametrize(
    ("text", "topic"),
    [("towels", "towels-and-washing"), ("lotion", "oil-and-lotion"), ("petrissage", "petrissage")],
)
def test_single_keyword(small: Matcher, text: str, topic: str) -> None:
    assert answered(small, text) == topic


def test_rambling_message_with_context(small: Matcher) -> None:
    text = (
        "so my husband has had a really long week at work and his shoulders are like rocks, "
        "he asked me for a massage tonight and i have never done one before. i watched a video "
        "and they were lifting and squeezing the muscle, kneading it kind of. how do i knead "
        "his shoulders without hurting him?"
    )
    assert answered(small, text) == "petrissage"


@pytest.mark.parametrize(
    "text",
    ["car oil", "how do i knead bread dough", "best sleeping pillow", "tell me a joke",
     "what is the capital of france", "how often should i change my car oil"],
)  # fmt: skip
def test_out_of_scope_near_misses_are_not_answered(small: Matcher, text: str) -> None:
    assert small.match(text).decision != "answer"


def test_two_equally_plausible_topics_ask_back(small: Matcher) -> None:
    match = small.match("stones")
    assert_invariants(match)
    assert match.decision == "clarify"
    assert {c.topic for c in match.candidates[:2]} == {"hot-stones", "cold-stones"}


@pytest.mark.parametrize("text", ["", "   \n\t", "🙂🙂🙂", "???", "a the of"])
def test_empty_or_contentless_input_falls_back(small: Matcher, text: str) -> None:
    assert small.match(text) == Match("fallback", None, ())


def test_very_long_input_is_capped_and_still_matched(small: Matcher) -> None:
    text = "how do i do petrissage " + "blah " * 2000
    assert len(text) > 4000
    match = small.match(text)
    assert_invariants(match)
    assert match.decision != "answer" or match.topic == "petrissage"
    assert small.match("x" * 4000).decision == "fallback"


def test_search_ranks_topics_and_completes_a_half_typed_word(small: Matcher) -> None:
    assert small.search("petri")[0].topic == "petrissage"
    results = small.search("oil", limit=2)
    assert results[0].topic == "oil-and-lotion"
    assert len(results) <= 2
    assert small.search("") == []
    assert small.search("car oil", limit=0) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_match_invariants_hold_for_any_text(small: Matcher, text: str) -> None:
    assert_invariants(small.match(text))
    found = small.search(text, limit=3)
    assert len(found) <= 3
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)


def test_empty_knowledge_base_always_falls_back() -> None:
    matcher = Matcher(KnowledgeBase(topics={}, sessions={}))
    assert matcher.match("how do i do petrissage") == Match("fallback", None, ())
    assert matcher.search("petrissage") == []


def test_out_of_scope_phrasing_vetoes_even_an_exact_topic_word() -> None:
    topic = Topic(
        id="oil", kind="equipment", title="Oil", aliases=("massage oil",),
        questions=("which oil",), answer="Use sunflower oil.", related=(),
    )  # fmt: skip
    matcher = Matcher(KnowledgeBase({"oil": topic}, {}, out_of_scope=("engine oil",)))
    assert matcher.match("which oil").topic == "oil"
    assert matcher.match("which engine oil").decision == "fallback"


def test_a_typo_in_an_example_still_counts_as_the_word_it_misspells() -> None:
    # People's examples keep their typos. One filed under pressure spells "shoulders"
    # badly; a message with the same typo is still about shoulders, not only pressure.
    neck = Topic(
        id="neck", kind="general", title="Neck and shoulders", aliases=("shoulders", "neck"),
        questions=("how do i rub tight shoulders",), answer="Knead the tops of the shoulders.",
        related=(),
    )  # fmt: skip
    pressure = Topic(
        id="pressure", kind="general", title="How firm to press", aliases=("pressure",),
        questions=("how hard should i press",), answer="Press as firmly as is comfortable.",
        related=(), examples=("how hard do i push on her sholdrs",),
    )  # fmt: skip
    matcher = Matcher(KnowledgeBase({"neck": neck, "pressure": pressure}, {}))
    match = matcher.match("her sholdrs are so tight")
    assert [c.topic for c in match.candidates][:1] == ["neck"]
    # The example itself now says "shoulders" too, yet stays pressure's first.
    assert matcher.match("how hard do i push on her sholdrs").topic == "pressure"


def test_an_emergency_inside_a_message_is_answered_at_once() -> None:
    stop = Topic(
        id="stop", kind="safety", title="When to stop", aliases=("tight chest", "dizzy"),
        questions=("when should i stop",), answer="Stop and call for help.", related=(),
    )  # fmt: skip
    oil = Topic(
        id="oil", kind="equipment", title="Oil", aliases=("massage oil",),
        questions=("which oil should i use",), answer="Sunflower oil.", related=(),
    )  # fmt: skip
    knowledge = KnowledgeBase({"stop": stop, "oil": oil}, {}, out_of_scope=("car oil",),
                              urgent={"stop": ("tight chest",)})
    matcher = Matcher(knowledge)
    # A long message mostly about something else, even one the bot refuses (car oil), with
    # an emergency in it: the emergency is what gets answered.
    for text in ("i was rubbing the oil in and now he says his chest feels tight and sore",
                 "got car oil on my hands and she has a tight chest all of a sudden"):
        assert matcher.match(text).topic == "stop", text
    # The same words apart are not the emergency.
    assert matcher.match("which oil should i use, the tight one or chest rub").topic != "stop"


def test_a_plural_or_possessive_of_an_ignored_word_says_who_not_what() -> None:
    # "lady" only says who the rub is for; "ladies" and "dad's" must not become topic words
    # that pull whichever topic's examples happened to use them.
    duration = Topic(
        id="duration", kind="general", title="How long", aliases=("how long",),
        questions=("how long should it take",), answer="About ten minutes.", related=(),
        examples=("how long for each of my ladies", "my ladies at the home like it long",
                  "my dad's rub, how long"),
    )  # fmt: skip
    aftercare = Topic(
        id="aftercare", kind="general", title="Afterwards", aliases=("aftercare",),
        questions=("what do i do once the rub is over",), answer="Cover them up.", related=(),
    )  # fmt: skip
    matcher = Matcher(KnowledgeBase({"duration": duration, "aftercare": aftercare}, {},
                                    ignored_words=frozenset({"lady", "dad"})))
    for text in ("my ladies", "for my dad's"):
        assert matcher.match(text).decision == "fallback", text
    assert matcher.match("my ladies: what do i do once the rub is over").topic == "aftercare"


def test_the_story_in_an_example_lends_its_topic_less_than_its_question() -> None:
    # The same words in both examples; only one asks about the garden, the other sets the
    # scene with it. A message about the garden is nearer the one that asks.
    def topic(topic_id: str, example: str) -> Topic:
        return Topic(id=topic_id, kind="general", title=topic_id, aliases=(), questions=(),
                     answer="Yes.", related=(), examples=(example,))

    matcher = Matcher(KnowledgeBase({
        "told": topic("told", "Out in the garden. Can I press harder?"),
        "asked": topic("asked", "can i press harder out in the garden?"),
    }, {}))
    scores = {c.topic: c.score for c in matcher.search("out in the garden")}
    assert scores["asked"] > scores["told"] > 0


# -- the real knowledge base -----------------------------------------------------------

KNOWLEDGE = Path(__file__).parent.parent / "knowledge"
DEV_QUESTIONS = Path(__file__).parent.parent.parent / "shared" / "eval" / "questions-dev.yaml"


@pytest.fixture(scope="module")
def real() -> Matcher:
    return Matcher(load_knowledge(KNOWLEDGE))


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        # typo
        ("how do i do petrisage", "petrissage"),
        ("efleurage", "effleurage"),
        ("tapotment", "tapotement"),
        ("contraindicatons for a back rub", "contraindications"),
        ("sdie lying", "side-lying"),
        ("should i play music during it", "room-setup"),  # "play" is not a typo of "plan"
        # alias and description
        ("kneading", "petrissage"),
        ("the tapping one with fists", "tapotement"),
        ("my dad cant lie on his tummy", "side-lying"),
        # keyword
        ("talc", "talcum-powder"),
        ("bedsores", "bedsore-prevention"),
        ("what do i need", "equipment"),
        # colloquial
        ("is 5 mins enough lol", "duration"),
    ],
)
def test_real_knowledge_base_answers_by_style(real: Matcher, text: str, topic: str) -> None:
    assert answered(real, text) == topic


def test_real_knowledge_base_rambling_message(real: Matcher) -> None:
    text = (
        "ok so my mum is 84 and mostly in bed since her fall, and the district nurse came round "
        "yesterday and mentioned her skin looked a bit red over her tailbone. i give her a back "
        "rub most evenings anyway. what should i be doing to stop her getting pressure sores?"
    )
    assert answered(real, text) == "bedsore-prevention"


@pytest.mark.parametrize(
    "text",
    [
        "book a massage in rapid city",
        "how do i knead bread dough",
        "tell me a joke",
        "is my back pain cancer",
        "how often should i change my car oil",
        "best sleeping pillow",
        "how do i give a foot massage",
        "he has a blood clot in his leg, can i still massage his back",
    ],
)
def test_real_knowledge_base_out_of_scope_is_never_answered(real: Matcher, text: str) -> None:
    match = real.match(text)
    assert_invariants(match)
    if "blood clot" in text:  # in scope, but "leg ... massage" must not read as "leg massage"
        assert match.topic == "contraindications"
    else:
        assert match.decision != "answer"


@pytest.mark.parametrize(
    "text",
    [
        "lumps on the back",
        "hard lump under the skin on his back",
        "is it ok to massage over a mole",
        "can I massage over varicose veins",
        "he has shingles on his back",
    ],
)
def test_something_on_the_skin_gets_when_not_to_massage(real: Matcher, text: str) -> None:
    # Not friction's "work the knot" nor the finishing topic's "when it's over": these are
    # things to massage around and have checked. Answered, or offered first.
    match = real.match(text)
    assert_invariants(match)
    assert match.topic == "contraindications" or (
        match.decision == "clarify" and match.candidates[0].topic == "contraindications"
    )


@pytest.mark.parametrize(
    "text", ["my back hurts when I sit", "why does my lower back hurt when i wake up"]
)
def test_someones_own_back_pain_is_not_answered_as_the_givers_posture(
    real: Matcher, text: str
) -> None:
    assert real.match(text).topic != "preparing-yourself"


def test_real_knowledge_base_long_input_does_not_crash(real: Matcher) -> None:
    ramble = "my husband works long hours and his shoulders are always tight. " * 80
    assert_invariants(real.match(ramble[:4000] + " how hard should i press?"))
    assert_invariants(real.match("🙂" * 4000))


def test_dev_set_keeps_wrong_and_false_answers_rare(real: Matcher) -> None:
    """A guard on the safety targets: wrong answers are worse than asking back. The dev set
    was tuned on, so its direct rate is a guard against breakage, not evidence (README):
    the refit on waves 1-6 took it from 83% to 80%, every miss a did-you-mean offering the
    right topic, for fewer out-of-scope answers in cross-validation."""
    report = evaluate(load_questions(DEV_QUESTIONS), real)
    assert report.wrong_answer <= 3.0, format_report(report)
    assert report.false_answer <= 10.0, format_report(report)
    assert report.direct_correct >= 75.0, format_report(report)


@pytest.mark.parametrize("name", ["heldout-like.yaml", "heldout-2.yaml"])
def test_held_out_like_sets_keep_wrong_and_false_answers_rare(real: Matcher, name: str) -> None:
    """The same guard on sets written without looking at the knowledge base's phrasings."""
    report = evaluate(load_questions(FIXTURES / name), real)
    assert report.wrong_answer <= 3.0, format_report(report)
    assert report.false_answer <= 10.0, format_report(report)
    assert report.direct_correct >= 80.0, format_report(report)


def test_stroking_is_the_technique_and_a_stroke_is_not() -> None:
    assert stem("stroking") != stem("stroke")
    assert stem("strokes") == stem("stroke")


@pytest.mark.parametrize(("a", "b"), [("buying", "buy"), ("playing", "play"), ("lying", "lie")])
def test_stem_ying_only_becomes_ie_after_a_bare_consonant(a: str, b: str) -> None:
    assert stem(a) == stem(b)


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("how often should patients be turned", "bedsore-prevention"),
        ("my client cant lie face down", "side-lying"),
        ("stroking", "effleurage"),
    ],
)
def test_real_knowledge_base_carer_words_and_stroking(real: Matcher, text: str, topic: str) -> None:
    # Carers' words lead to the topic: answered, or offered first beside a close second.
    match = real.match(text)
    assert_invariants(match)
    assert match.topic == topic or (
        match.decision == "clarify" and match.candidates[0].topic == topic
    )


@pytest.mark.parametrize(
    "text",
    ["massage oil for my beard", "how do i knead pasta dough", "what are the signs of a stroke"],
)
def test_real_knowledge_base_short_message_about_something_else(real: Matcher, text: str) -> None:
    assert real.match(text).decision != "answer"


def test_real_knowledge_base_inline_search(real: Matcher) -> None:
    assert real.search("petri")[0].topic == "petrissage"
    assert real.search("bedsor")[0].topic == "bedsore-prevention"
    assert len(real.search("massage", limit=5)) == 5
