"""Load and validate the knowledge base: topics and guided sessions in `knowledge/*.yaml`.

A knowledge file is a YAML mapping with any of these top-level keys:

- `topics`: a list of topics (fields fixed by `shared/kb-contract.md`, plus an optional
  `checklist` of items that can be ticked off, used by the `equipment` topic);
- `sessions`: a list of guided sessions, each with `id`, `title`, `summary`, optional
  `equipment` (checklist items), optional `aftercare` (lines for the closing summary),
  optional `variants` (the variant ids it can run in), optional `unsafe_variant` (the variant
  offered after any yes in the safety check, e.g. a skin check without the rub) and `steps`
  (`title`, `text`, optional `seconds`, optional `variants`: per variant id either `skip` or
  a mapping of the fields that change);
- `variants`: the ways a session can be adapted (`id`, `name`, `note`, `button`, `offer`);
- `safety_check`: what is asked before a guided session starts: `conditions` (one screen
  listing them; each with `id`, `text`, `button`, `advice`, `related` topic ids and optional
  `allows`, a variant possible once a professional agrees), `not_sure` (`advice`, `related`)
  and `questions` (`id`, `text`, `sessions`, and the `variant` a yes selects);
- `out_of_scope`: phrasings the matcher must never answer directly ("car oil");
- `vocabulary`: what the knowledge base means by words, for the matcher: `synonyms` (a word
  and the other words people use for it: `stomach: [tummy, belly]`), `phrases` (a word and
  the phrases that mean it, for a word with two senses: `apoplexy: [had a stroke]`, the
  illness, not a massage stroke) and `ignore` (words that say who, not what: "mum",
  "resident");
- `examples`: messages people sent, by the topic that answers them (`tapotement: [the karate
  chop thing]`): more example questions for the matcher, kept apart from the content so the
  loop of reviewing what people asked does not touch the topics' files;
- `smalltalk`: chit-chat that is not a question (`id`, `phrasings`, and a `reply`, or a
  `command` whose screen answers it, such as `help`);
- `pictures`: diagrams drawn by bot/pictures.py (`id`, `view`, `title`, `marks`: the data
  bot/diagrams.py describes), shown with a topic or a step that names one (`picture: id`,
  also in a step's variant).

Every problem is collected, not just the first, and names its file, line and field, so one
`massage-bot check` run shows everything that needs fixing. A YAML syntax error is one
problem in plain words at file:line:column, and what only follows from it (the ids that file
defines, unknown elsewhere) is not listed. Like `rasa data validate`, the check also warns of
a phrasing two entries claim (two topics, a topic and `out_of_scope`, a topic and small talk):
the knowledge base still loads, since the matcher then asks back, but the author should fix it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from bot.diagrams import (
    AREA_ROLES,
    MAX_LABEL_CHARS,
    MAX_LEGEND_CHARS,
    MAX_LEGEND_LINES,
    MAX_TITLE_CHARS,
    PROPS,
    SHAPES,
    STROKE_STYLES,
    VIEWS,
    Mark,
    Picture,
    Point,
    legend_entries,
    picture_problems,
)
from bot.wording import strip_markup

TOPIC_KINDS = (
    "technique",
    "equipment",
    "positioning",
    "preparation",
    "procedure",
    "safety",
    "general",
)
KIND_TITLES = {
    "technique": "Techniques",
    "equipment": "Equipment",
    "positioning": "Positioning",
    "preparation": "Preparation",
    "procedure": "The massage",
    "safety": "Safety",
    "general": "General",
}
REQUIRED_TOPIC_IDS = (
    "effleurage", "petrissage", "tapotement", "friction", "vibration",
    "equipment", "oil-and-lotion", "talcum-powder", "towels-and-washing", "massage-surface",
    "pillows-and-support",
    "positioning", "side-lying", "room-setup", "preparing-yourself", "consent-and-communication",
    "procedure", "pressure", "stroke-direction", "duration", "finishing", "aftercare",
    "benefits", "bedsore-prevention", "contraindications",
    "guided-session",
)  # fmt: skip
REQUIRED_SESSION_IDS = ("full-back", "quick-back", "bedside-back-rub")

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Ids travel in button data (Telegram allows 64 bytes), beside a prefix and a feedback handle
# ("fb:+:<11 characters>:<topic id>", bot/conversation.py).
MAX_ID_CHARS = 32
# A step longer than this is almost certainly a typo (seconds meant as minutes times 60 twice).
MAX_STEP_SECONDS = 30 * 60
# Telegram caps a message at 4,096 characters; an answer must fit with its title.
MAX_ANSWER_CHARS = 3500


@dataclass(frozen=True)
class Topic:
    id: str
    kind: str
    title: str
    aliases: tuple[str, ...]
    questions: tuple[str, ...]
    answer: str
    related: tuple[str, ...]
    checklist: tuple[str, ...] = ()
    source: str = ""  # "file:line", for error messages and logs
    examples: tuple[str, ...] = ()  # messages people sent, from `examples:` files
    picture: str = ""  # the id of the diagram shown with the answer


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    seconds: int | None = None
    picture: str = ""  # the id of the diagram shown with the step
    # How the step changes in each variant: a replacement step, or None when it is left out.
    variants: tuple[tuple[str, Step | None], ...] = ()

    def in_variant(self, variant: str | None) -> Step | None:
        """This step as `variant` runs it: itself, its replacement, or None (skipped)."""
        for name, changed in self.variants:
            if name == variant:
                return changed
        return self


@dataclass(frozen=True)
class GuidedSession:
    id: str
    title: str
    summary: str
    steps: tuple[Step, ...]
    equipment: tuple[str, ...] = ()
    aftercare: tuple[str, ...] = ()  # lines shown in the summary once steps were done
    variants: tuple[str, ...] = ()  # the variant ids this session can run in
    unsafe_variant: str | None = None  # offered after any yes in the safety check

    @property
    def total_seconds(self) -> int:
        return sum(step.seconds or 0 for step in self.steps)

    def steps_in(self, variant: str | None) -> tuple[Step, ...]:
        """The steps as `variant` runs them (None: the session as written)."""
        if variant is None:
            return self.steps
        changed = (step.in_variant(variant) for step in self.steps)
        return tuple(step for step in changed if step is not None)


@dataclass(frozen=True)
class Variant:
    """A way to run a session adapted to the person: gentler, lighter, or without the rub."""

    id: str
    name: str  # shown after the session's title: "Full back massage (gentle version)"
    note: str  # one line on the first screen of the adapted session
    button: str  # the button that chooses it on the safety advice screen
    offer: str  # what the advice screen says about it


@dataclass(frozen=True)
class SafetyCondition:
    """One condition of the safety check's list, and what to do instead if it applies."""

    id: str
    text: str  # its line in the list
    button: str  # its button when asking which one applies
    advice: str
    related: tuple[str, ...] = ()  # topic ids offered as buttons with the advice
    allows: str | None = None  # a variant possible once their doctor, nurse or midwife agrees


@dataclass(frozen=True)
class SafetyQuestion:
    """A yes/no question asked after "None of these"; a yes (or not sure) picks a variant."""

    id: str
    text: str
    sessions: tuple[str, ...]
    variant: str


