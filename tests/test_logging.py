"""The bot token never reaches a log line: any logger, any level, any handler, tracebacks too."""

from __future__ import annotations

import io
import logging
from urllib.parse import quote

import pytest

from bot.logging_setup import REDACTED, RedactingRecordFactory, Redactor, configure_logging

TOKEN = "987654321:AAFsecretPartOfTheTokenThatMustNotLeak_xyz"
SECRET_PART = TOKEN.split(":", 1)[1]


def test_redactor_replaces_the_token_and_its_url_forms() -> None:
    redact = Redactor.of([TOKEN])
    assert redact(f"GET /bot{TOKEN}/getMe") == f"GET /bot{REDACTED}/getMe"
    assert TOKEN not in redact(f"url={quote(TOKEN, safe='')}")
    assert SECRET_PART not in redact(f"url={quote(TOKEN, safe='')}")
    assert redact(f"just the password {SECRET_PART}") == f"just the password {REDACTED}"
    assert redact("nothing secret here") == "nothing secret here"


def test_short_or_empty_secrets_are_not_treated_as_secrets() -> None:
    redact = Redactor.of(["", "abc", "  "])
    assert redact("abc and more") == "abc and more"


@pytest.mark.usefixtures("restore_logging")
def test_every_logger_level_and_handler_sees_the_redacted_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", [TOKEN], stream=stream)
    caplog.set_level(logging.DEBUG)
    url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 200 OK"', url)
    logging.getLogger("telegram.ext.ExtBot").debug("Calling Bot API endpoint %s", url)
    logging.getLogger("some.library").warning("encoded %s", quote(url, safe=""))
    logging.getLogger("bot").debug("stack", stack_info=True, extra={"x": TOKEN})
    try:
        raise RuntimeError(f"request to {url} failed")
    except RuntimeError:
        logging.getLogger("bot.telegram_app").exception("handler failed")

    captured = caplog.text + stream.getvalue()
    assert TOKEN not in captured
    assert SECRET_PART not in captured
    assert REDACTED in stream.getvalue()
    assert "Traceback" in stream.getvalue()
    assert "request to https://api.telegram.org/bot[REDACTED]/sendMessage failed" in captured
    for record in caplog.records:
        assert SECRET_PART not in record.getMessage()


@pytest.mark.usefixtures("restore_logging")
def test_httpx_request_lines_are_quiet_unless_debugging() -> None:
    stream = io.StringIO()
    configure_logging("INFO", [TOKEN], stream=stream)
    logging.getLogger("httpx").info("HTTP Request: POST /bot%s/getUpdates", TOKEN)
    logging.getLogger("apscheduler.scheduler").info("Added job")
    logging.getLogger("bot").info("bot is running")
    assert stream.getvalue().count("\n") == 1
    assert "bot is running" in stream.getvalue()

    configure_logging("DEBUG", [TOKEN], stream=stream)
    logging.getLogger("httpx").info("HTTP Request: POST /bot%s/getUpdates", TOKEN)
    assert f"/bot{REDACTED}/getUpdates" in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_configuring_twice_neither_stacks_handlers_nor_keeps_the_old_secret() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", ["old-secret-value-123"], stream=first)
    configure_logging("INFO", [TOKEN], stream=second)
    factory = logging.getLogRecordFactory()
    assert isinstance(factory, RedactingRecordFactory)
    assert not isinstance(factory.base, RedactingRecordFactory)
    logging.getLogger("bot").warning("token %s", TOKEN)
    assert first.getvalue() == ""
    assert second.getvalue().count("\n") == 1
    assert TOKEN not in second.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_a_bad_format_string_does_not_break_logging() -> None:
    stream = io.StringIO()
    configure_logging("INFO", [TOKEN], stream=stream)
    logging.getLogger("bot").warning("two %s %s but one argument", TOKEN)
    logging.getLogger("bot").warning("still logging")
    assert "two %s %s but one argument" in stream.getvalue()
    assert "still logging" in stream.getvalue()
    assert TOKEN not in stream.getvalue()
