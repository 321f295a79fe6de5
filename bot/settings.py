"""Settings from the environment and an optional `.env` file (the environment wins)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
DEFAULT_BASE_FILE_URL = "https://api.telegram.org/file/bot"
# Telegram tokens look like 123456789:AAE...; the secret part is 30+ URL-safe characters.
TOKEN_PATTERN = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{30,}$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The misses log (bot/misses.py): on unless MISSES_LOG says off; kept MISSES_KEEP_DAYS days.
SWITCH_WORDS = {"on": True, "off": False, "1": True, "0": False, "true": True, "false": False,
                "yes": True, "no": False}
DEFAULT_MISSES_KEEP_DAYS = 90
# The knowledge base: knowledge/ beside the package in a checkout, its copy inside the
# package when installed from a wheel (pyproject.toml's force-include).
_CHECKOUT_KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "knowledge"
PACKAGE_KNOWLEDGE_DIR = (
    _CHECKOUT_KNOWLEDGE_DIR
    if _CHECKOUT_KNOWLEDGE_DIR.is_dir()
    else Path(__file__).resolve().parent / "bundled_knowledge"
)


# sysexits.h's EX_CONFIG: what will not heal by itself (a bad token, a wrong base URL, bad
# settings, a broken knowledge base or store). A supervisor should not restart on it
# (deploy/massage-bot.service: RestartPreventExitStatus).
EXIT_CONFIG = 78


# What each setting does, for `massage-bot COMMAND --help` (bot/cli.py lists those it reads).
SETTING_HELP = {
    "TELEGRAM_BOT_TOKEN": "the bot's token from @BotFather (never logged or shown)",
    "TELEGRAM_BASE_URL": f"the Bot API's address (default {DEFAULT_BASE_URL})",
    "TELEGRAM_BASE_FILE_URL": f"the Bot API's file address (default {DEFAULT_BASE_FILE_URL})",
    "DATA_DIR": "where the store lives (default $XDG_DATA_HOME/massage-bot, or "
                "~/.local/share/massage-bot when XDG_DATA_HOME is not set)",
    "KNOWLEDGE_DIR": "the knowledge base directory (default: the project's knowledge/)",
    "LOG_LEVEL": f"{', '.join(LOG_LEVELS)} (default INFO)",
    "ADMIN_IDS": "Telegram user ids, comma-separated, who may use /reload",
    "WEBHOOK_URL": "the public https:// address: webhook mode instead of long polling",
    "WEBHOOK_SECRET": "the secret Telegram sends with each webhook call (with WEBHOOK_URL)",
    "WEBHOOK_LISTEN": "the address the webhook server listens on (default 127.0.0.1)",
    "WEBHOOK_PORT": "its port (default 8443)",
    "WEBHOOK_PATH": "its path (default telegram)",
    "MISSES_LOG": "on (default) or off: keep unanswered questions for `massage-bot misses`",
    "MISSES_KEEP_DAYS": f"days the misses log is kept (default {DEFAULT_MISSES_KEEP_DAYS})",
}


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line for the user."""


def default_data_dir(env: Mapping[str, str]) -> Path:
    home = env.get("HOME") or str(Path.home())
    base = env.get("XDG_DATA_HOME") or str(Path(home) / ".local" / "share")
    return Path(base) / "massage-bot"


@dataclass(frozen=True)
class Settings:
    token: str
    base_url: str
    base_file_url: str
    data_dir: Path
    knowledge_dir: Path
    log_level: str
    admin_ids: frozenset[int]
    webhook_url: str
    webhook_secret: str
    webhook_listen: str
    webhook_port: int
    webhook_path: str
    misses_log: bool = True
    misses_keep_days: int = DEFAULT_MISSES_KEEP_DAYS

    @property
    def database_path(self) -> Path:
        return self.data_dir / "massage-bot.sqlite3"

    @property
    def uses_webhook(self) -> bool:
        return bool(self.webhook_url)

    def require_token(self) -> str:
        """The token, checked for shape; SettingsError never repeats the token itself."""
        if not self.token:
            raise SettingsError(
                "TELEGRAM_BOT_TOKEN is not set: put it in the environment or in .env "
                "(see .env.example); `massage-bot chat` needs no token."
            )
        if not TOKEN_PATTERN.match(self.token):
            raise SettingsError(
                "TELEGRAM_BOT_TOKEN is malformed: expected digits, a colon and the secret "
                "part, as @BotFather gives it."
            )
        return self.token


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines, comments and `export ` prefixes allowed; quotes stripped."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.removeprefix("export ").split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a whole number, not {raw!r}") from None