@dataclass(frozen=True)
class SafetyCheck:
    conditions: tuple[SafetyCondition, ...] = ()
    not_sure: SafetyCondition | None = None  # the advice when not sure which applies
    questions: tuple[SafetyQuestion, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def questions_for(self, session_id: str) -> tuple[SafetyQuestion, ...]:
        return tuple(q for q in self.questions if session_id in q.sessions)

    def screens(self, session_id: str) -> int:
        """How many screens a person answers before `session_id` starts when none applies."""
        return (1 if self.conditions else 0) + len(self.questions_for(session_id))


@dataclass(frozen=True)
class SmallTalk:
    id: str
    phrasings: tuple[str, ...]
    reply: str = ""  # what to say; empty when `command` answers it
    command: str = ""  # a command whose screen is the answer ("help")


@dataclass(frozen=True)
class KnowledgeBase:
    topics: Mapping[str, Topic]
    sessions: Mapping[str, GuidedSession]
    safety_check: SafetyCheck = SafetyCheck()
    out_of_scope: tuple[str, ...] = ()
    variants: Mapping[str, Variant] = field(default_factory=dict)
    synonyms: Mapping[str, str] = field(default_factory=dict)  # word people use -> word meant
    # A phrase's words -> the one word it means ("had a stroke" -> "apoplexy").
    phrases: Mapping[tuple[str, ...], str] = field(default_factory=dict)
    ignored_words: frozenset[str] = frozenset()
    # Topic id -> phrasings that are an emergency wherever they come in a message ("tight
    # chest"): answered with that topic at once, never asked back.
    urgent: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Safety topic id -> warning signs ("it hurts", "numb"): an answer with a comfort topic to
    # a message saying one also offers that safety topic.
    caution: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    smalltalk: tuple[SmallTalk, ...] = ()
    pictures: Mapping[str, Picture] = field(default_factory=dict)

    def topics_of_kind(self, kind: str) -> list[Topic]:
        return [topic for topic in self.topics.values() if topic.kind == kind]

    def summary(self) -> str:
        aliases = sum(len(t.aliases) for t in self.topics.values())
        questions = sum(len(t.questions) for t in self.topics.values())
        examples = sum(len(t.examples) for t in self.topics.values())
        return (
            f"{len(self.topics)} topics, {len(self.sessions)} sessions, "
            f"{aliases} aliases, {questions} questions, {examples} examples"
        )


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    field: str
    message: str
    column: int = 0  # 1-based, when known (YAML syntax errors)
    # The knowledge base still loads: the bot copes (two topics with one phrasing are asked
    # back), but the author should fix it.
    warning: bool = False
    # The id whose absence is the problem ("unknown topic id 'x'", "required topic 'x' is
    # missing"): such a problem may only follow from a file that could not be read.
    missing: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")
        field = f"{self.field}: " if self.field else ""
        kind = "warning: " if self.warning else ""
        return f"{where}: {kind}{field}{self.message}"


class KnowledgeError(Exception):
    """The knowledge base is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        super().__init__(f"invalid knowledge base ({len(problems)} problems):\n{lines}")


class _Node(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers the line of itself and of each key (1-based)."""

    line: int
    key_lines: dict[str, int]  # the first line of each key


class _Seq(list):  # type: ignore[type-arg]
    line: int
    item_lines: list[int]


# libyaml's parser when PyYAML was built with it (nodes keep their marks either way): the
# knowledge base has grown to where the pure-Python parser is most of the load time.
_SafeLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoader):
    """SafeLoader (no arbitrary objects) that records line numbers for error messages."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeated: list[tuple[str, int, int]] = []  # keys given twice: key, line, first

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _Node:
        mapping = _Node(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        for key, _value in node.value:
            name, line = str(key.value), key.start_mark.line + 1
            if name in mapping.key_lines:
                # YAML keeps the last one silently; an author means neither to be lost.
                self.repeated.append((name, line, mapping.key_lines[name]))
            else:
                mapping.key_lines[name] = line
        return mapping

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> _Seq:
        seq = _Seq(super().construct_sequence(node, deep=True))
        seq.line = node.start_mark.line + 1
        seq.item_lines = [item.start_mark.line + 1 for item in node.value]
        return seq


_TAGS = yaml.resolver.BaseResolver
_LineLoader.add_constructor(_TAGS.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping)
_LineLoader.add_constructor(_TAGS.DEFAULT_SEQUENCE_TAG, _LineLoader.construct_sequence)


@dataclass
class _Collector:
    problems: list[Problem] = field(default_factory=list)

    def add(
        self, file: str, line: int, name: str, message: str, missing: str = ""
    ) -> None:
        self.problems.append(Problem(file, line, name, message, missing=missing))


_WORD_CHARS = re.compile(r"\w+")
_APOSTROPHES = str.maketrans("", "", "'\u2019\u2018`")


def phrasing_key(text: str) -> str:
    """What makes two phrasings the same: case, punctuation, apostrophes and spacing aside
    ("What's effleurage?" and "whats effleurage")."""
    return " ".join(_WORD_CHARS.findall(strip_markup(text).casefold().translate(_APOSTROPHES)))


class _Said(NamedTuple):  # thousands per load: a tuple is cheaper to make than a dataclass
    """One phrasing as written and whose it is, for the conflicts between entries."""

    file: str
    line: int
    field: str  # "topic kneading.aliases[2]", "out_of_scope[3]", ...
    owner: str  # "topic kneading", "out of scope", "small talk help"
    role: str  # "an alias of topic kneading", for the message about the other one
    text: str


_ROLES = {"title": "the title", "aliases": "an alias", "questions": "a question",
          "examples": "an example"}


def _said(node: Any, key: str, file: str, where: str, owner: str, role: str) -> list[_Said]:
    """The phrasings of `node[key]` (a string, or a list of them) with their own lines."""
    value = node.get(key) if isinstance(node, _Node) else None
    if isinstance(value, str):
        text = value.strip()
        line = _line_of(node, key)
        return [_Said(file, line, f"{where}.{key}", owner, role, text)] if text else []
    if not isinstance(value, list):
        return []
    lines = getattr(value, "item_lines", [])
    return [
        _Said(file, lines[index] if index < len(lines) else _line_of(node, key),
              f"{where}.{key}[{index}]" if where else f"{key}[{index}]", owner, role,
              item.strip())
        for index, item in enumerate(value)
        if isinstance(item, str) and item.strip()
    ]


def _topic_said(node: _Node, file: str, topic_id: str) -> list[_Said]:
    owner = f"topic {topic_id}"
    return [
        said
        for key in ("title", "aliases", "questions")
        for said in _said(node, key, file, owner, owner, f"{_ROLES[key]} of {owner}")
    ]


def _why_conflict(first: _Said, later: _Said) -> str:
    kinds = {first.owner.split(" ")[0], later.owner.split(" ")[0]}
    if "out" in kinds:
        return "a message can't be both answered and out of scope"
    if "small" in kinds:
        return "small talk answers it first, so the topic never does"
    return "keep it under the one topic that answers it"


def _check_phrasings(said: Iterable[_Said], out: _Collector) -> None:
    """Phrasings that two entries both claim, as `rasa data validate` reports an example
    under two intents: the same phrasing under two topics (an alias that is another
    topic's title among them), a topic phrasing also out of scope or small talk."""
    first: dict[str, _Said] = {}
    for later in said:
        key = phrasing_key(later.text)
        seen = first.setdefault(key, later)
        if not key or seen.owner == later.owner:
            continue
        out.problems.append(Problem(
            later.file, later.line, later.field,
            f"{later.text!r} is also {seen.role} ({seen.file}:{seen.line}): "
            f"{_why_conflict(seen, later)}", warning=True,
        ))


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _line_of(node: Any, key: str | None = None, default: int = 1) -> int:
    if key is not None and isinstance(node, _Node):
        return node.key_lines.get(key, node.line)
    return getattr(node, "line", default)


def _text(
    node: _Node, key: str, file: str, where: str, out: _Collector, required: bool = True
) -> str:
    value = node.get(key)
    name = f"{where}.{key}"
    if value is None:
        if required:
            out.add(file, node.line, name, "is missing")
        return ""
    if not isinstance(value, str):
        out.add(file, _line_of(node, key), name, f"must be a string, not {_type_name(value)}")
        return ""
    if required and not value.strip():
        out.add(file, _line_of(node, key), name, "is empty")
    return value.strip()


def _texts(
    node: _Node, key: str, file: str, where: str, out: _Collector, required: bool = True
) -> tuple[str, ...]:
    value = node.get(key)
    name = f"{where}.{key}"
    if value is None:
        if required:
            out.add(file, node.line, name, "is missing")
        return ()
    if not isinstance(value, list):
        out.add(file, _line_of(node, key), name, "must be a list of strings")
        return ()
    items: list[str] = []
    lines = getattr(value, "item_lines", [])
    for index, item in enumerate(value):
        line = lines[index] if index < len(lines) else _line_of(node, key)
        if not isinstance(item, str) or not item.strip():
            out.add(file, line, f"{name}[{index}]", "must be a non-empty string")
            continue
        items.append(item.strip())
    return tuple(items)


def _mapping_items(
    value: Any, file: str, name: str, line: int, out: _Collector
) -> Iterable[tuple[int, _Node]]:
    if not isinstance(value, list):
        out.add(file, line, name, "must be a list of mappings")
        return
    for index, item in enumerate(value):
        if not isinstance(item, _Node):
            item_line = value.item_lines[index] if isinstance(value, _Seq) else line
            out.add(file, item_line, f"{name}[{index}]", "must be a mapping")
            continue
        yield index, item


def _checked_id(node: _Node, file: str, where: str, out: _Collector) -> str:
    value = _text(node, "id", file, where, out)
    if value and not ID_PATTERN.match(value):
        out.add(file, _line_of(node, "id"), f"{where}.id", f"{value!r} is not kebab-case")
    elif len(value) > MAX_ID_CHARS:
        out.add(file, _line_of(node, "id"), f"{where}.id",
                f"{value!r} is longer than {MAX_ID_CHARS} characters (it goes into buttons)")
    return value


def _parse_topic(node: _Node, file: str, where: str, out: _Collector) -> Topic:
    topic_id = _checked_id(node, file, where, out)
    where = f"topic {topic_id}" if topic_id else where
    kind = _text(node, "kind", file, where, out)
    if kind and kind not in TOPIC_KINDS:
        out.add(
            file, _line_of(node, "kind"), f"{where}.kind",
            f"unknown kind {kind!r}; expected one of {', '.join(TOPIC_KINDS)}",
        )
    answer = _text(node, "answer", file, where, out)
    if len(answer) > MAX_ANSWER_CHARS:
        out.add(
            file, _line_of(node, "answer"), f"{where}.answer",
            f"is {len(answer)} characters; keep it under {MAX_ANSWER_CHARS} for a chat screen",
        )
    return Topic(
        id=topic_id,
        kind=kind,
        title=_text(node, "title", file, where, out),
        aliases=_texts(node, "aliases", file, where, out),
        questions=_texts(node, "questions", file, where, out),
        answer=answer,
        related=_texts(node, "related", file, where, out),
        checklist=_texts(node, "checklist", file, where, out, required=False),
        picture=_text(node, "picture", file, where, out, required=False),
        source=f"{file}:{node.line}",
    )


def _seconds(node: _Node, file: str, where: str, out: _Collector) -> int | None:
    seconds = node.get("seconds")
    if seconds is None:
        return None
    line = _line_of(node, "seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        out.add(file, line, f"{where}.seconds", "must be a whole number of seconds")
        return None
    if seconds <= 0:
        out.add(file, line, f"{where}.seconds", f"must be positive, not {seconds}")
        return None
    if seconds > MAX_STEP_SECONDS:
        out.add(
            file, line, f"{where}.seconds",
            f"{seconds} s is absurd for one step (at most {MAX_STEP_SECONDS})",
        )
        return None
    return seconds


SKIP = "skip"


def _parse_step_variants(
    node: _Node, base: Step, file: str, where: str, out: _Collector
) -> tuple[tuple[str, Step | None], ...]:
    raw = node.get("variants")
    if raw is None:
        return ()
    name = f"{where}.variants"
    if not isinstance(raw, _Node):
        out.add(file, _line_of(node, "variants"), name, "must map variant ids to changes")
        return ()
    variants: list[tuple[str, Step | None]] = []
    for variant_id, change in raw.items():
        line = _line_of(raw, str(variant_id))
        here = f"{name}.{variant_id}"
        if change == SKIP:
            variants.append((str(variant_id), None))
        elif isinstance(change, _Node):
            unknown = set(change) - {"title", "text", "seconds", "picture"}
            if unknown:
                out.add(file, line, here, f"unknown fields {', '.join(sorted(map(str, unknown)))}")
            title = _text(change, "title", file, here, out, required=False) or base.title
            text = _text(change, "text", file, here, out, required=False) or base.text
            seconds = _seconds(change, file, here, out) if "seconds" in change else base.seconds
            picture = _text(change, "picture", file, here, out, required=False) or base.picture
            variants.append((str(variant_id),
                             Step(title=title, text=text, seconds=seconds, picture=picture)))
        else:
            out.add(file, line, here,
                    f"must be {SKIP!r} or a mapping of title, text, seconds, picture")
    return tuple(variants)


def _parse_step(node: _Node, file: str, where: str, out: _Collector) -> Step | None:
    title = _text(node, "title", file, where, out)
    text = _text(node, "text", file, where, out)
    seconds = _seconds(node, file, where, out)
    if not (title and text):
        return None
    picture = _text(node, "picture", file, where, out, required=False)
    step = Step(title=title, text=text, seconds=seconds, picture=picture)
    return replace(step, variants=_parse_step_variants(node, step, file, where, out))


def _parse_session(node: _Node, file: str, where: str, out: _Collector) -> GuidedSession:
    session_id = _checked_id(node, file, where, out)
    where = f"session {session_id}" if session_id else where
    steps: list[Step] = []
    raw_steps = node.get("steps")
    if raw_steps is None:
        out.add(file, node.line, f"{where}.steps", "is missing")
    else:
        items = list(
            _mapping_items(raw_steps, file, f"{where}.steps", _line_of(node, "steps"), out)
        )
        if isinstance(raw_steps, list) and not raw_steps:
            out.add(file, _line_of(node, "steps"), f"{where}.steps", "is empty")
        for index, step_node in items:
            step = _parse_step(step_node, file, f"{where}.steps[{index}]", out)
            if step is not None:
                steps.append(step)
    return GuidedSession(
        id=session_id,
        title=_text(node, "title", file, where, out),
        summary=_text(node, "summary", file, where, out),
        steps=tuple(steps),
        equipment=_texts(node, "equipment", file, where, out, required=False),
        aftercare=_texts(node, "aftercare", file, where, out, required=False),
        variants=_texts(node, "variants", file, where, out, required=False),
        unsafe_variant=_text(node, "unsafe_variant", file, where, out, required=False) or None,
    )


SMALLTALK_COMMANDS = ("help", "start")
_WORD = re.compile(r"^[a-z0-9]+$")


# The vocabulary's mappings of a topic id to phrasings, and what the phrasings are.
TOPIC_PHRASINGS = {"urgent": "emergency phrasings", "caution": "warning signs"}


def _parse_vocabulary(
    node: Any, file: str, line: int, synonyms: dict[str, str],
    phrases: dict[tuple[str, ...], str], ignored: set[str],
    by_topic: dict[str, list[tuple[str, int, str, tuple[str, ...]]]], out: _Collector,
) -> None:
    if not isinstance(node, _Node):
        out.add(file, line, "vocabulary", "must be a mapping with synonyms and ignore")
        return
    for key in node:
        if key not in ("synonyms", "phrases", "ignore", *TOPIC_PHRASINGS):
            out.add(file, _line_of(node, key), f"vocabulary.{key}",
                    "unknown key; expected synonyms, phrases, ignore, urgent or caution")
    for key, what in TOPIC_PHRASINGS.items():
        raw_phrasings = node.get(key, _Node())
        if not isinstance(raw_phrasings, _Node):
            out.add(file, _line_of(node, key), f"vocabulary.{key}",
                    f"must be a mapping of a topic id to its {what}")
            raw_phrasings = _Node()
        for topic_id in raw_phrasings:
            phrasings = _texts(raw_phrasings, str(topic_id), file, f"vocabulary.{key}", out)
            if phrasings:
                by_topic[key].append(
                    (file, _line_of(raw_phrasings, str(topic_id)), str(topic_id), phrasings)
                )
    raw = node.get("synonyms", _Node())
    if not isinstance(raw, _Node):
        out.add(file, _line_of(node, "synonyms"), "vocabulary.synonyms",
                "must be a mapping of a word to the words people use for it")
        raw = _Node()
    for meant, variants in raw.items():
        name = f"vocabulary.synonyms.{meant}"
        key_line = _line_of(raw, str(meant))
        if not isinstance(meant, str) or not _WORD.match(meant):
            out.add(file, key_line, name, "must be one lower-case word")
            continue
        if not isinstance(variants, list):
            out.add(file, key_line, name, "must be a list of words")
            continue
        variant_lines = getattr(variants, "item_lines", [])
        for index, variant in enumerate(variants):
            line = variant_lines[index] if index < len(variant_lines) else key_line
            if not isinstance(variant, str) or not _WORD.match(variant):
                out.add(file, line, name, f"{variant!r} is not one lower-case word")
            elif variant in synonyms and synonyms[variant] != meant:
                out.add(file, line, name,
                        f"{variant!r} already means {synonyms[variant]!r}")
            elif variant == meant:
                out.add(file, line, name, f"{variant!r} is listed as its own synonym")
            else:
                synonyms[variant] = meant
    _parse_phrases(node.get("phrases", _Node()), file, _line_of(node, "phrases"), phrases, out)
    ignore_lines = getattr(node.get("ignore"), "item_lines", [])
    for index, word in enumerate(_texts(node, "ignore", file, "vocabulary", out, required=False)):
        if not _WORD.match(word):
            line = ignore_lines[index] if index < len(ignore_lines) else _line_of(node, "ignore")
            out.add(file, line, f"vocabulary.ignore[{index}]",
                    f"{word!r} is not one lower-case word")
        ignored.add(word)


def _parse_phrases(
    raw: Any, file: str, line: int, phrases: dict[tuple[str, ...], str], out: _Collector
) -> None:
    if not isinstance(raw, _Node):
        out.add(file, line, "vocabulary.phrases",
                "must be a mapping of a word to the phrases that mean it")
        return
    for meant, variants in raw.items():
        name = f"vocabulary.phrases.{meant}"
        key_line = _line_of(raw, str(meant))
        if not isinstance(meant, str) or not _WORD.match(meant):
            out.add(file, key_line, name, "must be one lower-case word")
            continue
        if not isinstance(variants, list):
            out.add(file, key_line, name, "must be a list of phrases")
            continue
        variant_lines = getattr(variants, "item_lines", [])
        for index, variant in enumerate(variants):
            at = variant_lines[index] if index < len(variant_lines) else key_line
            words = tuple(variant.split()) if isinstance(variant, str) else ()
            if len(words) < 2 or not all(_WORD.match(word) for word in words):
                out.add(file, at, name,
                        f"{variant!r} is not a phrase of two or more lower-case words")
            elif words in phrases and phrases[words] != meant:
                out.add(file, at, name, f"{variant!r} already means {phrases[words]!r}")
            else:
                phrases[words] = meant


def _parse_examples(
    node: Any, file: str, line: int, out: _Collector
) -> list[tuple[str, int, str, tuple[str, ...]]]:
    if not isinstance(node, _Node):
        out.add(file, line, "examples", "must be a mapping of a topic id to its example messages")
        return []
    return [
        (file, _line_of(node, str(topic_id)), str(topic_id),
         _texts(node, str(topic_id), file, "examples", out))
        for topic_id in node
    ]


def _parse_smalltalk(node: _Node, file: str, where: str, out: _Collector) -> SmallTalk:
    talk_id = _checked_id(node, file, where, out)
    where = f"smalltalk {talk_id}" if talk_id else where
    reply = _text(node, "reply", file, where, out, required=False)
    command = _text(node, "command", file, where, out, required=False)
    if bool(reply) == bool(command):
        out.add(file, node.line, where, "needs either a reply or a command")
    if command and command not in SMALLTALK_COMMANDS:
        out.add(file, _line_of(node, "command"), f"{where}.command",
                f"unknown command {command!r}; expected one of {', '.join(SMALLTALK_COMMANDS)}")
    return SmallTalk(
        id=talk_id,
        phrasings=_texts(node, "phrasings", file, where, out),
        reply=reply,
        command=command,
    )


def _step_picture_refs(node: Any, file: str, where: str) -> list[tuple[str, int, str, str]]:
    """The pictures a step and its variants name, with their lines, to check they exist."""
    if not isinstance(node, _Node):
        return []
    changes = node.get("variants")
    named = [(node, where)] + [
        (change, f"{where}.variants.{variant_id}")
        for variant_id, change in (changes.items() if isinstance(changes, _Node) else ())
        if isinstance(change, _Node)
    ]
    return [
        (file, _line_of(item, "picture"), f"{name}.picture", item["picture"].strip())
        for item, name in named
        if isinstance(item.get("picture"), str) and item["picture"].strip()
    ]


# The fields each kind of mark may have besides its shape key (bot/diagrams.py).
_MARK_FIELDS: dict[str, frozenset[str]] = {
    "area": frozenset({"role", "legend"}),
    "stroke": frozenset({"style", "legend", "mirror"}),
    "circles": frozenset({"legend", "mirror"}),
    "tremble": frozenset({"legend", "mirror"}),
    "label": frozenset({"at", "mirror"}),
    "prop": frozenset({"at", "legend"}),
    "giver": frozenset({"legend"}),
}


def _points(value: Any, file: str, line: int, name: str, out: _Collector) -> tuple[Point, ...]:
    """A list of [x, y] points; each malformed one is a problem at its own line."""
    if not isinstance(value, list) or not value:
        out.add(file, line, name, "must be a list of [x, y] points")
        return ()
    points: list[Point] = []
    lines = getattr(value, "item_lines", [])
    for index, item in enumerate(value):
        numbers = isinstance(item, list) and len(item) == 2 and all(
            isinstance(n, int | float) and not isinstance(n, bool) for n in item
        )
        if not numbers:
            out.add(file, lines[index] if index < len(lines) else line, f"{name}[{index}]",
                    f"must be a point [x, y], not {item!r}")
            continue
        points.append((float(item[0]), float(item[1])))
    return tuple(points)


def _parse_mark(node: Any, file: str, line: int, where: str, view: str, out: _Collector
                ) -> Mark | None:
    if not isinstance(node, _Node):
        out.add(file, line, where, f"must be a mapping with one of {', '.join(SHAPES)}")
        return None
    shapes = [key for key in node if key in SHAPES]
    if len(shapes) != 1:
        out.add(file, node.line, where,
                f"needs exactly one of {', '.join(SHAPES)}, not {len(shapes)}")
        return None
    shape = str(shapes[0])
    here = f"{where}.{shape}"
    unknown = set(map(str, node)) - {shape} - _MARK_FIELDS[shape]
    if unknown:
        out.add(file, node.line, where, f"unknown fields for a {shape}: "
                f"{', '.join(sorted(unknown))}")
    value, value_line = node[shape], _line_of(node, shape)
    legend = _text(node, "legend", file, where, out, required=False)
    if len(legend) > MAX_LEGEND_CHARS:
        out.add(file, _line_of(node, "legend"), f"{where}.legend",
                f"is {len(legend)} characters; at most {MAX_LEGEND_CHARS} fit beside the key")
    mirror = node.get("mirror", False)
    if not isinstance(mirror, bool):
        out.add(file, _line_of(node, "mirror"), f"{where}.mirror", "must be true or false")
        mirror = False
    mark = Mark(shape=shape, legend=legend, mirror=mirror)
    if shape in ("stroke", "circles", "tremble"):
        points = _points(value, file, value_line, here, out)
        if shape == "stroke" and len(points) < 2:
            out.add(file, value_line, here, "a stroke needs at least two points")
        style = _text(node, "style", file, where, out, required=False) or "firm"
        if style not in STROKE_STYLES:
            out.add(file, _line_of(node, "style"), f"{where}.style",
                    f"unknown style {style!r}; expected {' or '.join(STROKE_STYLES)}")
        mark = replace(mark, points=points, role=style if shape == "stroke" else "")
    elif shape == "label":
        text = value.strip() if isinstance(value, str) else ""
        if not text:
            out.add(file, value_line, here, "must be the label's text")
        elif len(text) > MAX_LABEL_CHARS:
            out.add(file, value_line, here,
                    f"is {len(text)} characters; at most {MAX_LABEL_CHARS} fit on the drawing")
        at = _points([node.get("at")], file, _line_of(node, "at"), f"{where}.at", out)
        mark = replace(mark, text=text, points=at)
    elif shape == "area":
        role = _text(node, "role", file, where, out)
        if role and role not in AREA_ROLES:
            out.add(file, _line_of(node, "role"), f"{where}.role",
                    f"unknown role {role!r}; expected {' or '.join(AREA_ROLES)}")
        mark = replace(mark, name=str(value), role=role)
    elif shape == "prop":
        if value not in PROPS:
            out.add(file, value_line, here, f"unknown prop {value!r}; expected one of "
                    f"{', '.join(PROPS)}")
        mark = replace(mark, name=str(value), place=_text(node, "at", file, where, out))
    else:  # giver
        mark = replace(mark, name=str(value))
    if view in VIEWS:
        for message in picture_problems(view, mark):
            out.add(file, value_line, here, message)
    return mark


def _parse_picture(node: _Node, file: str, where: str, out: _Collector) -> Picture:
    picture_id = _checked_id(node, file, where, out)
    where = f"picture {picture_id}" if picture_id else where
    unknown = set(map(str, node)) - {"id", "view", "title", "marks"}
    if unknown:
        out.add(file, node.line, where, f"unknown fields {', '.join(sorted(unknown))}")
    view = _text(node, "view", file, where, out)
    if view and view not in VIEWS:
        out.add(file, _line_of(node, "view"), f"{where}.view",
                f"unknown view {view!r}; expected one of {', '.join(VIEWS)}")
    title = _text(node, "title", file, where, out)
    if len(title) > MAX_TITLE_CHARS:
        out.add(file, _line_of(node, "title"), f"{where}.title",
                f"is {len(title)} characters; at most {MAX_TITLE_CHARS} fit across the picture")
    raw = node.get("marks")
    marks: list[Mark] = []
    if not isinstance(raw, list) or not raw:
        out.add(file, _line_of(node, "marks"), f"{where}.marks", "must be a list of marks")
    else:
        lines = getattr(raw, "item_lines", [])
        for index, item in enumerate(raw):
            line = lines[index] if index < len(lines) else _line_of(node, "marks")
            mark = _parse_mark(item, file, line, f"{where}.marks[{index}]", view, out)
            if mark is not None:
                marks.append(mark)
    legends = len(legend_entries(marks))
    if legends > MAX_LEGEND_LINES:
        out.add(file, _line_of(node, "marks"), f"{where}.marks",
                f"{legends} legend lines; at most {MAX_LEGEND_LINES} fit under the picture")
    return Picture(id=picture_id, view=view, title=title, marks=tuple(marks),
                   source=f"{file}:{node.line}")


def _parse_variant(node: _Node, file: str, where: str, out: _Collector) -> Variant:
    variant_id = _checked_id(node, file, where, out)
    where = f"variant {variant_id}" if variant_id else where
    return Variant(
        id=variant_id,
        name=_text(node, "name", file, where, out),
        note=_text(node, "note", file, where, out),
        # Only a variant offered on a safety advice screen needs these two (checked later).
        button=_text(node, "button", file, where, out, required=False),
        offer=_text(node, "offer", file, where, out, required=False),
    )


def _parse_condition(
    node: _Node, file: str, where: str, out: _Collector, needs_id: bool = True
) -> SafetyCondition:
    condition_id = _checked_id(node, file, where, out) if needs_id else "not-sure"
    where = f"safety condition {condition_id}" if condition_id else where
    return SafetyCondition(
        id=condition_id,
        text=_text(node, "text", file, where, out) if needs_id else "",
        button=_text(node, "button", file, where, out) if needs_id else "",
        advice=_text(node, "advice", file, where, out),
        related=_texts(node, "related", file, where, out, required=False),
        allows=_text(node, "allows", file, where, out, required=False) or None,
    )


def _parse_safety_check(node: Any, file: str, line: int, out: _Collector) -> SafetyCheck:
    if not isinstance(node, _Node):
        out.add(file, line, "safety_check", "must be a mapping: conditions, not_sure, questions")
        return SafetyCheck()
    unknown = set(node) - {"conditions", "not_sure", "questions"}
    if unknown:
        out.add(file, line, "safety_check", f"unknown keys {', '.join(sorted(map(str, unknown)))}")
    conditions = tuple(
        _parse_condition(item, file, f"safety_check.conditions[{index}]", out)
        for index, item in _mapping_items(
            node.get("conditions", []), file, "safety_check.conditions",
            _line_of(node, "conditions"), out,
        )
    )
    not_sure = None
    if "not_sure" in node:
        raw = node["not_sure"]
        if isinstance(raw, _Node):
            not_sure = _parse_condition(raw, file, "safety_check.not_sure", out, needs_id=False)
        else:
            out.add(file, _line_of(node, "not_sure"), "safety_check.not_sure", "must be a mapping")
    elif conditions:
        out.add(file, line, "safety_check.not_sure", "is missing: not sure must get advice too")
    questions: list[SafetyQuestion] = []
    for index, item in _mapping_items(
        node.get("questions", []), file, "safety_check.questions", _line_of(node, "questions"), out
    ):
        where = f"safety_check.questions[{index}]"
        question_id = _checked_id(item, file, where, out)
        where = f"safety question {question_id}" if question_id else where
        questions.append(
            SafetyQuestion(
                id=question_id,
                text=_text(item, "text", file, where, out),
                sessions=_texts(item, "sessions", file, where, out),
                variant=_text(item, "variant", file, where, out),
            )
        )
    return SafetyCheck(conditions=conditions, not_sure=not_sure, questions=tuple(questions))


def _check_references(
    knowledge: KnowledgeBase, where: dict[str, tuple[str, int]], out: _Collector
) -> None:
    """Every id a session, step, variant or safety entry names must exist and fit together."""
    variants, topics, sessions = knowledge.variants, knowledge.topics, knowledge.sessions

    def problem(key: str, name: str, message: str, missing: str = "") -> None:
        # The most precise place known: the list item or field, else the field holding the
        # list, else its session or safety entry (keys as `_note_origins` records them).
        places = (key, re.sub(r"\[\d+\]$", "", key), ":".join(key.split(":")[:2]))
        file, line = next((where[k] for k in places if k in where), ("knowledge", 1))
        out.add(file, line, name, message, missing=missing)

    for session in sessions.values():
        key = f"session:{session.id}"
        for index, variant_id in enumerate(session.variants):
            if variant_id not in variants:
                problem(
                    f"{key}:variants[{index}]", f"session {session.id}.variants",
                    f"unknown variant {variant_id!r}", missing=variant_id,
                )
            elif not session.steps_in(variant_id):
                problem(
                    f"{key}:variants[{index}]", f"session {session.id}.variants",
                    f"{variant_id!r} skips every step",
                )
        if session.unsafe_variant and session.unsafe_variant not in session.variants:
            problem(
                f"{key}:unsafe_variant", f"session {session.id}.unsafe_variant",
                f"{session.unsafe_variant!r} is not one of the session's variants",
            )
        offered = {c.allows for c in knowledge.safety_check.conditions} | {session.unsafe_variant}
        for index, variant_id in enumerate(session.variants):
            variant = variants.get(variant_id)
            if variant_id in offered and variant and not (variant.button and variant.offer):
                problem(
                    f"{key}:variants[{index}]", f"session {session.id}.variants",
                    f"variant {variant_id!r} is offered after the safety check, so it needs "
                    "a button and an offer",
                )
        for index, step in enumerate(session.steps):
            for variant_id, _changed in step.variants:
                if variant_id not in session.variants:
                    problem(
                        f"{key}:steps[{index}]:{variant_id}",
                        f"session {session.id}.steps[{index}].variants",
                        f"{variant_id!r} is not one of the session's variants",
                    )
    check = knowledge.safety_check
    seen: set[str] = set()
    entries = [*check.conditions, *([check.not_sure] if check.not_sure else [])]
    for condition in entries:
        name, at = f"safety condition {condition.id}", f"condition:{condition.id}"
        if condition.id in seen:
            problem(f"{at}:id", f"{name}.id", "duplicate id")
        seen.add(condition.id)
        for index, ref in enumerate(condition.related):
            if ref not in topics:
                problem(f"{at}:related[{index}]", f"{name}.related",
                        f"unknown topic id {ref!r}", missing=ref)
        if condition.allows and condition.allows not in variants:
            problem(f"{at}:allows", f"{name}.allows", f"unknown variant {condition.allows!r}",
                    missing=condition.allows)
    for question in check.questions:
        name, at = f"safety question {question.id}", f"question:{question.id}"
        for index, session_id in enumerate(question.sessions):
            session = sessions.get(session_id)
            if session is None:
                problem(f"{at}:sessions[{index}]", f"{name}.sessions",
                        f"unknown session {session_id!r}", missing=session_id)
            elif question.variant not in session.variants:
                problem(
                    f"{at}:variant", f"{name}.variant",
                    f"{question.variant!r} is not one of session {session_id!r}'s variants",
                )


def _note_origins(
    origins: dict[str, tuple[str, int]], key: str, node: _Node, file: str
) -> None:
    """Where an entry, each of its fields and each item of its list fields are, by key:
    `key`, `key:field` and `key:field[index]`, for the cross-reference problems."""
    origins[key] = (file, node.line)
    for field_name, value in node.items():
        origins[f"{key}:{field_name}"] = (file, _line_of(node, str(field_name)))
        for index, line in enumerate(getattr(value, "item_lines", [])):
            origins[f"{key}:{field_name}[{index}]"] = (file, line)


_TOP_LEVEL_KEYS = (
    "topics", "sessions", "variants", "safety_check", "out_of_scope", "vocabulary", "smalltalk",
    "examples", "pictures",
)  # fmt: skip


# PyYAML's words for a syntax error (libyaml's and the pure-Python parser's), in plain words.
# `at_start`: the mistake is where the unclosed thing began (PyYAML's context mark), not
# where the parser gave up, which can be lines later.
_INDENTATION = ("the indentation does not line up: a list item or a field is indented "
                "differently from the ones above it")
_SYNTAX_HINTS: tuple[tuple[str, str, bool], ...] = (
    ("tab character", "a tab character: indent with spaces only", False),
    ("flow sequence", "a [ list ] that is never closed: a missing ] or comma", True),
    ("flow mapping", "a { mapping } that is never closed: a missing } or comma", True),
    ("quoted scalar", "a quote that is never closed: a ' or \" without its pair (inside "
     "'single quotes' write an apostrophe as '')", True),
    ("mapping values are not allowed", "a colon and a space inside a value: put the whole "
     "value in quotes, like title: \"Note: this\"", False),
    ("could not find expected ':'", "a line that is neither \"field: value\" nor a list "
     "item: a missing colon, or text that belongs on the line above", True),
    ("expected '-' indicator", _INDENTATION, False),
    ("expected <block end>", _INDENTATION, False),
    ("did not find expected key", "unexpected text: the indentation does not line up with "
     "the lines above, or a quoted value ends early and more text follows it", False),
    ("constructor for the tag", "a !!tag: knowledge files hold only text, numbers, lists "
     "and mappings", False),
    ("scanning an alias", "a value that starts with *: put the text in quotes", True),
    ("scanning an anchor", "a value that starts with &: put the text in quotes", True),
    ("cannot start any token", "a value that starts with {char}, which YAML reserves: "
     "put the text in quotes", False),
)
_DEFINED_ID = re.compile(r"^[ \t-]*id:[ \t]*[\"']?([A-Za-z0-9_-]+)", re.MULTILINE)


def _syntax_problem(error: yaml.YAMLError, text: str, label: str) -> Problem:
    """One YAML syntax error as one problem: file:line:column and what is wrong, in words
    an author can act on (not "expected <block end>")."""
    problem = str(getattr(error, "problem", None) or error)
    context = str(getattr(error, "context", None) or "")
    mark = getattr(error, "problem_mark", None)
    lines = text.splitlines()
    hint = next((h for h in _SYNTAX_HINTS if h[0] in problem or h[0] in context), None)
    if hint is None:
        words = problem + (f" ({context})" if context else "")
    else:
        words = hint[1]
        if hint[2] and getattr(error, "context_mark", None) is not None:
            mark = error.context_mark  # type: ignore[attr-defined]
    line = mark.line + 1 if mark is not None else 1
    column = mark.column + 1 if mark is not None else 0
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    char = source_line[column - 1] if 0 < column <= len(source_line) else ""
    if char == "\t":
        words = _SYNTAX_HINTS[0][1]
    words = words.replace("{char}", repr(char))  # not str.format: PyYAML's words have braces
    return Problem(label, line, "", f"YAML syntax error: {words}", column=column)


def _read_yaml(
    path: Path, label: str, out: _Collector, unread: dict[str, frozenset[str]]
) -> Any:
    """The file's data, or None with its one problem; a file that could not be read goes into
    `unread` with the ids it seems to define, for `_follow_ons`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        out.add(label, 1, "", f"cannot read file: {error}")
        unread[label] = frozenset()
        return None
    loader = _LineLoader(text)  # a SafeLoader: no arbitrary objects
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as error:
        out.problems.append(_syntax_problem(error, text, label))
        unread[label] = frozenset(_DEFINED_ID.findall(text))
        return None
    finally:
        loader.dispose()
    for key, line, first in loader.repeated:
        out.add(label, line, key, f"given twice (first at line {first}); YAML would keep "
                "only this one")
    return data


def _follow_ons(problems: list[Problem], unread: Mapping[str, frozenset[str]]) -> list[Problem]:
    """Problems that only follow from a file that could not be read, folded into its one
    problem: ids that file defines are unknown elsewhere ("unknown topic id", "required topic
    missing") until it is fixed. Other missing ids are kept, marked as perhaps following."""
    hidden = dict.fromkeys(unread, 0)
    kept: list[Problem] = []
    for problem in problems:
        owner = next((f for f, ids in unread.items() if problem.missing in ids), None)
        if not problem.missing:
            kept.append(problem)
        elif owner is not None:
            hidden[owner] += 1
        else:
            names = " or ".join(unread)
            kept.append(replace(problem, message=f"{problem.message} (unless {names}, "
                                f"which could not be read, defines it)"))
    return [
        replace(p, message=f"{p.message}; {hidden[p.file]} problem(s) elsewhere that only "
                f"follow from this are not shown")
        if hidden.get(p.file) else p
        for p in kept
    ]


def check_knowledge(
    directory: Path, require_contract: bool = True
) -> tuple[KnowledgeBase | None, list[Problem]]:
    """Read every YAML file under `directory`; return the knowledge base and every problem.

    The knowledge base is None whenever there is a problem other than a warning, so nothing
    half-valid is served.
    `require_contract` checks that every topic and session id of the contract exists; small
    test fixtures turn it off.
    """
    out = _Collector()
    directory = Path(directory)
    if not directory.is_dir():
        out.add(str(directory), 1, "", "knowledge directory does not exist")
        return None, out.problems
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))
    if not files:
        out.add(str(directory), 1, "", "no .yaml files found")
        return None, out.problems

    topics: dict[str, Topic] = {}
    sessions: dict[str, GuidedSession] = {}
    variants: dict[str, Variant] = {}
    safety_check = SafetyCheck()
    out_of_scope: list[str] = []
    synonyms: dict[str, str] = {}
    phrases: dict[tuple[str, ...], str] = {}
    ignored: set[str] = set()
    # "urgent" and "caution": (file, line, topic id, texts)
    by_topic: dict[str, list[tuple[str, int, str, tuple[str, ...]]]] = {
        key: [] for key in TOPIC_PHRASINGS
    }
    smalltalk: list[SmallTalk] = []
    pictures: dict[str, Picture] = {}
    picture_refs: list[tuple[str, int, str, str]] = []  # file, line, field, picture id
    # (file, line, topic id, phrasings) of `examples:`, joined to their topics at the end.
    examples: list[tuple[str, int, str, tuple[str, ...]]] = []
    # Where each session and the safety check came from, for cross-reference problems.
    origins: dict[str, tuple[str, int]] = {}
    related_refs: list[tuple[str, int, str, str]] = []
    said: list[_Said] = []  # every phrasing, in file order, for `_check_phrasings`
    unread: dict[str, frozenset[str]] = {}  # files that could not be read: their ids

    for path in files:
        label = str(path.relative_to(directory.parent) if directory.parent != path else path)
        data = _read_yaml(path, label, out, unread)
        if data is None:
            continue
        if not isinstance(data, _Node):
            out.add(label, 1, "", "the file must be a mapping with keys like 'topics:'")
            continue
        for key in data:
            if key not in _TOP_LEVEL_KEYS:
                out.add(
                    label, _line_of(data, key), str(key),
                    f"unknown top-level key; expected {', '.join(_TOP_LEVEL_KEYS)}",
                )
        for index, node in _mapping_items(
            data.get("topics", []), label, "topics", _line_of(data, "topics"), out
        ):
            topic = _parse_topic(node, label, f"topics[{index}]", out)
            if not topic.id:
                continue
            if topic.id in topics:
                out.add(
                    label, _line_of(node, "id"), f"topic {topic.id}.id",
                    f"duplicate id, first defined at {topics[topic.id].source}",
                )
                continue
            topics[topic.id] = topic
            said += _topic_said(node, label, topic.id)
            if topic.picture:
                picture_refs.append((label, _line_of(node, "picture"),
                                     f"topic {topic.id}.picture", topic.picture))
            related = node.get("related")
            related_lines = getattr(related, "item_lines", [])
            for ref_index, ref in enumerate(topic.related):
                line = (
                    related_lines[ref_index]
                    if ref_index < len(related_lines)
                    else _line_of(node, "related")
                )
                related_refs.append((label, line, f"topic {topic.id}.related[{ref_index}]", ref))
        for index, node in _mapping_items(
            data.get("sessions", []), label, "sessions", _line_of(data, "sessions"), out
        ):
            session = _parse_session(node, label, f"sessions[{index}]", out)
            if not session.id:
                continue
            if session.id in sessions:
                out.add(label, _line_of(node, "id"), f"session {session.id}.id", "duplicate id")
                continue
            sessions[session.id] = session
            _note_origins(origins, f"session:{session.id}", node, label)
            raw_steps = node.get("steps")
            for index, step_node in enumerate(raw_steps if isinstance(raw_steps, list) else []):
                step_variants = step_node.get("variants") if isinstance(step_node, _Node) else None
                picture_refs += _step_picture_refs(step_node, label,
                                                   f"session {session.id}.steps[{index}]")
                if isinstance(step_variants, _Node):
                    for variant_id in step_variants:
                        origins[f"session:{session.id}:steps[{index}]:{variant_id}"] = (
                            label, _line_of(step_variants, str(variant_id)),
                        )
        for index, node in _mapping_items(
            data.get("variants", []), label, "variants", _line_of(data, "variants"), out
        ):
            variant = _parse_variant(node, label, f"variants[{index}]", out)
            if not variant.id:
                continue
            if variant.id in variants:
                out.add(label, _line_of(node, "id"), f"variant {variant.id}.id", "duplicate id")
                continue
            variants[variant.id] = variant
        if "safety_check" in data:
            if "safety_check" in origins:
                out.add(
                    label, _line_of(data, "safety_check"), "safety_check",
                    f"defined twice, first at {':'.join(map(str, origins['safety_check']))}",
                )
            else:
                origins["safety_check"] = (label, _line_of(data, "safety_check"))
                safety_check = _parse_safety_check(
                    data["safety_check"], label, _line_of(data, "safety_check"), out
                )
                raw_check = data["safety_check"]
                for key, kind in (("conditions", "condition"), ("questions", "question")):
                    items = raw_check.get(key) if isinstance(raw_check, _Node) else None
                    for item in items if isinstance(items, list) else []:
                        if isinstance(item, _Node) and isinstance(item.get("id"), str):
                            _note_origins(origins, f"{kind}:{item['id']}", item, label)
                not_sure = raw_check.get("not_sure") if isinstance(raw_check, _Node) else None
                if isinstance(not_sure, _Node):
                    _note_origins(origins, "condition:not-sure", not_sure, label)
        if "out_of_scope" in data:
            out_of_scope.extend(_texts(data, "out_of_scope", label, "file", out))
            said += _said(data, "out_of_scope", label, "", "out of scope",
                          "an out-of-scope phrasing")
        if "vocabulary" in data:
            _parse_vocabulary(
                data["vocabulary"], label, _line_of(data, "vocabulary"), synonyms, phrases,
                ignored, by_topic, out,
            )
        if "examples" in data:
            examples += _parse_examples(data["examples"], label, _line_of(data, "examples"), out)
            for topic_id in data["examples"] if isinstance(data["examples"], _Node) else ():
                owner = f"topic {topic_id}"
                said += _said(data["examples"], str(topic_id), label, "examples", owner,
                              f"{_ROLES['examples']} of {owner}")
        for index, node in _mapping_items(
            data.get("pictures", []), label, "pictures", _line_of(data, "pictures"), out
        ):
            picture = _parse_picture(node, label, f"pictures[{index}]", out)
            if not picture.id:
                continue
            if picture.id in pictures:
                out.add(label, _line_of(node, "id"), f"picture {picture.id}.id",
                        f"duplicate id, first defined at {pictures[picture.id].source}")
                continue
            pictures[picture.id] = picture
        for index, node in _mapping_items(
            data.get("smalltalk", []), label, "smalltalk", _line_of(data, "smalltalk"), out
        ):
            talk = _parse_smalltalk(node, label, f"smalltalk[{index}]", out)
            smalltalk.append(talk)
            owner = f"small talk {talk.id}"
            said += _said(node, "phrasings", label, f"smalltalk {talk.id}", owner,
                          f"a phrasing of {owner}")

    for label, line, name, ref in related_refs:
        if ref not in topics:
            out.add(label, line, name, f"unknown topic id {ref!r}", missing=ref)
    for label, line, topic_id, phrasings in examples:
        if topic_id not in topics:
            out.add(label, line, f"examples.{topic_id}", f"unknown topic id {topic_id!r}",
                    missing=topic_id)
            continue
        topic = topics[topic_id]
        topics[topic_id] = replace(topic, examples=topic.examples + phrasings)
    phrasings_of: dict[str, dict[str, tuple[str, ...]]] = {key: {} for key in TOPIC_PHRASINGS}
    for key, found in by_topic.items():
        for label, line, topic_id, phrasings in found:
            if topic_id not in topics:
                out.add(label, line, f"vocabulary.{key}.{topic_id}",
                        f"unknown topic id {topic_id!r}", missing=topic_id)
                continue
            if key == "caution" and topics[topic_id].kind != "safety":
                kind = topics[topic_id].kind
                out.add(label, line, f"vocabulary.{key}.{topic_id}",
                        f"warning signs must lead to a safety topic, not a {kind} one")
                continue
            phrasings_of[key][topic_id] = phrasings_of[key].get(topic_id, ()) + phrasings

    if require_contract:
        where = str(directory)
        for topic_id in REQUIRED_TOPIC_IDS:
            if topic_id not in topics:
                out.add(where, 1, "topics", f"required topic {topic_id!r} is missing",
                        missing=topic_id)
        for session_id in REQUIRED_SESSION_IDS:
            if session_id not in sessions:
                out.add(where, 1, "sessions", f"required session {session_id!r} is missing",
                        missing=session_id)

    knowledge = KnowledgeBase(
        topics=topics,
        sessions=sessions,
        safety_check=safety_check,
        out_of_scope=tuple(out_of_scope),
        variants=variants,
        synonyms=synonyms,
        phrases=phrases,
        ignored_words=frozenset(ignored),
        urgent=phrasings_of["urgent"],
        caution=phrasings_of["caution"],
        smalltalk=tuple(smalltalk),
        pictures=pictures,
    )
    for label, line, name, ref in picture_refs:
        if ref not in pictures:
            out.add(label, line, name, f"unknown picture {ref!r}", missing=ref)
    _check_references(knowledge, origins, out)
    _check_phrasings(said, out)
    if unread:
        out.problems = _follow_ons(out.problems, unread)
    if any(not problem.warning for problem in out.problems):
        return None, out.problems
    return knowledge, out.problems


def load_knowledge(directory: Path, require_contract: bool = True) -> KnowledgeBase:
    """Load the knowledge base or raise KnowledgeError listing every problem."""
    knowledge, problems = check_knowledge(directory, require_contract=require_contract)
    if knowledge is None:
        raise KnowledgeError(problems)
    return knowledge
