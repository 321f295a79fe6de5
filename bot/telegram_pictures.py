"""Pictures in Telegram: a reply with a diagram as photo messages, and sending each picture's
file once per bot.

A reply with a picture becomes one photo with the reply as its caption when that fits
Telegram's 1,024 characters (counted after the HTML is parsed, as a message's 4,096 are);
otherwise the photo goes first, without a caption, and the text follows as usual, its
buttons on the last part.

Editing a screen (a session step, under its pressed button) follows what Telegram allows:
editMessageMedia puts a new photo and caption on a photo or on a text message;
editMessageText cannot touch a photo, and nothing turns a photo back into text. So a text
screen after a photo is sent as a new message and the photo's buttons are taken away
(editMessageReplyMarkup), so only the newest screen can be pressed.

Sending (`OutboxTransport`, the outbox's transport): the first time a picture goes to
Telegram its PNG (bot/pictures.py, drawn at start-up in a child process) is uploaded and
the `file_id` Telegram answers with is stored (`Store.set_picture_file`, keyed by the bot
and the picture's content); every later photo is sent by that name, a small JSON request.
Uploads of one picture wait for each other, so people asking at once cause one upload. A
stored name Telegram no longer accepts is forgotten and the file uploaded again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram import InputFile, InputMediaPhoto
from telegram.error import BadRequest

from bot.diagrams import Picture
from bot.pictures import DrawingFailed, PictureFiles, picture_key
from bot.replies import Reply
from bot.store import Store
from bot.telegram_net import ReplyBot
from bot.telegram_render import render_reply

log = logging.getLogger(__name__)

MAX_CAPTION_CHARS = 1024
# What a row of the outbox is (its "kind"); rows without one are text messages.
PHOTO = "photo"
MARKUP = "markup"  # only changes the buttons of the message it targets (none: takes them off)
# A 400 about the photo's name itself (not the caption or the chat): upload it again.
STALE_FILE = ("wrong file identifier", "wrong remote file identifier", "file reference",
              "wrong type of the web page content", "failed to get http url content")


def outgoing(item: Reply) -> list[dict[str, Any]]:
    """The outbox rows (their parameters) that show `item`: photo first when it has one."""
    if not item.picture:
        return [
            {"text": m.html, "parse_mode": m.parse_mode, "reply_markup": m.markup}
            for m in render_reply(item)
        ]
    captioned = render_reply(item, limit=MAX_CAPTION_CHARS)
    if len(captioned) == 1:
        only = captioned[0]
        return [{"kind": PHOTO, "picture": item.picture, "caption": only.html,
                 "parse_mode": only.parse_mode, "reply_markup": only.markup}]
    photo = {"kind": PHOTO, "picture": item.picture, "caption": "", "parse_mode": None,
             "reply_markup": None}
    return [photo, *outgoing(Reply(item.text, title=item.title, buttons=item.buttons))]


def edit_plan(
    rows: list[dict[str, Any]], target: int, target_is_photo: bool, same_content: bool
) -> list[tuple[dict[str, Any], int | None]]:
    """How `rows` replace message `target`: (row, message it edits or None for a new one).

    `same_content`: only the buttons change (an answer's feedback row), so a long answer's
    photo above its text stays and only the text is edited.
    """
    photo_rows = [row for row in rows if row.get("kind") == PHOTO]
    if same_content and target_is_photo:
        # The photo and its caption stay as they are: only its buttons change.
        return [({"kind": MARKUP, "reply_markup": rows[-1].get("reply_markup")}, target)]
    if len(rows) == 1 and (photo_rows or not target_is_photo):
        return [(rows[0], target)]  # editMessageMedia or editMessageText
    if same_content and not target_is_photo and len(photo_rows) == 1 and len(rows) == 2:
        return [(rows[1], target)]
    # Telegram cannot make this message into these: new ones, and the old one's buttons go.
    return [({"kind": MARKUP}, target), *((row, None) for row in rows)]


def largest_file_id(message: Any) -> str | None:
    """The file_id of the largest size of the photo in a sent or edited message's JSON."""
    sizes = message.get("photo") if isinstance(message, dict) else None
    if not isinstance(sizes, list) or not sizes:
        return None
    best = max(sizes, key=lambda size: int(size.get("width", 0)) * int(size.get("height", 0)))
    file_id = best.get("file_id")
    return file_id if isinstance(file_id, str) and file_id else None


@dataclass
class OutboxTransport:
    """What the outbox sends with: ReplyBot's texts, and photos by file_id once uploaded."""

    bot: ReplyBot
    store: Store
    files: PictureFiles
    pictures: Callable[[], Mapping[str, Picture]]  # the knowledge base's, after any reload
    _uploading: dict[str, asyncio.Lock] = field(default_factory=dict)  # one per picture
    _drawing: asyncio.Lock = field(default_factory=asyncio.Lock)  # one child process at a time

    async def send_text(self, chat_id: int, text: str, **params: Any) -> None:
        await self.bot.send_text(chat_id, text, **params)

    async def edit_text(self, chat_id: int, message_id: int, text: str, **params: Any) -> None:
        await self.bot.edit_text(chat_id, message_id, text, **params)

    async def edit_markup(
        self, chat_id: int, message_id: int, reply_markup: dict[str, Any] | None = None
    ) -> None:
        """A message's buttons changed, or taken off (no reply_markup: none)."""
        await self.bot._post("editMessageReplyMarkup", {
            "chat_id": chat_id, "message_id": message_id, "reply_markup": reply_markup,
        })

    async def send_photo(
        self, chat_id: int, picture: str, caption: str = "", parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
    ) -> None:
        async def send(photo: str | bytes, filename: str) -> Any:
            media = photo if isinstance(photo, str) else InputFile(photo, filename=filename)
            return await self.bot._post("sendPhoto", {
                "chat_id": chat_id, "photo": media, "caption": caption or None,
                "parse_mode": parse_mode if caption else None, "reply_markup": reply_markup,
            })

        if not await self._with_file(picture, send) and caption:
            # No picture to send (gone in a reload, or it could not be drawn): the words go.
            await self.bot.send_text(chat_id, caption, parse_mode=parse_mode,
                                     reply_markup=reply_markup)

    async def edit_photo(
        self, chat_id: int, message_id: int, picture: str, caption: str = "",
        parse_mode: str | None = None, reply_markup: dict[str, Any] | None = None,
    ) -> None:
        async def edit(photo: str | bytes, filename: str) -> Any:
            # PTB sends bytes as a multipart part the media refers to (attach://).
            media = InputMediaPhoto(photo, caption=caption or None,
                                    parse_mode=parse_mode if caption else None,
                                    filename=None if isinstance(photo, str) else filename)
            return await self.bot._post("editMessageMedia", {
                "chat_id": chat_id, "message_id": message_id, "media": media,
                "reply_markup": reply_markup,
            })

        if not await self._with_file(picture, edit) and caption:
            await self.bot.edit_text(chat_id, message_id, caption, parse_mode=parse_mode,
                                     reply_markup=reply_markup)

    async def _with_file(
        self, picture_id: str, call: Callable[[str | bytes, str], Awaitable[Any]]
    ) -> bool:
        """`call` with the picture's file_id, or its upload (whose file_id is then kept);
        False when there is no picture to send: not in the knowledge base, or not drawn."""
        picture = self.pictures().get(picture_id)
        if picture is None:
            log.warning("picture %r is not in the knowledge base any more; sent without it",
                        picture_id)
            return False
        key = picture_key(picture)
        if await self._by_name(key, call):
            return True
        lock = self._uploading.setdefault(key, asyncio.Lock())
        async with lock:
            # Someone else may have uploaded it while this waited.
            if await self._by_name(key, call):
                return True
            try:
                data = (await self._drawn(picture)).read_bytes()
            except (DrawingFailed, OSError) as error:
                # The words matter more than the drawing: they go without it.
                log.error("cannot draw picture %s, sending the text alone: %s", picture.id,
                          error)
                return False
            sent = await call(data, f"{picture.id}.png")
            file_id = largest_file_id(sent)
            if file_id is not None:
                self.store.set_picture_file(self.bot.id, key, file_id)
                log.info("picture %s uploaded to Telegram", picture.id)
        return True

    async def prepare(self) -> None:
        """At start-up: draw (in a child process) every picture Telegram has no name for and
        whose PNG is not on disk, so the first people to see one do not wait for it. Only a
        new or changed picture costs anything; a failure is logged and left to `_drawn`."""
        bot_id = self.bot.id
        needed = [p for p in self.pictures().values()
                  if self.store.picture_file(bot_id, picture_key(p)) is None]
        try:
            async with self._drawing:
                drawn = await self.files.draw_elsewhere(needed)
        except (DrawingFailed, OSError) as error:
            log.warning("could not draw the pictures ahead: %s", error)
            return
        if drawn:
            log.info("drew %d picture(s) into %s", drawn, self.files.directory)

    async def _drawn(self, picture: Picture) -> Path:
        """The picture's PNG, drawn now (with every other one missing) if need be."""
        target = self.files.file_of(picture)
        if not target.exists():
            async with self._drawing:
                await self.files.draw_elsewhere(self.pictures().values())
        return target

    async def _by_name(
        self, key: str, call: Callable[[str | bytes, str], Awaitable[Any]]
    ) -> bool:
        file_id = self.store.picture_file(self.bot.id, key)
        if file_id is None:
            return False
        try:
            await call(file_id, "")
        except BadRequest as error:
            if not any(phrase in error.message.lower() for phrase in STALE_FILE):
                raise
            log.info("Telegram no longer knows picture %s by its name; uploading it again", key)
            self.store.set_picture_file(self.bot.id, key, None)
            return False
        return True