def _url(env: Mapping[str, str], key: str, default: str, schemes: tuple[str, ...],
         hint: str) -> str:
    """A URL setting, checked here so a typo fails at once instead of being retried.

    The value is never echoed: a base URL pasted with the token in it must not show it.
    """
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in schemes or not parts.hostname:
        wanted = " or ".join(f"{scheme}://" for scheme in schemes)
        raise SettingsError(f"{key} must be a URL starting with {wanted} and a host ({hint})")
    return raw


# Read only by `massage-bot run`; other commands leave them out, so a slip in the bot's part
# of .env never stops the terminal chat or the author's tools.
BOT_ONLY = frozenset(
    name for name in SETTING_HELP if name.startswith(("TELEGRAM_", "WEBHOOK_"))
) | {"ADMIN_IDS", "LOG_LEVEL"}


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env"),
    bot: bool = True,
) -> Settings:
    """The settings; with `bot` False, those only the Telegram bot reads keep their defaults."""
    env: dict[str, str] = read_dotenv(dotenv) if dotenv is not None else {}
    env.update(os.environ if environ is None else environ)
    if not bot:
        env = {key: value for key, value in env.items() if key not in BOT_ONLY}

    level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    admin_ids: set[int] = set()
    for part in env.get("ADMIN_IDS", "").replace(";", ",").split(","):
        if part.strip():
            try:
                admin_ids.add(int(part))
            except ValueError:
                raise SettingsError(
                    f"ADMIN_IDS must be Telegram user ids separated by commas, not {part!r}"
                ) from None
    # Telegram sends webhooks only to https; a local Bot API server may well be plain http.
    webhook_url = _url(env, "WEBHOOK_URL", "", ("https",),
                       "Telegram sends webhooks only over https")
    base_url = _url(env, "TELEGRAM_BASE_URL", DEFAULT_BASE_URL, ("https", "http"),
                    f"or leave it out for {DEFAULT_BASE_URL}")
    base_file_url = _url(env, "TELEGRAM_BASE_FILE_URL", DEFAULT_BASE_FILE_URL,
                         ("https", "http"), f"or leave it out for {DEFAULT_BASE_FILE_URL}")
    webhook_secret = env.get("WEBHOOK_SECRET", "").strip()
    if webhook_url and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", webhook_secret):
        raise SettingsError(
            "WEBHOOK_SECRET must be set with WEBHOOK_URL: 1-256 characters of A-Z, a-z, 0-9, _ or -"
        )
    misses_log = env.get("MISSES_LOG", "").strip().lower() or "on"
    if misses_log not in SWITCH_WORDS:
        raise SettingsError(f"MISSES_LOG must be on or off, not {misses_log!r}")
    keep_days = _int(env, "MISSES_KEEP_DAYS", DEFAULT_MISSES_KEEP_DAYS)
    if keep_days < 1:
        raise SettingsError(f"MISSES_KEEP_DAYS must be at least 1, not {keep_days}")
    return Settings(
        token=env.get("TELEGRAM_BOT_TOKEN", "").strip(),
        base_url=base_url,
        base_file_url=base_file_url,
        data_dir=Path(env.get("DATA_DIR", "").strip() or default_data_dir(env)).expanduser(),
        knowledge_dir=Path(env.get("KNOWLEDGE_DIR", "").strip() or PACKAGE_KNOWLEDGE_DIR),
        log_level=level,
        admin_ids=frozenset(admin_ids),
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_listen=env.get("WEBHOOK_LISTEN", "").strip() or "127.0.0.1",
        webhook_port=_int(env, "WEBHOOK_PORT", 8443),
        webhook_path=env.get("WEBHOOK_PATH", "").strip().strip("/") or "telegram",
        misses_log=SWITCH_WORDS[misses_log],
        misses_keep_days=keep_days,
    )
