"""The dialogue core as a user meets it: texts, menus, buttons, sessions and restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.conversation import MENU_BUTTONS, Conversation
from bot.knowledge import KnowledgeBase
from bot.matcher import MAX_CANDIDATES, Matcher
from bot.replies import ArmTimer, Button, CancelTimer, Response
from bot.store import SESSION_KEEP_SECONDS, Store

ROOT = Path(__file__).resolve().parent.parent
CHAT = 42


@pytest.fixture(scope="module")
def matcher(knowledge: KnowledgeBase) -> Matcher:
    return Matcher(knowledge)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bot.sqlite3"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def conversation(
    knowledge: KnowledgeBase, matcher: Matcher, db_path: Path, clock: FakeClock
) -> Iterator[Conversation]:
    store = Store.open(db_path)
    yield Conversation(knowledge=knowledge, matcher=matcher, store=store, clock=clock)
    store.close()


def buttons(response: Response) -> list[Button]:
    return [button for message in response.replies for row in message.buttons for button in row]


def labels(response: Response) -> list[str]:
    return [button.label for button in buttons(response)]


def press(conversation: Conversation, response: Response, label_part: str) -> Response:
    matching = [b for b in buttons(response) if label_part in b.label]
    assert matching, f"no button with {label_part!r} in {labels(response)}"
    return conversation.handle_action(CHAT, matching[-1].action)


def text_of(response: Response) -> str:
    return "\n".join(f"{m.title}\n{m.text}" for m in response.replies)


def test_start_greets_with_the_menu(conversation: Conversation) -> None:
    response = conversation.handle_start(CHAT)
    assert "back massage" in text_of(response).lower()
    assert labels(response) == [b.label for row in MENU_BUTTONS for b in row]


def test_a_question_gets_its_topic_with_related_buttons(
    conversation: Conversation, knowledge: KnowledgeBase
) -> None:
    response = conversation.handle_text(CHAT, "how do i do petrisage")
    [message] = response.replies
    assert message.title == knowledge.topics["petrissage"].title
    assert message.text == knowledge.topics["petrissage"].answer
    related = {knowledge.topics[r].title for r in knowledge.topics["petrissage"].related}
    *topic_rows, feedback = message.buttons
    assert related == {button.label for row in topic_rows for button in row}
    # One row under it asks whether it helped.
    assert [button.label for button in feedback] == ["👍 Helpful", "👎 Not what I asked"]


def test_a_warning_sign_answered_with_a_comfort_topic_offers_when_to_stop_first(
    conversation: Conversation, knowledge: KnowledgeBase
) -> None:
    response = conversation.handle_text(CHAT, "does petrissage hurt")
    [message] = response.replies
    assert message.title == knowledge.topics["petrissage"].title
    first_row = message.buttons[0]
    assert [b.label for b in first_row] == [
        f"⚠️ {knowledge.topics['contraindications'].title}"]
    shown = press(conversation, response, "⚠️")
    assert shown.replies[0].text == knowledge.topics["contraindications"].answer


def test_out_of_scope_gets_the_polite_fallback(conversation: Conversation) -> None:
    for question in ("tell me a joke", "how do i change the oil in my car"):
        text = text_of(conversation.handle_text(CHAT, question))
        assert "can't help with that" in text
        assert "doctor" in text


def test_an_emergency_mid_massage_is_told_to_call_999_before_anything_else(
    conversation: Conversation,
) -> None:
    # Someone whose partner has chest pain reads the first lines, not a list of conditions.
    for message in ("he went grey and has a tight chest while i was doing his back",
                    "she suddenly can't catch her breath during the back rub"):
        [reply] = conversation.handle_text(CHAT, message).replies
        first_paragraph = reply.text.split("\n\n")[0]
        assert "Stop" in first_paragraph and "999" in first_paragraph, (message, reply.title)
    # Even a message the bot cannot place ends with what to do in an emergency.
    [reply] = conversation.handle_text(CHAT, "he looks awful and went all floppy").replies
    last = reply.text.split("\n\n")[-1]
    assert "call 999 now" in last
    # Not everyone is in the UK: the other common emergency numbers come with it.
    assert all(number in last for number in ("112", "911", "000")), last


def test_unsure_question_offers_did_you_mean(conversation: Conversation) -> None:
    clarify = next(
        (
            response
            for question in ("oil", "strokes", "back", "massage time", "hands")
            if "did you mean" in text_of(response := conversation.handle_text(CHAT, question))
            .lower()
        ),
        None,
    )
    assert clarify is not None, "one of these vague questions should get a did-you-mean"
    assert 2 <= len(labels(clarify)) <= MAX_CANDIDATES + 1  # and "None of these"
    assert labels(clarify)[-1] == "None of these"
    none = press(conversation, clarify, "None of these")
    assert "other words" in text_of(none)


def test_empty_and_huge_messages_get_a_clear_answer(conversation: Conversation) -> None:
    assert "Type your question" in text_of(conversation.handle_text(CHAT, "   "))
    rambling = "my mum is in bed all day and " * 150 + "how do i stop bedsores"
    assert text_of(conversation.handle_text(CHAT, rambling))


def test_topics_browse_by_kind(conversation: Conversation, knowledge: KnowledgeBase) -> None:
    kinds = conversation.handle_command(CHAT, "topics")
    assert "Techniques" in labels(kinds)
    techniques = press(conversation, kinds, "Techniques")
    assert knowledge.topics["effleurage"].title in labels(techniques)
    topic = press(conversation, techniques, knowledge.topics["effleurage"].title)
    assert topic.replies[0].title == knowledge.topics["effleurage"].title


def test_equipment_ticks_persist_across_a_restart(
    knowledge: KnowledgeBase, matcher: Matcher, db_path: Path, clock: FakeClock
) -> None:
    store = Store.open(db_path)
    first = Conversation(knowledge=knowledge, matcher=matcher, store=store, clock=clock)
    checklist = first.handle_command(CHAT, "equipment")
    item = knowledge.topics["equipment"].checklist[0]
    assert any(label.startswith("☐") for label in labels(checklist))
    ticked = press(first, checklist, item[:20])
    assert any(label.startswith("☑") for label in labels(ticked))
    store.close()

    store = Store.open(db_path)
    second = Conversation(knowledge=knowledge, matcher=matcher, store=store, clock=clock)
    again = second.handle_command(CHAT, "equipment")
    assert any(label.startswith("☑") and item[:20] in label for label in labels(again))
    cleared = press(second, again, "Clear all")
    assert not any(label.startswith("☑") for label in labels(cleared))
    store.close()


def test_hands_free_setting_persists(conversation: Conversation) -> None:
    settings = conversation.handle_command(CHAT, "settings")
    assert "ON" in text_of(settings)
    off = press(conversation, settings, "off")
    assert "OFF" in text_of(off)
    assert "OFF" in text_of(conversation.handle_command(CHAT, "settings"))


def test_deep_links_open_a_topic_or_start_a_session(
    conversation: Conversation, knowledge: KnowledgeBase
) -> None:
    topic = conversation.handle_start(CHAT, "side-lying")
    assert topic.replies[0].title == knowledge.topics["side-lying"].title
    session = conversation.handle_start(CHAT, "session-quick-back")
    assert "Safety check 1 of" in text_of(session)
    unknown = conversation.handle_start(CHAT, "no-such-thing")
    assert labels(unknown) == [b.label for row in MENU_BUTTONS for b in row]


def press_exactly(conversation: Conversation, response: Response, label: str) -> Response:
    matching = [b for b in buttons(response) if b.label == label]
    assert matching, f"no button {label!r} in {labels(response)}"
    return conversation.handle_action(CHAT, matching[-1].action)


def through_the_safety_check(conversation: Conversation, response: Response) -> Response:
    """Answer "None of these" and No to any further question, as most people will."""
    response = press_exactly(conversation, response, "✅ None of these")
    while "Safety check" in text_of(response):
        response = press_exactly(conversation, response, "No")
    return response


def start_steps(conversation: Conversation, session_id: str) -> Response:
    """Start a session, answer the safety check, and get past the checklist."""
    response = through_the_safety_check(
        conversation, conversation.handle_action(CHAT, f"pick:{session_id}")
    )
    response = press(conversation, response, "Ready")
    assert "Step 1 of" in text_of(response)
    return response


def test_taps_from_the_session_menu_to_step_1(
    conversation: Conversation, knowledge: KnowledgeBase
) -> None:
    """As the README says: 4 taps for the full and quick massages, 3 for the bedside rub
    (the safety check used to take 5 taps of its own, so 7 in all)."""
    taps_needed: dict[str, int] = {}
    for session in knowledge.sessions.values():
        picker = conversation.handle_command(CHAT, "session")
        response = press_exactly(conversation, picker, session.title)
        count = 1
        while "Step 1 of" not in text_of(response):
            label = next(
                option
                for option in ("✅ None of these", "No", "▶️ Ready, start")
                if option in labels(response)
            )
            response = press_exactly(conversation, response, label)
            count += 1
        taps_needed[session.id] = count
        conversation.handle_command(CHAT, "stop")
    assert taps_needed == {"full-back": 4, "quick-back": 4, "bedside-back-rub": 3}


def test_a_yes_says_what_to_do_instead_and_leaves_the_way_open(
    conversation: Conversation, knowledge: KnowledgeBase
) -> None:
    listed = conversation.handle_command(CHAT, "session", "full-back")
    which = press_exactly(conversation, listed, "⚠️ One of these applies")
    [thinners] = [c for c in knowledge.safety_check.conditions if c.id == "blood-thinners"]
    advice = press_exactly(conversation, which, thinners.button)

    assert thinners.advice in text_of(advice)
    assert "light gliding strokes only" in text_of(advice)
    topic = press_exactly(conversation, advice, knowledge.topics["pressure"].title)
    assert topic.replies[0].text == knowledge.topics["pressure"].answer
    menu = press_exactly(conversation, advice, "🏠 Main menu")
    assert labels(menu) == [b.label for row in MENU_BUTTONS for b in row]
    # Nothing had started, so a new session is offered at once rather than "already running".
    picker = conversation.handle_command(CHAT, "session")
    assert "Which massage shall we do?" in text_of(picker)
    assert "already running" not in text_of(picker)


def test_a_yes_on_the_bedside_rub_still_runs_the_skin_check_and_report(
    conversation: Conversation, knowledge: KnowledgeBase, clock: FakeClock
) -> None:
    listed = conversation.handle_command(CHAT, "session", "bedside-back-rub")
    which = press_exactly(conversation, listed, "⚠️ One of these applies")
    advice = press_exactly(conversation, which, "Fever or unwell")
    checklist = press_exactly(conversation, advice, "▶️ Skin check only, no rub")
    assert "Skin check only, no rub today" in text_of(checklist)
    response = press(conversation, checklist, "Ready")
    seen = text_of(response)
    while "Session complete" not in text_of(response):
        if isinstance(response.timer, ArmTimer):
            clock.current = response.timer.due_at
            response = conversation.handle_timer(CHAT, response.timer.token)
        else:
            response = conversation.handle_text(CHAT, "next")
        seen += text_of(response)
    steps = knowledge.sessions["bedside-back-rub"].steps_in("skin-check-only")
    assert f"Steps done: {len(steps)} of {len(steps)}" in text_of(response)
    # The end is not a dead end: the main menu is under the summary.
    assert {"▶️ Guided session", "❓ Ask a question", "🧴 Equipment"} <= set(labels(response))
    assert "Check the skin" in seen and "Reposition" in seen and "Note and report" in seen
    assert "Gentle strokes" not in seen


def test_typed_maybe_on_the_frailty_question_keeps_the_massage_gentle(
    conversation: Conversation,
) -> None:
    listed = conversation.handle_command(CHAT, "session", "quick-back")
    question = press_exactly(conversation, listed, "✅ None of these")
    checklist = conversation.handle_text(CHAT, "maybe")
    assert "Not sure counts as yes." in text_of(checklist)
    assert "Quick back massage: gentle version" in text_of(checklist)
    back = conversation.handle_text(CHAT, "back")
    assert text_of(back) == text_of(question)  # the mis-answer can be changed
    plain = conversation.handle_text(CHAT, "no")
    assert "Get ready: Quick back massage\n" in text_of(plain)


def test_whole_session_with_typed_commands_and_timers(
    conversation: Conversation, clock: FakeClock
) -> None:
    response = start_steps(conversation, "quick-back")
    # Untimed set-up steps wait for Next; typed words work like the buttons.
    while isinstance(response.timer, ArmTimer) is False:
        response = conversation.handle_text(CHAT, "nxt")
    while response.replies:
        timer = response.timer
        if not isinstance(timer, ArmTimer):
            if "Step" in text_of(response) and "Press Next" in text_of(response):
                response = conversation.handle_text(CHAT, "next")
                continue
            break
        clock.current = timer.due_at
        response = conversation.handle_timer(CHAT, timer.token)
    summary = text_of(response)
    assert "Steps done: 9 of 9" in summary
    assert "Aftercare" in summary
    assert conversation.store.load_session(CHAT) is None


def test_a_question_mid_session_keeps_the_session(conversation: Conversation) -> None:
    start_steps(conversation, "full-back")
    before = conversation.store.load_session(CHAT)
    answer = conversation.handle_text(CHAT, "how firm should i press")
    assert answer.replies[0].title  # the topic answer
    assert "Your session is at step 1 of" in text_of(answer)
    assert conversation.store.load_session(CHAT) == before


def test_second_session_is_refused_while_one_runs(conversation: Conversation) -> None:
    start_steps(conversation, "full-back")
    again = conversation.handle_command(CHAT, "session")
    assert "already running" in text_of(again)


def test_old_buttons_after_stop_say_the_session_ended(conversation: Conversation) -> None:
    step = start_steps(conversation, "quick-back")
    stopped = conversation.handle_command(CHAT, "stop")
    assert isinstance(stopped.timer, CancelTimer)
    late = press(conversation, step, "Next")
    assert "ended" in text_of(late)
    assert conversation.store.load_session(CHAT) is None


def test_forged_and_unknown_actions_are_harmless(conversation: Conversation) -> None:
    for action in ("topic:nope", "kind:../../etc", "ck:999", "zz", "hf:maybe", "s:next:xx:9"):
        response = conversation.handle_action(CHAT, action)
        assert response.replies, action


def test_unsupported_input_is_answered(conversation: Conversation) -> None:
    assert "only read text" in text_of(conversation.unsupported(CHAT, "voice"))


def test_restart_restores_the_session_honestly(
    knowledge: KnowledgeBase, matcher: Matcher, db_path: Path, clock: FakeClock
) -> None:
    store = Store.open(db_path)
    first = Conversation(knowledge=knowledge, matcher=matcher, store=store, clock=clock)
    response = start_steps(first, "quick-back")
    while not isinstance(response.timer, ArmTimer):
        response = first.handle_text(CHAT, "next")
    step_message = response
    store.close()  # the process dies here; nothing else is written

    clock.advance(3600)  # the timer would have fired while the program was down
    store = Store.open(db_path)
    second = Conversation(knowledge=knowledge, matcher=matcher, store=store, clock=clock)
    [(chat_id, restored)] = second.restore()
    assert chat_id == CHAT
    assert "offline" in text_of(restored).lower() or "while I was" in text_of(restored)
    # Next on the last step message the person saw continues at the right step.
    following = press(second, step_message, "Next")
    assert "Step 4 of" in text_of(following)
    store.close()


@pytest.fixture
def wall() -> list[float]:
    """The store's clock (it stamps when a session last moved), separate from the engine's."""
    return [1_000_000.0]


def open_on(
    wall: list[float], knowledge: KnowledgeBase, matcher: Matcher, db_path: Path, clock: FakeClock
) -> Conversation:
    store = Store.open(db_path, now=lambda: wall[0])
    return Conversation(knowledge=knowledge, matcher=matcher, store=store, clock=clock)


def a_night_passes(wall: list[float], clock: FakeClock) -> None:
    wall[0] += SESSION_KEEP_SECONDS + 60
    clock.advance(SESSION_KEEP_SECONDS + 60)


def test_a_session_left_overnight_is_over_after_a_restart(
    knowledge: KnowledgeBase, matcher: Matcher, db_path: Path, clock: FakeClock, wall: list[float]
) -> None:
    first = open_on(wall, knowledge, matcher, db_path, clock)
    step_message = start_steps(first, "quick-back")
    first.store.close()

    a_night_passes(wall, clock)  # the bot comes back the next day
    second = open_on(wall, knowledge, matcher, db_path, clock)
    assert second.restore() == []  # nobody is messaged about yesterday's massage
    following = press(second, step_message, "Next")
    assert "This session has ended" in text_of(following)
    assert "Step" not in text_of(following)
    second.store.close()


def test_a_session_left_overnight_without_a_restart_is_over(
    knowledge: KnowledgeBase, matcher: Matcher, db_path: Path, clock: FakeClock, wall: list[float]
) -> None:
    conversation = open_on(wall, knowledge, matcher, db_path, clock)
    start_steps(conversation, "quick-back")
    a_night_passes(wall, clock)
    # A question gets no reminder of yesterday's step, and a new session can start at once.
    answer = conversation.handle_text(CHAT, "how do I do petrissage")
    assert "Petrissage" in text_of(answer)
    assert "Step" not in text_of(answer)
    picker = text_of(conversation.handle_command(CHAT, "session"))
    assert "Which massage shall we do?" in picker
    assert "already running" not in picker
    conversation.store.close()


def test_hands_free_switched_in_a_session_is_remembered(conversation: Conversation) -> None:
    step = start_steps(conversation, "quick-back")
    off = press(conversation, step, "Hands-free")
    assert "Hands-free is off" in text_of(off)
    conversation.handle_command(CHAT, "stop")
    assert "OFF" in text_of(conversation.handle_command(CHAT, "settings"))


def test_small_talk_gets_a_friendly_word_and_the_menu(conversation: Conversation) -> None:
    thanks = conversation.handle_text(CHAT, "thanks so much!")
    assert "welcome" in text_of(thanks).lower()
    assert labels(thanks) == [b.label for row in MENU_BUTTONS for b in row]
    help_screen = conversation.handle_text(CHAT, "help")
    assert "/session" in text_of(help_screen)
    hello = conversation.handle_text(CHAT, "hiya")
    assert "ask me" in text_of(hello).lower()


def test_a_long_story_keeps_its_question_at_the_end(
    conversation: Conversation, knowledge: KnowledgeBase
) -> None:
    story = "My mum has been in bed since her fall and the nurse comes on Tuesdays. " * 20
    response = conversation.handle_text(CHAT, story + "How do I stop her getting bedsores?")
    titles = [m.title for m in response.replies] + labels(response)
    assert knowledge.topics["bedsore-prevention"].title in titles
