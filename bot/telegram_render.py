"""Turning the core's plain replies into Telegram messages: HTML, buttons, splitting.

Telegram's HTML parse mode rejects a whole message over one stray `<` or `&`, so every piece of
text that comes from the knowledge base or from a person is escaped, and the only markup we add
ourselves is `<b>` around the title. Telegram caps a message at 4,096 characters (counted after
the markup is parsed), so a long reply is split on paragraph, then line, then word boundaries;
the buttons go on the last part, under the text they refer to. Lengths are counted in UTF-16
code units, which is never less than the characters Telegram counts, so a part that fits here
fits there.

Callback data is `VERSION + action`. The version lets a later release change the action
vocabulary and recognise buttons on old messages; anything that does not carry it, or that is
longer than Telegram's 64 bytes, is treated as a stale button.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineQueryResultArticle, InputTextMessageContent
from telegram.constants import ParseMode

from bot.knowledge import Topic
from bot.replies import Reply

CALLBACK_VERSION = "1|"
MAX_CALLBACK_BYTES = 64
MAX_MESSAGE_CHARS = 4096
TITLE_SEPARATOR = "\n\n"
# Inline results show a one-line description under the title; longer is cut by the client.
INLINE_DESCRIPTION_CHARS = 120
# Splitting prefers the largest boundary that keeps a part whole.
BOUNDARIES = ("\n\n", "\n", " ")

# An inline keyboard as the Bot API's JSON ({"inline_keyboard": rows of buttons}). Built as
# plain dicts: PTB's InlineKeyboardMarkup took ~50 us a reply to build and serialise back,
# a twentieth of handling a message (bench/bench_telegram.py), and ReplyBot sends it as is.
Keyboard = dict[str, list[list[dict[str, str]]]]


@dataclass(frozen=True)
class OutgoingMessage:
    """One Telegram message ready to send: HTML text and its keyboard, if any."""

    html: str
    markup: Keyboard | None = None
    parse_mode: str = ParseMode.HTML


def telegram_length(text: str) -> int:
    """Length as Telegram limits it, counted conservatively in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def encode_callback(action: str) -> str:
    data = CALLBACK_VERSION + action
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data for {action!r} is over {MAX_CALLBACK_BYTES} bytes")
    return data


def decode_callback(data: object) -> str | None:
    """The action inside callback data, or None when it is not one of ours (old or forged)."""
    if not isinstance(data, str) or len(data.encode()) > MAX_CALLBACK_BYTES:
        return None
    if not data.startswith(CALLBACK_VERSION):
        return None
    action = data[len(CALLBACK_VERSION) :]
    return action if action and action.isprintable() else None


def keyboard(reply: Reply) -> Keyboard | None:
    rows = [
        [{"text": button.short or button.label, "callback_data": encode_callback(button.action)}
         for button in row]
        for row in reply.buttons
        if row
    ]
    return {"inline_keyboard": rows} if rows else None


def _hard_split(text: str, budget: int) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        width = telegram_length(char)
        if size + width > budget:
            parts.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    if current:
        parts.append("".join(current))
    return parts


def split_text(text: str, budget: int, boundaries: Sequence[str] = BOUNDARIES) -> list[str]:
    """Cut `text` into parts of at most `budget` (Telegram length), at the best boundaries."""
    if telegram_length(text) <= budget:
        return [text]
    if not boundaries:
        return _hard_split(text, budget)
    separator, finer = boundaries[0], boundaries[1:]
    parts: list[str] = []
    current = ""
    for piece in text.split(separator):
        candidate = f"{current}{separator}{piece}" if current else piece
        if telegram_length(candidate) <= budget:
            current = candidate
            continue
        if current:
            parts.append(current)
        if telegram_length(piece) <= budget:
            current = piece
        else:
            *whole, current = split_text(piece, budget, finer)
            parts.extend(whole)
    if current:
        parts.append(current)
    return [part for part in parts if part.strip()]


def render_reply(reply: Reply, limit: int = MAX_MESSAGE_CHARS) -> list[OutgoingMessage]:
    """A reply as one or more messages: bold title on the first, buttons on the last."""
    title = reply.title.strip()
    text = reply.text.strip()
    # What a shortened button label left out, said once, under the text.
    cut = [b.label for row in reply.buttons for b in row if b.short and b.short != b.label]
    text = "\n\n".join(part for part in (text, "\n".join(cut)) if part)
    header = telegram_length(title + TITLE_SEPARATOR) if title else 0
    # Every part gets the first part's budget: titles are short, and equal parts read better.
    parts = split_text(text, limit - header) if text else []
    if not parts:
        parts = [""]
    messages: list[OutgoingMessage] = []
    for index, part in enumerate(parts):
        body = html.escape(part, quote=False)
        if index == 0 and title:
            body = f"<b>{html.escape(title, quote=False)}</b>" + (
                TITLE_SEPARATOR + body if body else ""
            )
        last = index == len(parts) - 1
        messages.append(OutgoingMessage(html=body, markup=keyboard(reply) if last else None))
    # Telegram refuses an empty message; the core never sends one, but a blank KB field could.
    return [message for message in messages if message.html.strip()]


def inline_result(topic: Topic) -> InlineQueryResultArticle:
    """A topic offered in inline mode; what gets sent is its title and answer."""
    first = render_reply(Reply(text=topic.answer, title=topic.title))[0]
    summary = " ".join(topic.answer.split())
    if len(summary) > INLINE_DESCRIPTION_CHARS:
        summary = summary[: INLINE_DESCRIPTION_CHARS - 1].rstrip() + "…"
    return InlineQueryResultArticle(
        id=topic.id,
        title=topic.title,
        description=summary,
        input_message_content=InputTextMessageContent(first.html, parse_mode=ParseMode.HTML),
    )
