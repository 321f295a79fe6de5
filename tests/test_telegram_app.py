"""End to end: a person talks to our bot through PTB's real HTTP stack and the stand-in."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from standin import BOT_USERNAME, BotFixture, Output, StandIn, User, bot_settings, start_bot

from bot.clock import ScaledClock
from bot.knowledge import KnowledgeBase
from bot.matcher import MAX_CANDIDATES, Matcher
from bot.pictures import PICTURES_DIR
from bot.replies import Response, reply
from bot.telegram_app import timer_job_name

# A 3-minute step lasts 0.06 s: whole sessions run in well under a second.
SPEED = 3000.0


@pytest.fixture
async def bot(api: StandIn, tmp_path: Path, knowledge: KnowledgeBase, drawn_pictures: Path
              ) -> AsyncIterator[BotFixture]:
    # Drawn beforehand: at SPEED, drawing a picture (0.3 s) would be 15 minutes of a session.
    shutil.copytree(drawn_pictures, tmp_path / PICTURES_DIR)
    running = await start_bot(
        api, bot_settings(api, tmp_path), knowledge, ScaledClock(speed=SPEED)
    )
    yield running
    await running.close()


@pytest.fixture
def ann(api: StandIn) -> User:
    return User(api, user_id=1001, first_name="Ann")


@pytest.fixture
def no_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if any handler failed, even when the person got a polite reply."""
    caplog.set_level("INFO")
    yield
    failures = [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert failures == []


def last_with_buttons(outputs: list[Output]) -> Output:
    return [o for o in outputs if o.buttons][-1]


pytestmark = pytest.mark.usefixtures("bot", "no_errors")


async def test_start_greets_and_offers_the_four_buttons(api: StandIn, ann: User) -> None:
    [greeting] = await ann.say("/start")
    assert greeting.kind == "send"
    assert greeting.parse_mode == "HTML"
    assert greeting.html.startswith("<b>")
    labels = " | ".join(label for label, _ in greeting.buttons)
    for wanted in ("Ask a question", "Guided session", "Equipment", "Browse topics"):
        assert wanted in labels
    assert all(data.startswith("1|") for _, data in greeting.buttons)
    # The command menu was set at start-up, from the core's list.
    assert [c["command"] for c in api.commands][:1] == ["start"]
    assert {"help", "session", "equipment", "topics", "settings", "stop"} <= {
        c["command"] for c in api.commands
    }


async def test_the_greeting_buttons_lead_somewhere(api: StandIn, ann: User) -> None:
    [greeting] = await ann.say("/start")
    [ask] = await ann.press(greeting, "Ask a question")
    assert ask.kind == "send" and "question" in ask.text.lower()
    [picker] = await ann.press(greeting, "Guided session")
    assert "Quick" in " ".join(label for label, _ in picker.buttons)
    [checklist] = await ann.press(greeting, "Equipment")
    assert checklist.buttons
    [subjects] = await ann.press(greeting, "Browse topics")
    assert "Techniques" in [label for label, _ in subjects.buttons]
    assert api.unanswered_queries() == set()


async def test_a_question_is_answered_with_bold_title_and_related_buttons(
    api: StandIn, ann: User, knowledge: KnowledgeBase
) -> None:
    [answer] = await ann.say("how do I do petrissage?")
    topic = knowledge.topics["petrissage"]
    assert answer.html.startswith(f"<b>{topic.title}</b>\n\n")
    assert answer.text.startswith(topic.title)
    related_titles = {knowledge.topics[r].title for r in topic.related}
    assert related_titles <= {label for label, _ in answer.buttons}
    # A related topic opens as a new message, so the first answer stays readable.
    [second] = await ann.press(answer, knowledge.topics[topic.related[0]].title)
    assert second.kind == "send" and second.message_id != answer.message_id
    assert second.html.startswith(f"<b>{knowledge.topics[topic.related[0]].title}</b>")


async def test_an_unsure_match_offers_did_you_mean(
    api: StandIn, ann: User, knowledge: KnowledgeBase
) -> None:
    # Whichever of these vague messages the matcher is unsure about (tuning may move them).
    matcher = Matcher(knowledge)
    candidates = ("strokes", "oil", "back", "hands")
    vague = [q for q in candidates if matcher.match(q).decision == "clarify"]
    assert vague, "one of these vague messages should get a did-you-mean"
    match = matcher.match(vague[0])
    [question] = await ann.say(vague[0])
    labels = [label for label, _ in question.buttons]
    assert 2 <= len(labels) <= MAX_CANDIDATES + 1  # and "None of these"
    assert labels[-1] == "None of these"
    expected = knowledge.topics[match.candidates[0].topic].title
    assert labels[0] == expected
    [answer] = await ann.press(question, expected)
    assert answer.html.startswith(f"<b>{expected}</b>")
    [sorry] = await ann.press(question, "None of these")
    assert sorry.kind == "send"


async def test_out_of_scope_gets_the_polite_fallback(ann: User) -> None:
    [fallback] = await ann.say("how do I change the oil in my car?")
    assert "can't help" in fallback.text.lower()
    assert fallback.buttons  # the menu, to find a way back in


async def test_equipment_ticks_are_edited_in_place_and_persist(
    api: StandIn, ann: User, bot: BotFixture
) -> None:
    [checklist] = await ann.say("/equipment")
    first_item = checklist.buttons[0][0]
    [ticked] = await ann.press(checklist, first_item)
    assert ticked.kind == "edit" and ticked.message_id == checklist.message_id
    assert ticked.buttons[0][0] != first_item  # the label now shows the tick
    [again] = await ann.say("/equipment")
    assert again.buttons[0][0] == ticked.buttons[0][0]
    assert bot.conversation.store.ticked(ann.chat_id, "equipment") == {0}


async def test_topics_are_browsed_by_kind(
    api: StandIn, ann: User, knowledge: KnowledgeBase
) -> None:
    [subjects] = await ann.say("/topics")
    [techniques] = await ann.press(subjects, "Techniques")
    assert techniques.kind == "edit"
    titles = {label for label, _ in techniques.buttons}
    assert knowledge.topics["effleurage"].title in titles
    [answer] = await ann.press(techniques, knowledge.topics["effleurage"].title)
    assert answer.kind == "send"


async def test_deep_links_open_a_topic_or_start_a_session(
    ann: User, knowledge: KnowledgeBase
) -> None:
    [topic] = await ann.say("/start tapotement")
    assert topic.html.startswith(f"<b>{knowledge.topics['tapotement'].title}</b>")
    [safety] = await ann.say("/start session-quick-back")
    assert "Safety check 1 of" in safety.text


async def test_settings_switch_hands_free(api: StandIn, ann: User, bot: BotFixture) -> None:
    [settings] = await ann.say("/settings")
    [switched] = await ann.press(settings, "hands-free")
    assert switched.kind == "edit"
    assert switched.text != settings.text
    # Pressing the old button again changes nothing: "message is not modified" is harmless.
    since = len(api.outputs)
    await ann.send(ann.press_update(settings, settings.buttons[0][1]), expect=0)
    [help_message] = await ann.say("/help")
    assert "/session" in help_message.text
    assert api.outputs_in(ann.chat_id, since)[-1] == help_message
    assert api.unanswered_queries() == set()


async def test_help_stop_and_unknown_commands(ann: User) -> None:
    [help_message] = await ann.say("/help")
    assert "/session" in help_message.text
    [stop] = await ann.say("/stop")
    assert "no session" in stop.text.lower()
    [unknown] = await ann.say("/dance")
    assert "/dance" in unknown.text


async def test_a_whole_guided_session_with_timers(
    api: StandIn, ann: User, knowledge: KnowledgeBase, bot: BotFixture
) -> None:
    session = knowledge.sessions["quick-back"]
    steps = len(session.steps)
    [picker] = await ann.say("/session")
    [screen] = await ann.press(picker, session.title)
    for _ in range(knowledge.safety_check.screens(session.id)):  # "None of these", then No
        assert "Safety check" in screen.text
        [screen] = await ann.press(screen, "No")
        assert screen.kind == "edit"
    assert "Get ready" in screen.text
    [screen] = await ann.press(screen, "Ready")
    assert screen.text.startswith(f"Step 1 of {steps}")

    # Untimed steps wait for Next; the message is edited into the next step (a new message
    # when a step with a picture is followed by one without: no edit makes a photo text).
    while session.steps[int(re.findall(r"Step (\d+) of", screen.text)[0]) - 1].seconds is None:
        before, screen = screen, await ann.next_screen(screen, "Next")
        assert screen.kind == "edit" or (before.photo and not screen.photo)
        if screen.kind == "send":
            assert not api.messages[(ann.chat_id, before.message_id)].buttons
    first_timed = screen
    # Its timer is armed, or (a 30 s step lasts 10 ms here) has already fired and moved on.
    # Between the two the job is gone and "Time's up" not yet sent: look again for a moment.
    def armed_or_fired() -> bool:
        return bool(bot.app.job_queue.get_jobs_by_name(timer_job_name(ann.chat_id))) or any(
            "Time's up" in o.text for o in api.outputs_in(ann.chat_id)[api.outputs.index(screen):]
        )

    for _ in range(100):
        if armed_or_fired():
            break
        await asyncio.sleep(0.02)
    assert armed_or_fired()

    # Hands-free (the default) runs the timed steps by itself, each announced in a NEW message.
    final = f"Step {steps} of {steps}"
    await api.wait_for(lambda: any(final in o.text for o in api.sent_in(ann.chat_id)), 10.0,
                       what="the last step")
    announced = api.outputs_in(ann.chat_id)[api.outputs.index(first_timed) + 1 :]
    assert any("Time's up" in o.text and o.kind == "send" for o in announced)
    step_messages = [o for o in announced if re.match(r"Step \d+ of \d+", o.text)]
    assert step_messages and all(o.kind == "send" for o in step_messages)
    assert any("1 minute left" in o.text or "⏳" in o.text for o in announced)

    last = [o for o in api.sent_in(ann.chat_id) if final in o.text][-1]
    [summary] = await ann.press(last, "Finish")
    assert "Session complete" in summary.text
    assert any(data.endswith("menu:session") for _label, data in summary.buttons)  # not a dead end
    assert bot.conversation.store.load_session(ann.chat_id) is None
    assert not bot.app.job_queue.get_jobs_by_name(timer_job_name(ann.chat_id))
    assert api.unanswered_queries() == set()


async def test_stop_mid_session_cancels_the_timer(
    api: StandIn, ann: User, bot: BotFixture
) -> None:
    [safety] = await ann.say("/start session-quick-back")
    [stopped] = await ann.press(safety, "Stop")
    assert "cancelled" in stopped.text.lower()
    assert any(data.endswith("menu:ask") for _label, data in stopped.buttons)
    assert bot.conversation.store.load_session(ann.chat_id) is None


async def test_inline_mode_offers_matching_answers(api: StandIn, ann: User) -> None:
    api.push({"inline_query": {"id": "iq1", "from": ann.person, "query": "petrissage",
                               "offset": ""}})
    api.push({"inline_query": {"id": "iq2", "from": ann.person, "query": "", "offset": ""}})
    await api.wait_for(lambda: len(api.inline_answers) == 2, what="two inline answers")
    by_id = {answer["inline_query_id"]: answer["results"] for answer in api.inline_answers}
    assert "petrissage" in [result["id"] for result in by_id["iq1"]]
    assert by_id["iq2"] == []


async def test_in_groups_only_commands_mentions_and_replies_are_answered(
    api: StandIn, knowledge: KnowledgeBase
) -> None:
    group = User(api, user_id=1002, chat_id=-100500, first_name="Ben")
    api.push(group.text_update("how do I do petrissage?"))  # talk among people: ignored
    api.push(group.text_update("/help@some_other_bot"))  # for another bot: ignored
    api.push({"message": group.message(photo=[{"file_id": "p", "file_unique_id": "p",
                                               "width": 1, "height": 1}])})
    [answer] = await group.say(f"@{BOT_USERNAME} how do I do petrissage?")
    assert answer.html.startswith(f"<b>{knowledge.topics['petrissage'].title}</b>")
    [by_reply] = await group.say("how do I do effleurage?", reply_to=answer)
    assert "Effleurage" in by_reply.text
    [help_message] = await group.say(f"/help@{BOT_USERNAME}")
    [plain_help] = await group.say("/help")
    assert help_message.text == plain_help.text
    # Everything else was ignored: only these four answers were sent, in order.
    assert api.outputs_in(group.chat_id) == [answer, by_reply, help_message, plain_help]


async def test_a_reply_too_long_for_one_message_is_split(
    api: StandIn, ann: User, bot: BotFixture
) -> None:
    long = "\n\n".join(f"Part {i}: <b> & *_[ " + "stroke " * 200 for i in range(10))
    conversation = bot.conversation

    def handle_text(chat_id: int, text: str, *_offered: object) -> Response:
        return reply(long, title="Very long", buttons=conversation.handle_start(chat_id).replies[
            0].buttons)

    conversation.handle_text = handle_text  # type: ignore[method-assign]
    outputs = await ann.say("tell me everything", expect=2)
    await api.wait_for(lambda: bool(api.outputs_in(ann.chat_id)[-1].buttons), what="last part")
    parts = api.outputs_in(ann.chat_id)
    assert len(parts) >= 4
    assert all(len(p.text) <= 4096 for p in parts)
    assert [bool(p.buttons) for p in parts] == [False] * (len(parts) - 1) + [True]
    assert outputs[0].html.startswith("<b>Very long</b>")
    assert "".join(p.text for p in parts).count("Part ") == 10


def places(output: Output) -> dict[str, tuple[int, int]]:
    """Where each session button sits (row, column), by its command ("next", "pause")."""
    rows = (output.reply_markup or {}).get("inline_keyboard", [])
    return {
        button["callback_data"].split(":")[1]: (r, c)
        for r, row in enumerate(rows)
        for c, button in enumerate(row)
        if button["callback_data"].startswith("1|s:")
    }


async def test_session_buttons_keep_their_place_on_timed_and_untimed_steps(
    ann: User, knowledge: KnowledgeBase
) -> None:
    [screen] = await ann.say("/start session-quick-back")
    for label in ("None of these", "No", "Ready"):
        [screen] = await ann.press(screen, label)
    steps = knowledge.sessions["quick-back"].steps
    seen = []
    while steps[len(seen)].seconds is None:
        seen.append(screen)
        # The next screen first (an edit, or a new message after a photo, which only loses
        # its buttons); a timed step's 10 ms may run out and say so right after it.
        screen = await ann.next_screen(screen, "Next")
    untimed, timed = places(seen[0]), places(screen)
    assert "pause" in timed and "pause" not in untimed
    assert {command: timed[command] for command in untimed} == untimed
    assert timed["pause"][0] == max(row for row, _ in timed.values())  # last, below the rest


async def test_typed_button_words_press_the_buttons_in_telegram(ann: User) -> None:
    [screen] = await ann.say("/start session-quick-back")
    for label in ("None of these", "No"):
        [screen] = await ann.press(screen, label)
    assert screen.text.startswith("Get ready")
    [ticked] = await ann.press(screen, "towels")  # a tick edits the one checklist message
    assert ticked.kind == "edit" and ticked.message_id == screen.message_id
    assert re.search(r"\b1 of \d+ ready", ticked.text) and ticked.text.count("towels") <= 1
    [first] = await ann.say("start")  # "▶️ Ready, start"
    assert first.text.startswith("Step 1 of")
    [second] = await ann.say("n")  # the key of Next, as the terminal shows it
    assert second.text.startswith("Step 2 of")
    [back] = await ann.say("back")
    assert back.text.startswith("Step 1 of")


async def test_a_tick_edits_the_one_checklist_message_and_done_closes_it(
    ann: User, knowledge: KnowledgeBase
) -> None:
    items = knowledge.topics["equipment"].checklist
    long = max(items, key=len)
    [checklist] = await ann.say("/equipment")
    assert "Tap" not in checklist.text
    assert checklist.text.count(long) == 1  # its button is cut short: spelled out once
    [ticked] = await ann.press(checklist, items[0])
    assert ticked.kind == "edit" and ticked.message_id == checklist.message_id
    assert f"1 of {len(items)} ready" in ticked.text
    assert ticked.buttons[0][0].startswith("☑")
    [closed] = await ann.press(ticked, "Done")
    assert closed.kind == "edit" and closed.message_id == checklist.message_id
    assert "Still to get" in closed.text and items[0] not in closed.text
    assert any(data.endswith("menu:session") for _label, data in closed.buttons)
    [again] = await ann.say("/equipment")
    [typed] = await ann.say("done")  # the button's word, typed
    assert typed.kind == "send" and "Still to get" in typed.text
    assert again.message_id != typed.message_id
