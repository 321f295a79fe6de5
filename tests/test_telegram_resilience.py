"""When Telegram, the network, the person or the process misbehave, the bot copes."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from standin import (
    TOKEN,
    BotFixture,
    StandIn,
    User,
    bot_settings,
    fast_options,
    start_bot,
)
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bot.clock import ScaledClock, SystemClock
from bot.conversation import SOMETHING_WENT_WRONG
from bot.knowledge import KnowledgeBase
from bot.logging_setup import REDACTED, configure_logging
from bot.replies import Response
from bot.telegram_app import EXIT_CONFIG, EXIT_FAILURE, PendingLimitQueue, run_bot
from bot.telegram_net import Backoff, ReplyBot, ResilientRequest

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE_DIR = ROOT / "knowledge"
SECRET_PART = TOKEN.split(":", 1)[1]
OTHER_TOKEN = "111111111:BBBthisTokenIsNotKnownToTheStandIn_zz"
RUN_BOT = (
    "import sys; from bot.settings import load_settings; from bot.telegram_app import run_bot; "
    "sys.exit(run_bot(load_settings(dotenv=None)))"
)


@pytest.fixture
async def bot(api: StandIn, tmp_path: Path, knowledge: KnowledgeBase) -> AsyncIterator[BotFixture]:
    running = await start_bot(
        api, bot_settings(api, tmp_path), knowledge, ScaledClock(speed=3000.0),
        fast_options(read_timeout=0.5),
    )
    yield running
    await running.close()


@pytest.fixture
def ann(api: StandIn) -> User:
    return User(api, user_id=1001)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def errors_in(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- Telegram delivers twice, answers late, refuses, limits --------------------------------


@pytest.mark.usefixtures("bot")
async def test_an_update_delivered_twice_is_acted_on_once(api: StandIn, ann: User) -> None:
    update = ann.text_update("/help")
    update_id = api.push(update)
    await ann.expect(1, 0)
    api.redeliver({"update_id": update_id, **update})
    [sentinel] = await ann.say("/stop")  # same chat, so handled after the repeat
    helps = [o for o in api.sent_in(ann.chat_id) if "/session" in o.text]
    assert len(helps) == 1
    assert api.sent_in(ann.chat_id)[-1] == sentinel


@pytest.mark.usefixtures("bot")
async def test_a_send_answered_too_late_is_not_sent_again(
    api: StandIn, ann: User, caplog: pytest.LogCaptureFixture
) -> None:
    # Telegram delivers the message but the answer misses the bot's 0.5 s read timeout.
    api.add_fault("sendMessage", "late", seconds=1.5, chat_id=ann.chat_id)
    api.push(ann.text_update("/help"))
    await ann.expect(1, 0)
    [sentinel] = await ann.say("/stop")
    assert [o.text for o in api.sent_in(ann.chat_id)].count(sentinel.text) == 1
    assert len(api.sent_in(ann.chat_id)) == 2  # the help, once, and no apology
    assert any("counted as delivered" in r.getMessage() for r in caplog.records)


async def test_a_request_that_was_never_sent_is_retried(api: StandIn) -> None:
    attempts: list[float] = []

    async def between_attempts(delay: float) -> None:
        attempts.append(delay)
        if len(attempts) == 2:
            await api.accept_connections()  # Telegram is back after two refusals

    await api.refuse_connections()
    request = ResilientRequest(
        Backoff(attempts=5, first_delay=0.01), sleep=between_attempts, read_timeout=2.0
    )
    async with Bot(TOKEN, base_url=api.base_url, request=request) as bot:
        await bot.send_message(7, "<b>hello</b>", parse_mode="HTML")
    assert attempts == [0.01, 0.02]
    assert [o.text for o in api.sent_in(7)] == ["hello"]


async def test_parameters_travel_as_json_and_arrive_intact(api: StandIn) -> None:
    request = ResilientRequest(Backoff(attempts=1, first_delay=0.01))
    markup = {"inline_keyboard": [[{"text": "Next ▶", "callback_data": "1|s:n:1:2"}]]}
    async with ReplyBot(TOKEN, base_url=api.base_url, request=request) as bot:
        await bot.send_text(7, "<b>Ça &amp; 'רגל'</b> 5 &lt; 6", parse_mode="HTML",
                            reply_markup=markup)
    assert api.content_types["sendMessage"].startswith("application/json")
    [sent] = api.sent_in(7)
    assert sent.text == "Ça & 'רגל' 5 < 6"
    assert sent.buttons == [("Next ▶", "1|s:n:1:2")]
    [call] = [c for c in api.calls if c.method == "sendMessage"]
    assert call.params["link_preview_options"] == {"is_disabled": True}  # no preview cards


async def test_a_timeout_given_to_one_call_overrides_the_default(api: StandIn) -> None:
    api.add_fault("sendMessage", "hang", seconds=30.0)
    request = ResilientRequest(Backoff(attempts=1, first_delay=0.01), read_timeout=30.0)
    async with asyncio.timeout(10), Bot(TOKEN, base_url=api.base_url, request=request) as bot:
        with pytest.raises(TimedOut):
            await bot.send_message(7, "hello", read_timeout=0.2)


async def test_retries_are_bounded(api: StandIn) -> None:
    await api.refuse_connections()
    attempts: list[float] = []

    async def between_attempts(delay: float) -> None:
        attempts.append(delay)

    request = ResilientRequest(Backoff(attempts=3, first_delay=0.01), sleep=between_attempts)
    with pytest.raises(NetworkError):
        await request.post(f"{api.base_url}{TOKEN}/getMe")
    assert len(attempts) == 2
    await request.shutdown()


@pytest.mark.usefixtures("bot")
async def test_a_dropped_connection_is_not_retried_for_a_send(api: StandIn, ann: User) -> None:
    # Dropped after the request was written: it may have been acted on, so no blind resend,
    # and no apology either (it most likely arrived). The policy's price: had it not
    # arrived, this one reply is missing; the next one comes as usual.
    api.add_fault("sendMessage", "drop", chat_id=ann.chat_id)
    api.push(ann.text_update("/help"))
    [sentinel] = await ann.say("/stop")
    assert api.sent_in(ann.chat_id) == [sentinel]
    assert [c.method for c in api.calls_to("sendMessage")] == ["sendMessage"]


@pytest.mark.usefixtures("bot")
# PTB's own RetryAfter warns about its future timedelta type while it builds itself.
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_429_is_waited_out_and_retried(api: StandIn, ann: User) -> None:
    api.add_fault("sendMessage", "retry_after", seconds=1, chat_id=ann.chat_id)
    [help_message] = await ann.say("/help")
    assert "/session" in help_message.text
    assert [c.error for c in api.calls_to("sendMessage")] == ["429", ""]


@pytest.mark.usefixtures("bot")
async def test_polling_survives_a_dropped_connection(api: StandIn, ann: User) -> None:
    api.add_fault("getUpdates", "drop")
    api.add_fault("getUpdates", "bad_gateway")
    [help_message] = await ann.say("/help")
    assert "/session" in help_message.text


@pytest.mark.usefixtures("bot")
async def test_one_slow_chat_does_not_stall_others_and_each_chat_stays_in_order(
    api: StandIn, ann: User
) -> None:
    ben = User(api, user_id=1002)
    release = api.hold("sendMessage", chat_id=ann.chat_id)
    for text in ("/help", "/stop", "/topics"):
        api.push(ann.text_update(text))
    [answer] = await ben.say("/help")  # answered while Ann's first reply hangs
    assert answer.chat_id == ben.chat_id
    assert api.sent_in(ann.chat_id) == []
    release.set()
    outputs = await ann.expect(3, 0)
    assert "/session" in outputs[0].text
    assert "no session" in outputs[1].text.lower()
    assert outputs[2].buttons  # the subjects to browse


async def test_the_pending_queue_lets_in_only_as_many_as_are_finished() -> None:
    queue = PendingLimitQueue(limit=2)
    await queue.put(0)
    await queue.put(1)
    assert queue.full()  # the updater would wait here: the backlog stays at Telegram
    assert await queue.get() == 0
    assert await queue.get() == 1
    await queue.put(2)
    third = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)  # let it reach the wait: two are taken, none finished
    assert not third.done()
    queue.task_done()  # one finished: the next may come in
    assert await asyncio.wait_for(third, 5) == 2


# --- the person sends odd things ---------------------------------------------------------


@pytest.mark.usefixtures("bot")
async def test_bad_inputs_get_a_sensible_reply_or_a_quiet_ignore(
    api: StandIn, ann: User, caplog: pytest.LogCaptureFixture
) -> None:
    file = {"file_id": "f", "file_unique_id": "u"}
    replies = {
        "photo": {"photo": [{**file, "width": 1, "height": 1}]},
        "sticker": {"sticker": {**file, "width": 1, "height": 1, "is_animated": False,
                                "is_video": False, "type": "regular"}},
        "voice": {"voice": {**file, "duration": 3}},
        "document": {"document": file},
        "location": {"location": {"latitude": 51.5, "longitude": -0.1}},
    }
    for kind, content in replies.items():
        [answer] = await ann.send({"message": ann.message(**content)})
        assert answer.kind == "send", kind
    [photo_reply] = api.sent_in(ann.chat_id)[:1]
    assert "photo" in photo_reply.text.lower()

    # Ignored: an edited message, a message with empty text, a join notice.
    since = len(api.outputs)
    api.push({"edited_message": {**ann.message(text="how do I do petrissage?"),
                                 "edit_date": 1}})
    api.push({"message": ann.message(text="")})
    api.push({"message": ann.message(new_chat_members=[ann.person])})
    for text in (
        "x" * 4000,
        "<b>bold</b> & <script>alert(1)</script> *_[link](x)",
        "\u202eמה זה עיסוי?\u200b\u200d",
        "\u200b",
        "&amp; &lt; &#0; &",
    ):
        [answer] = await ann.say(text)
        assert answer.parse_mode == "HTML" and answer.text
    texts = [o.text for o in api.outputs_in(ann.chat_id, since)]
    assert len(texts) == 5  # one per text message, none for the ignored three
    assert errors_in(caplog) == []


@pytest.mark.usefixtures("bot")
async def test_forged_and_old_buttons_get_the_old_message_reply(
    api: StandIn, ann: User, caplog: pytest.LogCaptureFixture
) -> None:
    [greeting] = await ann.say("/start")
    for data in ("menu:ask", "0|menu:ask", "1|", "1|nonsense", "1|s:next:ffffff:3",
                 "1|topic:../../etc", "1|" + "x" * 62, "1|ck:999"):
        outputs = await ann.press_data(greeting, data)
        assert outputs[-1].text, data
    assert api.unanswered_queries() == set()
    assert errors_in(caplog) == []
    old = [o for o in api.sent_in(ann.chat_id) if "old message" in o.text]
    assert old, "versionless data gets the core's stale-button reply"


@pytest.mark.usefixtures("bot")
async def test_a_button_pressed_too_late_to_answer_still_works(api: StandIn, ann: User) -> None:
    [greeting] = await ann.say("/start")
    [answer] = await ann.press(greeting, "Browse topics", stale=True)
    assert "Techniques" in [label for label, _ in answer.buttons]
    failed = [c for c in api.calls_to("answerCallbackQuery") if c.error]
    assert failed and "query is too old" in failed[0].error


async def test_a_failing_handler_is_logged_with_context_and_the_person_told_once(
    api: StandIn, ann: User, bot: BotFixture, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(chat_id: int, text: str, *_offered: object) -> Response:
        raise RuntimeError(f"the core broke near {api.base_url}{TOKEN}/sendMessage")

    bot.conversation.handle_text = broken  # type: ignore[method-assign]
    update_id = api.push(ann.text_update("how do I do petrissage?"))
    [sorry] = await ann.expect(1, 0)
    assert sorry.text == SOMETHING_WENT_WRONG
    [sentinel] = await ann.say("/help")
    assert api.sent_in(ann.chat_id) == [sorry, sentinel]
    [record] = errors_in(caplog)
    message = record.getMessage()
    assert f"update {update_id}" in message and f"chat {ann.chat_id}" in message
    assert "handler text" in message
    assert record.exc_info is not None


# --- webhook mode --------------------------------------------------------------------------


async def test_webhook_checks_the_secret_on_every_request(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase, ann: User
) -> None:
    port = free_port()
    settings = bot_settings(
        api, tmp_path,
        WEBHOOK_URL="https://bot.example/hook", WEBHOOK_SECRET="s3cret_Value-42",
        WEBHOOK_LISTEN="127.0.0.1", WEBHOOK_PORT=str(port), WEBHOOK_PATH="hook",
    )
    running = await start_bot(api, settings, knowledge, SystemClock())
    try:
        await api.wait_for(lambda: bool(api.webhook), what="setWebhook")
        assert api.webhook["url"] == "https://bot.example/hook"
        assert api.webhook["secret_token"] == "s3cret_Value-42"
        update = {"update_id": 500, **ann.text_update("/help")}
        url = f"http://127.0.0.1:{port}/hook"
        async with httpx.AsyncClient(timeout=5.0) as client:
            for _ in range(100):  # the webhook server may still be binding its port
                try:
                    missing = await client.post(url, json=update)
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            wrong = await client.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}
            )
            assert (missing.status_code, wrong.status_code) == (403, 403)
            assert api.sent_in(ann.chat_id) == []
            headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret_Value-42"}
            right = await client.post(url, json=update, headers=headers)
            assert right.status_code == 200
            await ann.expect(1, 0)
            # Telegram retries a webhook call it thinks failed: the repeat is dropped.
            again = await client.post(url, json=update, headers=headers)
            assert again.status_code == 200
            sentinel = {"update_id": 501, **ann.text_update("/stop")}
            await client.post(url, json=sentinel, headers=headers)
            await ann.expect(2, 0)
        assert len(api.sent_in(ann.chat_id)) == 2
    finally:
        await running.close()


# --- start-up and restart ------------------------------------------------------------------


def bot_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "WEBHOOK_"))}
    env.update({"KNOWLEDGE_DIR": str(KNOWLEDGE_DIR), "LOG_LEVEL": "INFO", **values})
    return env


async def run_bot_process(env: dict[str, str], timeout: float = 30.0) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_BOT, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, err.decode()


@pytest.mark.parametrize(
    ("token", "expected"),
    [("", "TELEGRAM_BOT_TOKEN is not set"), ("12345:short", "TELEGRAM_BOT_TOKEN is malformed")],
)
async def test_a_missing_or_malformed_token_ends_with_one_line(
    tmp_path: Path, token: str, expected: str
) -> None:
    code, err = await run_bot_process(bot_env(TELEGRAM_BOT_TOKEN=token, DATA_DIR=str(tmp_path)))
    assert code != 0
    assert err.count("\n") == 1 and expected in err
    assert "Traceback" not in err
    if token:
        assert token not in err


async def test_a_rejected_token_ends_with_one_line(api: StandIn, tmp_path: Path) -> None:
    code, err = await run_bot_process(bot_env(
        TELEGRAM_BOT_TOKEN=OTHER_TOKEN, TELEGRAM_BASE_URL=api.base_url, DATA_DIR=str(tmp_path)
    ))
    assert code == EXIT_CONFIG  # a supervisor must not restart it: it will not heal
    assert err.count("\n") == 1, err
    assert "rejected the bot token" in err
    assert OTHER_TOKEN.split(":")[1] not in err and "Traceback" not in err


@pytest.mark.parametrize("path", ["/wrong", "/bot/"])  # no /bot; /bot twice over
async def test_a_wrong_base_url_ends_at_once_with_one_line(
    api: StandIn, tmp_path: Path, path: str
) -> None:
    base_url = api.base_url.removesuffix("/bot") + path
    code, err = await run_bot_process(bot_env(
        TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_BASE_URL=base_url, DATA_DIR=str(tmp_path)
    ))
    assert code == EXIT_CONFIG
    assert err.count("\n") == 1, err
    assert "404 Not Found: check TELEGRAM_BASE_URL" in err
    assert SECRET_PART not in err and "Traceback" not in err
    assert api.received.get("getMe", 0) == 0  # nothing reached a real method, once


@pytest.mark.usefixtures("restore_logging")
def test_an_unreachable_api_ends_with_one_line_after_retries(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = bot_settings(StandIn(port=free_port()), tmp_path, LOG_LEVEL="INFO")
    code = run_bot(settings, options=fast_options())  # 3 attempts; production never stops
    err = capfd.readouterr().err
    assert code == EXIT_FAILURE  # may heal: a supervisor may try again
    *retries, last = err.rstrip("\n").split("\n")
    assert len(retries) == 2 and all(" INFO " in line for line in retries), err
    assert "start-up: cannot start at 127.0.0.1" in retries[0]
    assert retries[0].endswith("retrying in 0.02 s (attempt 2 of 3)"), retries[0]
    assert retries[1].endswith("retrying in 0.04 s (attempt 3 of 3)"), retries[1]
    assert last.startswith("massage-bot: cannot reach the Telegram Bot API at 127.0.0.1")
    assert "after 3 attempts" in last
    assert SECRET_PART not in err and "Traceback" not in err


async def test_start_up_retries_are_told_as_they_happen_and_sigterm_ends_them(
    tmp_path: Path,
) -> None:
    # Production's retries (no limit, waits up to a minute) against a closed port: each
    # retry is one INFO line when it is decided, and a supervisor's SIGTERM is obeyed at once
    # rather than after the wait.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_BOT, cwd=ROOT, stderr=asyncio.subprocess.PIPE,
        env=bot_env(TELEGRAM_BOT_TOKEN=TOKEN, DATA_DIR=str(tmp_path),
                    TELEGRAM_BASE_URL=f"http://127.0.0.1:{free_port()}/bot"),
    )
    assert process.stderr is not None
    try:
        first = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert " INFO bot.telegram_app: start-up: cannot start at 127.0.0.1:" in first
        assert first.rstrip().endswith("retrying in 1 s (attempt 2, no limit)"), first
        process.terminate()
        rest = (await asyncio.wait_for(process.stderr.read(), 10)).decode()
        assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "Traceback" not in rest and SECRET_PART not in first + rest


@pytest.mark.usefixtures("restore_logging")
async def test_a_refused_webhook_ends_with_one_line(
    api: StandIn, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = bot_settings(
        api, tmp_path, LOG_LEVEL="INFO", WEBHOOK_URL="https://bot.example:9999/hook",
        WEBHOOK_SECRET="abc_123", WEBHOOK_PORT=str(free_port()),
    )
    # In a worker thread, so the stand-in keeps serving on this loop.
    code = await asyncio.to_thread(run_bot, settings, fast_options())
    err = capfd.readouterr().err
    assert code != 0
    assert err.count("\n") == 1, err
    assert "refused to set the webhook to https://bot.example:9999/hook" in err
    assert "only on ports 80, 88, 443 or 8443" in err and "Traceback" not in err


@pytest.mark.usefixtures("restore_logging")
def test_an_invalid_knowledge_base_refuses_to_start(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "kb"
    broken.mkdir()
    (broken / "topics.yaml").write_text("topics:\n  - id: Not Kebab\n    kind: magic\n")
    settings = bot_settings(StandIn(), tmp_path, KNOWLEDGE_DIR=str(broken), LOG_LEVEL="INFO")
    code = run_bot(settings)
    err = capfd.readouterr().err
    assert code != 0
    assert "topics.yaml:2" in err
    assert err.rstrip("\n").splitlines()[-1].startswith("massage-bot: refusing to start")


async def test_kill_9_mid_session_then_next_on_the_old_message_carries_on(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase
) -> None:
    ann = User(api, user_id=1001, timeout=30.0)
    env = bot_env(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_BASE_URL=api.base_url,
                  DATA_DIR=str(tmp_path), LOG_LEVEL="DEBUG")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_BOT, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        [screen] = await ann.say("/start session-quick-back")
        for _ in range(knowledge.safety_check.screens("quick-back")):  # "None of these", No
            [screen] = await ann.press(screen, "No")
        [screen] = await ann.press(screen, "Ready")
        session = knowledge.sessions["quick-back"]
        while session.steps[int(screen.text.split()[1]) - 1].seconds is None:
            screen = await ann.next_screen(screen, "Next")
        assert screen.text.startswith("Step 3 of")  # a timed step: its timer is armed
    finally:
        process.kill()  # SIGKILL: no shutdown, no goodbye
        _out, err = await process.communicate()
    assert SECRET_PART not in err.decode()
    assert REDACTED in err.decode()

    restarted = await start_bot(api, bot_settings(api, tmp_path), knowledge, SystemClock())
    try:
        [after] = await ann.press(screen, "Next")
        assert after.text.startswith("Step 4 of"), after.text
        assert restarted.app.job_queue.get_jobs_by_name(f"timer:{ann.chat_id}")
    finally:
        await restarted.close()


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.usefixtures("restore_logging")
async def test_the_token_never_reaches_the_logs_across_a_whole_run(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase, caplog: pytest.LogCaptureFixture
) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", [TOKEN], stream=stream)
    caplog.set_level(logging.DEBUG)
    running = await start_bot(api, bot_settings(api, tmp_path), knowledge,
                              ScaledClock(speed=3000.0), fast_options(read_timeout=0.5))
    ann = User(api, user_id=1001)
    try:
        [greeting] = await ann.say("/start")
        await ann.press(greeting, "Browse topics")
        await ann.say("how do I do petrissage?")
        api.add_fault("sendMessage", "bad_gateway", chat_id=ann.chat_id)
        await ann.say("/help")  # a 502 first: repeated, and logged
        conversation = running.conversation
        answer = conversation.handle_text

        def broken(chat_id: int, text: str, *_offered: object) -> Response:
            conversation.handle_text = answer  # type: ignore[method-assign]
            raise RuntimeError(f"the core broke near {api.base_url}{TOKEN}/sendMessage")

        conversation.handle_text = broken  # type: ignore[method-assign]
        await ann.say("oil")  # fails: logged with a traceback, the person told once
        api.add_fault("sendMessage", "late", seconds=1.0, chat_id=ann.chat_id)
        since = len(api.outputs)
        api.push(ann.text_update("/stop"))  # delivered, but the answer comes too late
        api.push(ann.text_update("/topics"))
        await ann.expect(2, since)
    finally:
        await running.close()
    logged = caplog.text + stream.getvalue()
    assert TOKEN not in logged and SECRET_PART not in logged
    assert f"/bot{REDACTED}/sendMessage" in logged  # the URLs were logged, redacted
    assert "Traceback" in stream.getvalue()
    assert all(SECRET_PART not in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("restore_logging")
async def test_a_bot_built_by_other_code_redacts_too(
    api: StandIn, tmp_path: Path, knowledge: KnowledgeBase, caplog: pytest.LogCaptureFixture
) -> None:
    """No configure_logging here: building the application alone must protect the token."""
    caplog.set_level(logging.DEBUG)
    running = await start_bot(api, bot_settings(api, tmp_path), knowledge,
                              ScaledClock(speed=3000.0))
    try:
        await User(api, user_id=1001).say("/start")
    finally:
        await running.close()
    assert "getUpdates" in caplog.text
    assert SECRET_PART not in caplog.text
