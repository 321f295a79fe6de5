"""Pictures in Telegram, end to end through PTB and the stand-in: a photo with the answer as
its caption, uploaded once per bot and sent by file_id after that, step screens edited with
editMessageMedia, a long answer as photo then text, faults, and /settings turning them off."""

from __future__ import annotations

import io
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from standin import TOKEN, BotFixture, StandIn, User, bot_settings, start_bot

from bot.clock import ScaledClock, SystemClock
from bot.knowledge import KnowledgeBase
from bot.pictures import PICTURES_DIR, DrawingFailed, PictureFiles, picture_key
from bot.replies import Response, reply
from bot.telegram_pictures import MAX_CAPTION_CHARS

SPEED = 3000.0


@pytest.fixture
async def bot(api: StandIn, tmp_path: Path, knowledge: KnowledgeBase, drawn_pictures: Path
              ) -> AsyncIterator[BotFixture]:
    shutil.copytree(drawn_pictures, tmp_path / PICTURES_DIR)  # see test_telegram_app.py
    running = await start_bot(api, bot_settings(api, tmp_path), knowledge,
                              ScaledClock(speed=SPEED))
    yield running
    await running.close()


@pytest.fixture
def ann(api: StandIn) -> User:
    return User(api, user_id=1001, first_name="Ann")


async def test_an_answer_comes_as_a_photo_uploaded_once_then_sent_by_its_name(
    api: StandIn, ann: User, bot: BotFixture, knowledge: KnowledgeBase
) -> None:
    topic = knowledge.topics["tapotement"]
    [answer] = await ann.say("how do I do tapotement?")
    assert answer.photo and answer.kind == "send"
    assert answer.html.startswith(f"<b>{topic.title}</b>\n\n")  # the answer is the caption
    assert topic.answer.splitlines()[0] in answer.text
    assert any("Helpful" in label for label, _data in answer.buttons)
    assert api.content_types["sendPhoto"].startswith("multipart/form-data")
    [upload] = api.uploads
    assert upload.content_type == "image/png" and upload.data.startswith(b"\x89PNG")
    # The name Telegram gave the largest size is kept for this bot.
    store = bot.conversation.store
    key = picture_key(knowledge.pictures["tapotement"])
    assert store.picture_file(bot.app.bot.id, key) == answer.photo

    ben = User(api, user_id=1002, first_name="Ben")
    [again] = await ben.say("what is tapotement")
    assert again.photo == answer.photo
    assert api.content_types["sendPhoto"] == "application/json"  # by name: no upload
    assert len(api.uploads) == 1


async def test_pictures_off_in_settings_gives_text_only(
    api: StandIn, ann: User, bot: BotFixture
) -> None:
    [settings] = await ann.say("/settings")
    assert "Pictures are ON" in settings.text
    [off] = await ann.press(settings, "Turn pictures off")
    assert off.kind == "edit" and "Pictures are OFF" in off.text
    [answer] = await ann.say("how do I do friction?")
    assert not answer.photo and answer.text.startswith("Friction")
    assert api.uploads == []


async def test_feedback_on_a_photo_answer_edits_its_buttons_away(
    api: StandIn, ann: User, bot: BotFixture
) -> None:
    [answer] = await ann.say("how do I do vibration?")
    outputs = await ann.press(answer, "Helpful", expect=2)
    edited = next(o for o in outputs if o.kind == "edit")
    assert edited.message_id == answer.message_id and edited.photo == answer.photo
    assert edited.text == answer.text
    assert not any("Helpful" in label for label, _data in edited.buttons)
    assert edited.buttons  # the related topics are still there
    # Only the buttons changed: no new photo, no new caption.
    assert api.calls_to("editMessageReplyMarkup") and not api.calls_to("editMessageMedia")
    assert len(api.uploads) == 1


async def test_step_screens_change_picture_in_place_and_leave_a_photo_for_text(
    api: StandIn, ann: User, bot: BotFixture, knowledge: KnowledgeBase
) -> None:
    [settings] = await ann.say("/settings")
    await ann.press(settings, "Turn hands-free off")  # timed steps wait for Next
    [screen] = await ann.say("/start session-quick-back")
    for _ in range(knowledge.safety_check.screens("quick-back")):
        [screen] = await ann.press(screen, "No")
    [screen] = await ann.press(screen, "Ready")
    assert screen.text.startswith("Step 1 of") and not screen.photo  # Get ready: no picture

    # Text to photo: the same message, now the positioning picture (editMessageMedia).
    [position] = await ann.press(screen, "Next")
    assert position.kind == "edit" and position.message_id == screen.message_id
    assert position.photo and "Position the person" in position.text
    assert api.calls_to("editMessageMedia")

    # Photo to text: a new message; the photo keeps its picture and loses its buttons.
    oil = await ann.next_screen(position, "Next")
    assert oil.kind == "send" and not oil.photo and "Warm the oil" in oil.text
    left = api.messages[(ann.chat_id, position.message_id)]
    assert left.photo == position.photo and left.buttons == []

    # The timed step ends (time's up, waiting for Next); then text to photo again in place.
    await api.wait_for(lambda: any("Time's up" in o.text for o in api.sent_in(ann.chat_id)))
    times_up = [o for o in api.sent_in(ann.chat_id) if "Time's up" in o.text][-1]
    [effleurage] = await ann.press(times_up, "Next")
    assert effleurage.photo and effleurage.kind == "edit"
    assert "Effleurage" in effleurage.text

    # A photo to another photo: edited in place, the new picture uploaded on the way.
    [petrissage] = await ann.press(effleurage, "Next")
    assert petrissage.kind == "edit" and petrissage.message_id == effleurage.message_id
    assert petrissage.photo and petrissage.photo != effleurage.photo
    assert "Petrissage" in petrissage.text
    assert len(api.uploads) == 3  # positioning, effleurage, petrissage: once each


