"""Settings from the environment and .env: defaults, precedence and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import DEFAULT_BASE_URL, SettingsError, load_settings

TOKEN = "123456789:AAEabcdefghijklmnopqrstuvwxyz0123456"


def test_defaults_need_nothing(tmp_path: Path) -> None:
    settings = load_settings({"HOME": str(tmp_path)}, dotenv=None)
    assert settings.token == ""
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.data_dir == tmp_path / ".local" / "share" / "massage-bot"
    assert settings.knowledge_dir.name == "knowledge"
    assert not settings.uses_webhook


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        f"# comment\nexport TELEGRAM_BOT_TOKEN='{TOKEN}'\nLOG_LEVEL=debug\nDATA_DIR=/tmp/a\n"
    )
    settings = load_settings({"DATA_DIR": "/tmp/b", "ADMIN_IDS": "1, 2"}, dotenv=dotenv)
    assert settings.token == TOKEN
    assert settings.log_level == "DEBUG"
    assert settings.data_dir == Path("/tmp/b")
    assert settings.admin_ids == frozenset({1, 2})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of"),
        ({"ADMIN_IDS": "alice"}, "ADMIN_IDS must be Telegram user ids"),
        ({"WEBHOOK_URL": "https://x.example/hook"}, "WEBHOOK_SECRET must be set"),
        ({"WEBHOOK_PORT": "eighty"}, "WEBHOOK_PORT must be a whole number"),
        ({"MISSES_LOG": "sometimes"}, "MISSES_LOG must be on or off"),
        ({"MISSES_KEEP_DAYS": "a week"}, "MISSES_KEEP_DAYS must be a whole number"),
        ({"MISSES_KEEP_DAYS": "0"}, "MISSES_KEEP_DAYS must be at least 1"),
        ({"TELEGRAM_BASE_URL": "notaurl"}, "TELEGRAM_BASE_URL must be a URL starting with"),
        ({"TELEGRAM_BASE_URL": "api.telegram.org/bot"}, "TELEGRAM_BASE_URL must be a URL"),
        ({"TELEGRAM_BASE_URL": "http://127.0.0.1:port/bot"}, "TELEGRAM_BASE_URL must be a URL"),
        ({"TELEGRAM_BASE_FILE_URL": "ftp://x.example/file"}, "TELEGRAM_BASE_FILE_URL must be"),
        ({"WEBHOOK_URL": "http://x.example/hook", "WEBHOOK_SECRET": "abc"},
         "WEBHOOK_URL must be a URL starting with https:// and a host (Telegram sends webhooks "
         "only over https)"),
    ],
)
def test_malformed_settings_give_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(env, dotenv=None)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("token", ["", "not-a-token", "123:short", TOKEN + " extra"])
def test_missing_or_malformed_token_never_echoes_it(token: str) -> None:
    settings = load_settings({"TELEGRAM_BOT_TOKEN": token}, dotenv=None)
    with pytest.raises(SettingsError) as raised:
        settings.require_token()
    assert "TELEGRAM_BOT_TOKEN" in str(raised.value)
    if token.strip():
        assert token.strip() not in str(raised.value)


def test_well_formed_token_is_accepted() -> None:
    assert load_settings({"TELEGRAM_BOT_TOKEN": TOKEN}, dotenv=None).require_token() == TOKEN


def test_the_misses_log_is_on_for_ninety_days_unless_set() -> None:
    default = load_settings({}, dotenv=None)
    assert (default.misses_log, default.misses_keep_days) == (True, 90)
    off = load_settings({"MISSES_LOG": "OFF", "MISSES_KEEP_DAYS": "30"}, dotenv=None)
    assert (off.misses_log, off.misses_keep_days) == (False, 30)


def test_a_local_bot_api_server_may_be_plain_http() -> None:
    settings = load_settings({"TELEGRAM_BASE_URL": "http://127.0.0.1:8081/bot"}, dotenv=None)
    assert settings.base_url == "http://127.0.0.1:8081/bot"
