"""The misses log: what people asked and did not get, kept for the knowledge base's author.

Like QnA Maker's active learning and Botpress's "misunderstood" inbox it only collects: a
person reviews it (`massage-bot misses`, see bot/misses_report.py) and decides what goes into
the knowledge base's `examples:` files. Nothing is learnt automatically.

What goes in: every message that got a did-you-mean or a fallback, and every answer whose
person marked it "Not what I asked", with the topics offered and their scores, what the person
then picked (a did-you-mean choice is explicit feedback), the front end and the day. What never
goes in: a chat or user id, a name, the time of day. The text is cleaned first: markup
stripped, @mentions, e-mail addresses and long numbers (a phone number) blanked, and cut to
MAX_TEXT_CHARS.

An answer shown with feedback buttons is held open in the store for FEEDBACK_KEEP_SECONDS
(`Store.open_answer`), keyed by a random handle its buttons carry and by nothing else, so that
a "Not what I asked" can log the question and offer the next best topics. With the log off,
only the topics are held, not the question.

The log is kept for `keep_days` (MISSES_KEEP_DAYS, default 90): pruned at start-up and at the
first use of each day, and by the Telegram front end's prune job, so a quiet bot prunes too.
MISSES_LOG=off records nothing and empties the log at start-up, so /help's privacy line holds.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from bot.knowledge import phrasing_key
from bot.matcher import Candidate, Match
from bot.settings import DEFAULT_MISSES_KEEP_DAYS, Settings
from bot.store import FEEDBACK_KEEP_SECONDS, MissRow, OpenAnswer, Scored, Store
from bot.wording import strip_markup

MAX_TEXT_CHARS = 500
# The handle on a logged reply that its buttons carry: 64 random bits in 11 characters, so
# nobody can guess another chat's, and short enough for Telegram's 64-byte button data.
REF_BYTES = 8
# A run of digits this long is a phone, NHS or card number, not an amount of minutes.
NUMBER_DIGITS = 7

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_MENTION = re.compile(r"(?<![\w@])@\w{2,}")
_NUMBERISH = re.compile(r"\+?\d[\d \-().]*\d")


def clean_text(text: str) -> str:
    """The message as the log keeps it: plain text, nobody's address or number, one line,
    at most MAX_TEXT_CHARS."""
    text = _EMAIL.sub("[email]", strip_markup(text))
    text = _MENTION.sub("@someone", text)
    text = _NUMBERISH.sub(
        lambda found: "[number]" if sum(c.isdigit() for c in found[0]) >= NUMBER_DIGITS
        else found[0],
        text,
    )
    return " ".join(text.split())[:MAX_TEXT_CHARS].rstrip()


def log_day(store: Store) -> date:
    """The log's day: the UTC date by the store's clock (the one its keep times count in)."""
    return datetime.fromtimestamp(store.now(), UTC).date()


def scored(candidates: tuple[Candidate, ...] | list[Candidate]) -> Scored:
    return tuple((candidate.topic, candidate.score) for candidate in candidates)


@dataclass(frozen=True)
class MissesPolicy:
    """Whether a front end logs misses, and for how long it keeps them."""

    front_end: str  # "telegram", "terminal": which front end the log's entries came from
    enabled: bool = True
    keep_days: int = DEFAULT_MISSES_KEEP_DAYS

    @classmethod
    def from_settings(cls, settings: Settings, front_end: str) -> MissesPolicy:
        return cls(front_end, settings.misses_log, settings.misses_keep_days)


def privacy_line(policy: MissesPolicy | None) -> str:
    """What /help says is kept, and for how long."""
    kept = (
        "Your guided session's progress (for 12 hours), checklist ticks and settings are "
        "kept with your chat so you can pick up where you left off."
    )
    if policy is None or not policy.enabled:
        return f"Privacy: nothing you ask is logged. {kept}"
    return (
        f"Privacy: questions I couldn't answer, and answers you mark 👎, are kept for "
        f"{policy.keep_days} days, without your name or chat, so the people who write my "
        f"answers can improve them (to make 👎 work, a question I answered is held for "
        f"{FEEDBACK_KEEP_SECONDS / 3600:g} hours). {kept}"
    )


@dataclass
class MissesLog:
    """The conversation's side of the log: what to record, and the handles replies carry."""

    store: Store
    policy: MissesPolicy | None = None  # None: nobody configured a log, so nothing is logged
    pruned_on: date | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.prune()  # start-up

    def today(self) -> date:
        return log_day(self.store)

    @property
    def enabled(self) -> bool:
        return self.policy is not None and self.policy.enabled

    def prune(self) -> int:
        """Drop the days past the keep time (all of the log when it is off); rows dropped."""
        today = self.today()
        self.pruned_on = today
        if self.policy is None or not self.policy.enabled:
            return self.store.prune_misses(None)
        first_kept = today - timedelta(days=self.policy.keep_days - 1)
        return self.store.prune_misses(first_kept.isoformat())

    def prune_if_due(self) -> int:
        """`prune`, once a day."""
        return self.prune() if self.today() != self.pruned_on else 0

    def note(self, text: str, match: Match) -> str:
        """Log `text` if it is a miss, or hold its answer open to feedback: the handle the
        reply's buttons carry, or "" when they should carry none."""
        self.prune_if_due()
        if match.decision == "answer" and match.topic is not None:
            ref = new_ref()
            answered = sorted(match.candidates, key=lambda c: c.topic != match.topic)
            held = clean_text(text) if self.enabled else ""
            self.store.open_answer(ref, OpenAnswer(held, scored(answered)))
            return ref
        if match.decision in ("clarify", "fallback"):
            return self._record(text, match.decision, scored(match.candidates))
        return ""

    def close(self, ref: str) -> OpenAnswer | None:
        """The answer behind a feedback button, once: None if already given or too late."""
        return self.store.close_answer(ref)

    def unhelpful(self, text: str, offered: Scored) -> str:
        """Log an answer marked not what was asked: `offered` is the answered topic, then
        what was offered instead. The handle for the offer's buttons, or ""."""
        return self._record(text, "answer", offered, unhelpful=True)

    def pick(self, ref: str, topic: str | None) -> None:
        """What the person chose from what a logged reply offered (None: none of these)."""
        row = self.store.miss(ref) if self.enabled else None
        if row is not None and (topic is None or any(t == topic for t, _ in row.candidates)):
            self.store.set_miss_pick(ref, topic)

    def _record(self, text: str, decision: str, candidates: Scored, unhelpful: bool = False
                ) -> str:
        cleaned = clean_text(text)
        if self.policy is None or not self.policy.enabled or not phrasing_key(cleaned):
            return ""  # off, or nothing an author could read ("+", "👍", "???")
        ref = new_ref()
        self.store.add_miss(MissRow(
            ref=ref, day=self.today().isoformat(), front_end=self.policy.front_end,
            text=cleaned, decision=decision, candidates=candidates, unhelpful=unhelpful,
        ))
        return ref


def new_ref() -> str:
    return secrets.token_urlsafe(REF_BYTES)
