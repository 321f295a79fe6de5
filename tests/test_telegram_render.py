"""Rendering replies for Telegram: escaping, splitting at 4,096, versioned callback data."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standin import MAX_TEXT_CHARS, ApiError, check_markup, check_text, parse_html

from bot.knowledge import Topic
from bot.replies import Button, Reply
from bot.telegram_render import (
    CALLBACK_VERSION,
    decode_callback,
    encode_callback,
    inline_result,
    render_reply,
    split_text,
    telegram_length,
)

MARKUP = "<b>bold?</b> & <i>x</i> *_[link](x) </b> <script> &amp; \u202ehello\u200b"


def plain_of(reply: Reply) -> str:
    return "\n".join(check_text(m.html, m.parse_mode) for m in render_reply(reply))


def test_title_is_bold_and_everything_else_escaped() -> None:
    [message] = render_reply(Reply(text=MARKUP, title="Tips & <tricks>"))
    assert message.html.startswith("<b>Tips &amp; &lt;tricks&gt;</b>\n\n")
    # The stand-in parses it exactly as Telegram would, and the person sees the raw text.
    assert parse_html(message.html) == f"Tips & <tricks>\n\n{MARKUP}"


def test_buttons_carry_the_version_and_go_on_the_last_part() -> None:
    long_text = "\n\n".join(f"Paragraph {i}. " + "word " * 300 for i in range(8))
    reply = Reply(text=long_text, title="Long", buttons=((Button("Next", "s:next:ab12:3"),),))
    messages = render_reply(reply)
    assert len(messages) > 1
    assert all(m.markup is None for m in messages[:-1])
    markup = messages[-1].markup
    assert markup is not None
    assert markup["inline_keyboard"][0][0] == {
        "text": "Next", "callback_data": CALLBACK_VERSION + "s:next:ab12:3"
    }
    check_markup(markup)
    assert messages[0].html.startswith("<b>Long</b>")
    assert not any(m.html.startswith("<b>") for m in messages[1:])


def test_long_replies_split_on_paragraphs_first() -> None:
    paragraphs = [f"{i} " + "x" * 1500 for i in range(6)]
    messages = render_reply(Reply(text="\n\n".join(paragraphs)))
    texts = [parse_html(m.html) for m in messages]
    assert all(telegram_length(t) <= MAX_TEXT_CHARS for t in texts)
    # Two 1,500-character paragraphs fit in a message, three do not.
    assert texts == ["\n\n".join(paragraphs[i : i + 2]) for i in range(0, 6, 2)]


def test_a_reply_of_only_ampersands_still_fits() -> None:
    # Escaping makes it five times longer; Telegram counts what is shown, so does the split.
    messages = render_reply(Reply(text="&" * 5000))
    assert len(messages) == 2
    for message in messages:
        check_text(message.html, message.parse_mode)


def test_emoji_count_twice_towards_the_limit() -> None:
    messages = render_reply(Reply(text="🙂" * 3000))
    assert len(messages) == 2
    for message in messages:
        check_text(message.html, message.parse_mode)


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from([*"ab <>&;\"'\n\n\n", "🙂", "\u200b", "\u05d0"]),
        max_size=9000,
    ),
    limit=st.integers(min_value=20, max_value=MAX_TEXT_CHARS),
)
def test_any_text_splits_into_valid_parts_that_keep_every_word(text: str, limit: int) -> None:
    messages = render_reply(Reply(text=text, title="T"), limit=limit)
    shown = []
    for message in messages:
        plain = parse_html(message.html)
        assert telegram_length(plain) <= limit
        shown.append(plain)
    assert "".join("".join(shown).removeprefix("T").split()) == "".join(text.split())


def test_split_text_prefers_lines_then_words() -> None:
    assert split_text("aaa bbb\nccc", 7) == ["aaa bbb", "ccc"]
    assert split_text("aaa bbb ccc", 7) == ["aaa bbb", "ccc"]
    assert split_text("abcdefghij", 4) == ["abcd", "efgh", "ij"]


def test_an_empty_reply_is_not_sent() -> None:
    assert render_reply(Reply(text="   ")) == []


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "menu:ask",  # no version: from before versions, or forged
        "0|menu:ask",  # another version
        "1|",
        "1|" + "x" * 63,  # over 64 bytes
        "1|bad\x00action",
    ],
)
def test_callback_data_that_is_not_ours_decodes_to_none(data: object) -> None:
    assert decode_callback(data) is None


def test_callback_data_round_trips() -> None:
    assert decode_callback(encode_callback("topic:petrissage")) == "topic:petrissage"
    with pytest.raises(ValueError):
        encode_callback("x" * 63)


def test_inline_result_sends_valid_html() -> None:
    topic = Topic(
        id="petrissage", kind="technique", title="Petrissage <kneading>", aliases=(),
        questions=(), answer="Knead & lift. " * 40, related=(),
    )
    result = inline_result(topic)
    content = result.input_message_content
    check_text(content.message_text, content.parse_mode)  # type: ignore[union-attr]
    assert result.description is not None and len(result.description) <= 120


def test_the_stand_in_rejects_what_telegram_rejects() -> None:
    for bad in ("<foo>x</foo>", "<b>x", "a < b", "a & b", "<b><i>x</b></i>", "x" * 4097, " "):
        with pytest.raises(ApiError) as caught:
            check_text(bad, "HTML")
        assert caught.value.code == 400
        assert caught.value.description.startswith("Bad Request: ")
