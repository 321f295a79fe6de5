"""How a message is read before matching: markup, sentences, derived word forms."""

from __future__ import annotations

import pytest

from bot.wording import Phrases, base_forms, raw_words, sentences, strip_markup


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("<b>how</b> do i", " how  do i"),
        ('<a href="https://x.example">oil</a> &amp; towels', " oil  & towels"),
        ("a < b and c > d", "a < b and c > d"),  # not tags: left alone
    ],
)
def test_markup_is_stripped(text: str, plain: str) -> None:
    assert strip_markup(text) == plain


def test_markdown_and_html_leave_the_same_words() -> None:
    assert raw_words("<i>how</i> long *should* ~it~ take?") == raw_words("how long should it take")


def test_the_question_sentence_is_told_from_the_story() -> None:
    found = sentences(
        "My wife works nights at the hospital and her back is in bits. "
        "She asked me for a rub tonight. Which way should the strokes go?"
    )
    assert [s.question for s in found] == [False, False, True]
    assert found[-1].words == ["which", "way", "should", "the", "strokes", "go"]


@pytest.mark.parametrize(
    "text",
    [
        "how do i do petrissage",  # one sentence
        "my back aches. his too.",  # no question anywhere: all of it counts
        "so, can i use olive oil? and how much?",  # all questions
    ],
)
def test_a_message_that_is_all_story_or_all_question_counts_whole(text: str) -> None:
    assert all(s.question for s in sentences(text))


def test_a_chat_opener_does_not_hide_a_question() -> None:
    found = sentences("ok so. we just got home from the gym. ok so is it fine to knead sore traps")
    assert [s.question for s in found] == [False, False, True]


@pytest.mark.parametrize(
    ("word", "base"),
    [("tappy", "tap"), ("knotty", "knot"), ("gently", "gentl"), ("easily", "easy"),
     ("oily", "oil")],
)
def test_derived_forms_offer_the_base_word(word: str, base: str) -> None:
    assert base in base_forms(word)


def test_short_words_offer_no_base_forms() -> None:
    assert base_forms("shy") == []  # "sh" is too short to be a word of its own


def test_a_phrase_is_read_as_the_word_it_means() -> None:
    phrases = Phrases.of(
        {("had", "a", "stroke"): "apoplexy", ("their", "stroke"): "apoplexy",
         ("a", "stroke"): "other"},
        people=frozenset({"dad", "wife"}),
    )
    # The longest phrase wins, and his, her and a person's possessive are "their".
    assert phrases.join(raw_words("he had a stroke in june")) == ["he", "apoplexy", "in", "june"]
    assert phrases.join(raw_words("since dad's stroke")) == ["since", "apoplexy"]
    assert phrases.join(raw_words("after her stroke, is it ok")) == ["after", "apoplexy", "is",
                                                                     "it", "ok"]
    # Not a person's possessive, and the plural of the massage sense: left alone.
    assert phrases.join(raw_words("long strokes, lighter strokes")) == [
        "long", "strokes", "lighter", "strokes"]
    assert phrases.join(raw_words("the stroke")) == ["the", "stroke"]