async def test_a_long_reply_with_a_picture_is_the_photo_then_the_text(
    api: StandIn, ann: User, bot: BotFixture
) -> None:
    long = "Glide up beside the spine, fan out and come down lightly. " * 40
    assert len(long) > MAX_CAPTION_CHARS
    conversation = bot.conversation
    menu = conversation.handle_start(ann.chat_id).replies[0].buttons

    def handle_text(chat_id: int, text: str, offered: object = ()) -> Response:
        return reply(long, title="Effleurage at length", buttons=menu, picture="effleurage")

    conversation.handle_text = handle_text  # type: ignore[method-assign]
    photo, text = await ann.say("tell me about effleurage", expect=2)
    assert photo.photo and photo.text == "" and photo.buttons == []
    assert not text.photo and text.html.startswith("<b>Effleurage at length</b>")
    assert text.buttons  # the buttons under the words they belong to


async def test_a_photo_that_fails_is_sent_again_and_a_stale_name_is_uploaded_anew(
    api: StandIn, ann: User, bot: BotFixture, knowledge: KnowledgeBase
) -> None:
    api.add_fault("sendPhoto", "bad_gateway", times=2, chat_id=ann.chat_id)
    [answer] = await ann.say("how do I do petrissage?")
    assert answer.photo and len(api.failures("sendPhoto", ann.chat_id)) == 2
    assert len(api.uploads) == 1 and len(api.sent_in(ann.chat_id)) == 1

    # Telegram no longer knows the stored name: forgotten, uploaded again, still delivered.
    store = bot.conversation.store
    key = picture_key(knowledge.pictures["petrissage"])
    store.set_picture_file(bot.app.bot.id, key, "a-name-telegram-forgot")
    [again] = await ann.say("how do I knead the shoulders")
    assert again.photo and len(api.uploads) == 2
    assert store.picture_file(bot.app.bot.id, key) == again.photo


async def test_the_picture_names_survive_a_restart(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase
) -> None:
    settings = bot_settings(api, tmp_path)
    ann = User(api, user_id=1001)
    first = await start_bot(api, settings, knowledge, SystemClock())
    try:
        [answer] = await ann.say("how do I do effleurage?")
    finally:
        await first.close()
    second = await start_bot(api, settings, knowledge, SystemClock())
    try:
        [again] = await ann.say("what is effleurage")
    finally:
        await second.close()
    assert again.photo == answer.photo and len(api.uploads) == 1


async def test_the_stand_in_refuses_photos_as_telegram_does(api: StandIn) -> None:
    url = f"{api.base_url}{TOKEN}/sendPhoto"
    async with httpx.AsyncClient() as client:
        not_an_image = await client.post(url, data={"chat_id": "1"},
                                         files={"photo": ("a.png", b"not a png", "image/png")})
        buffer = io.BytesIO()
        Image.new("RGB", (64, 80), "white").save(buffer, format="PNG")
        data = buffer.getvalue()
        too_long = await client.post(url, data={"chat_id": "1", "caption": "x" * 1025},
                                     files={"photo": ("a.png", data, "image/png")})
        wrong_type = await client.post(url, data={"chat_id": "1"},
                                       files={"photo": ("a.txt", data, "text/plain")})
        unknown_name = await client.post(url, json={"chat_id": 1, "photo": "nobody-gave-this"})
        fine = await client.post(url, data={"chat_id": "1", "caption": "x" * 1024},
                                 files={"photo": ("a.png", data, "image/png")})
    assert not_an_image.json()["description"] == "Bad Request: IMAGE_PROCESS_FAILED"
    assert too_long.json()["description"] == "Bad Request: message caption is too long"
    assert wrong_type.status_code == 400 and unknown_name.status_code == 400
    assert fine.json()["ok"] and len(fine.json()["result"]["photo"]) == 2


async def test_a_picture_that_cannot_be_drawn_leaves_the_answer_as_text(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def cannot_draw(self: PictureFiles, pictures: object) -> int:
        raise DrawingFailed("drawing 1 picture(s) failed (exit 1): no space left on device")

    monkeypatch.setattr(PictureFiles, "draw_elsewhere", cannot_draw)
    running = await start_bot(api, bot_settings(api, tmp_path), knowledge, SystemClock())
    try:
        [answer] = await User(api, user_id=1001).say("how do I do friction?")
    finally:
        await running.close()
    assert not answer.photo and answer.text.startswith(knowledge.topics["friction"].title)
    assert any("Helpful" in label for label, _data in answer.buttons)
    assert api.uploads == []


async def test_feedback_on_a_photo_after_pictures_went_off_keeps_it_as_it_is(
    api: StandIn, ann: User, bot: BotFixture
) -> None:
    [answer] = await ann.say("how do I do effleurage?")
    [settings] = await ann.say("/settings")
    await ann.press(settings, "Turn pictures off")
    since = len(api.outputs)
    await ann.press(answer, "Helpful", expect=2)
    changed = api.outputs_in(ann.chat_id, since)
    edited = next(o for o in changed if o.message_id == answer.message_id)
    assert edited.photo == answer.photo and edited.text == answer.text
    assert not any("Helpful" in label for label, _data in edited.buttons)
    # Only the thanks is new: the answer is not sent again as text.
    assert [o.text for o in changed if o.kind == "send"] == ["Thanks, glad it helped!"]
