"""Fixtures shared by the test modules: the real knowledge base, the Bot API stand-in, logging."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from standin import StandIn

from bot.knowledge import KnowledgeBase, load_knowledge
from bot.logging_setup import CHATTY_LOGGERS
from bot.pictures import PictureFiles

KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "knowledge"


@pytest.fixture(scope="session")
def knowledge() -> KnowledgeBase:
    """The project's own knowledge base, loaded once (it is immutable)."""
    return load_knowledge(KNOWLEDGE_DIR)


@pytest.fixture(scope="session")
def drawn_pictures(knowledge: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every picture drawn once for the whole run (a few tenths of a second each), for bots
    whose clock runs so fast that drawing one would be minutes of a session."""
    files = PictureFiles(tmp_path_factory.mktemp("pictures"))
    for picture in knowledge.pictures.values():
        files.path(picture)
    return files.directory


@pytest.fixture
async def api() -> AsyncIterator[StandIn]:
    """A Bot API stand-in on 127.0.0.1, started and stopped around each test."""
    async with StandIn() as stand_in:
        yield stand_in


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the next test."""
    factory = logging.getLogRecordFactory()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("httpcore", *CHATTY_LOGGERS)}
    yield
    logging.setLogRecordFactory(factory)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)
