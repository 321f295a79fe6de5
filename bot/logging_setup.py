"""Logging for the bot: one stderr handler, quiet libraries, and secrets redacted everywhere.

The bot token is a password: whoever has it controls the bot. It ends up in places we do not
control: httpx logs every request URL at INFO (`.../bot<token>/sendMessage`), PTB logs the Bot
API URL at DEBUG, and an exception's traceback can carry a URL in its message. So redaction
happens where every log record is born, in the log-record factory, not in one handler's
formatter: then every logger, every level, every handler (ours, pytest's caplog, anything a
deployment adds later) only ever sees the redacted text, tracebacks included.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote

REDACTED = "[REDACTED]"
HANDLER_NAME = "massage-bot"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Below this length a "secret" would match ordinary words; real tokens are 40+ characters.
MIN_SECRET_CHARS = 8
# Libraries that narrate every request or job at INFO; one line per message sent is noise.
CHATTY_LOGGERS = ("httpx", "httpcore", "apscheduler")

RecordFactory = Callable[..., logging.LogRecord]


@dataclass(frozen=True)
class Redactor:
    """Replaces each secret, and the forms it takes inside URLs, with a placeholder."""

    forms: tuple[str, ...]

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Redactor:
        forms: set[str] = set()
        for secret in secrets:
            secret = secret.strip()
            if len(secret) < MIN_SECRET_CHARS:
                continue
            forms.update({secret, quote(secret, safe=""), quote(secret)})
            # The part after the colon is the actual password; the bot id before it is public
            # and appears on its own in harmless places (getMe results, chat logs).
            _bot_id, colon, password = secret.partition(":")
            if colon and len(password) >= MIN_SECRET_CHARS:
                forms.add(password)
        # Longest first, so a token is replaced whole rather than leaving its id behind.
        return cls(forms=tuple(sorted(forms, key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        for form in self.forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text


@dataclass(frozen=True)
class RedactingRecordFactory:
    """Builds log records whose message, traceback and stack are already redacted."""

    base: RecordFactory
    redact: Redactor

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.base(*args, **kwargs)
        if not self.redact.forms:
            return record
        try:
            message = record.getMessage()
        except Exception:
            # A bad format string: logging would print the raw arguments in its "Logging
            # error" report, token and all, so keep them, redacted, in the message instead.
            message = f"{record.msg} % {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters reuse exc_text when it is set, so the raw traceback is never rendered.
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = self.redact(text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return record


def _base_factory() -> RecordFactory:
    current = logging.getLogRecordFactory()
    # Configuring twice must not stack redactors (nor keep an old token's redactor around).
    while isinstance(current, RedactingRecordFactory):
        current = current.base
    return current


def install_redaction(secrets: Iterable[str]) -> Redactor:
    """Redact `secrets` from every log record from now on, whoever logs it and wherever to.

    Called by whatever builds the bot (not only by `configure_logging`), so a bot embedded in
    tests or another program never logs its token either.
    """
    redact = Redactor.of(secrets)
    logging.setLogRecordFactory(RedactingRecordFactory(base=_base_factory(), redact=redact))
    return redact


def configure_logging(
    level: str, secrets: Iterable[str], stream: TextIO | None = None
) -> Redactor:
    """Log to stderr at `level` with `secrets` redacted; return the redactor for other output."""
    redact = install_redaction(secrets)

    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level)

    debugging = logging.getLevelName(level) == logging.DEBUG
    for name in CHATTY_LOGGERS:
        # At DEBUG the operator asked for everything httpx says; httpcore's socket-level
        # chatter stays off even then, it never helps with a bot problem.
        quiet = not debugging or name == "httpcore"
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
    return redact
