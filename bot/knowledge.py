"""Load and validate the knowledge base: topics and guided sessions in `knowledge/*.yaml`.

A knowledge file is a YAML mapping with any of these top-level keys:

- `topics`: a list of topics (fields fixed by `shared/kb-contract.md`, plus an optional
  `checklist` of items that can be ticked off, used by the `equipment` topic);
- `sessions`: a list of guided sessions, each with `id`, `title`, `summary`, optional
  `equipment` (checklist items), optional `aftercare` (lines for the closing summary) and
  `steps` (`title`, `text`, optional `seconds`);
- `safety_check`: yes/no screening questions asked before a guided session starts;
- `out_of_scope`: phrasings the matcher must never answer directly ("car oil");
- `vocabulary`: what the knowledge base means by words, for the matcher: `synonyms` (a word
  and the other words people use for it: `stomach: [tummy, belly]`) and `ignore` (words that
  say who, not what: "mum", "resident");
- `examples`: messages people sent, by the topic that answers them (`tapotement: [the karate
  chop thing]`): more example questions for the matcher, kept apart from the content so the
  loop of reviewing what people asked does not touch the topics' files;
- `smalltalk`: chit-chat that is not a question (`id`, `phrasings`, and a `reply`, or a
  `command` whose screen answers it, such as `help`).

Every problem is collected, not just the first, and names its file, line and field, so one
`massage-bot check` run shows everything that needs fixing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

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


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    seconds: int | None = None


@dataclass(frozen=True)
class GuidedSession:
    id: str
    title: str
    summary: str
    steps: tuple[Step, ...]
    equipment: tuple[str, ...] = ()
    aftercare: tuple[str, ...] = ()  # lines shown in the summary once steps were done

    @property
    def total_seconds(self) -> int:
        return sum(step.seconds or 0 for step in self.steps)


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
    safety_check: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    synonyms: Mapping[str, str] = field(default_factory=dict)  # word people use -> word meant
    ignored_words: frozenset[str] = frozenset()
    smalltalk: tuple[SmallTalk, ...] = ()

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

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        field = f"{self.field}: " if self.field else ""
        return f"{where}: {field}{self.message}"


class KnowledgeError(Exception):
    """The knowledge base is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        super().__init__(f"invalid knowledge base ({len(problems)} problems):\n{lines}")


class _Node(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers the line of itself and of each key (1-based)."""

    line: int
    key_lines: dict[str, int]


class _Seq(list):  # type: ignore[type-arg]
    line: int
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader (no arbitrary objects) that records line numbers for error messages."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _Node:
        mapping = _Node(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {
            str(key.value): key.start_mark.line + 1 for key, _value in node.value
        }
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

    def add(self, file: str, line: int, name: str, message: str) -> None:
        self.problems.append(Problem(file, line, name, message))


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
        source=f"{file}:{node.line}",
    )


def _parse_step(node: _Node, file: str, where: str, out: _Collector) -> Step | None:
    title = _text(node, "title", file, where, out)
    text = _text(node, "text", file, where, out)
    seconds = node.get("seconds")
    if seconds is not None:
        line = _line_of(node, "seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            out.add(file, line, f"{where}.seconds", "must be a whole number of seconds")
            seconds = None
        elif seconds <= 0:
            out.add(file, line, f"{where}.seconds", f"must be positive, not {seconds}")
            seconds = None
        elif seconds > MAX_STEP_SECONDS:
            out.add(
                file, line, f"{where}.seconds",
                f"{seconds} s is absurd for one step (at most {MAX_STEP_SECONDS})",
            )
            seconds = None
    if not (title and text):
        return None
    return Step(title=title, text=text, seconds=seconds)


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
    )


_TOP_LEVEL_KEYS = (
    "topics", "sessions", "safety_check", "out_of_scope", "vocabulary", "smalltalk", "examples",
)  # fmt: skip
SMALLTALK_COMMANDS = ("help", "start")
_WORD = re.compile(r"^[a-z0-9]+$")


def _parse_vocabulary(
    node: Any, file: str, line: int, synonyms: dict[str, str], ignored: set[str], out: _Collector
) -> None:
    if not isinstance(node, _Node):
        out.add(file, line, "vocabulary", "must be a mapping with synonyms and ignore")
        return
    for key in node:
        if key not in ("synonyms", "ignore"):
            out.add(file, _line_of(node, key), f"vocabulary.{key}",
                    "unknown key; expected synonyms or ignore")
    raw = node.get("synonyms", {})
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
        for variant in variants:
            if not isinstance(variant, str) or not _WORD.match(variant):
                out.add(file, key_line, name, f"{variant!r} is not one lower-case word")
            elif variant in synonyms and synonyms[variant] != meant:
                out.add(file, key_line, name,
                        f"{variant!r} already means {synonyms[variant]!r}")
            elif variant == meant:
                out.add(file, key_line, name, f"{variant!r} is listed as its own synonym")
            else:
                synonyms[variant] = meant
    for index, word in enumerate(_texts(node, "ignore", file, "vocabulary", out, required=False)):
        if not _WORD.match(word):
            out.add(file, _line_of(node, "ignore"), f"vocabulary.ignore[{index}]",
                    f"{word!r} is not one lower-case word")
        ignored.add(word)


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


def _read_yaml(path: Path, label: str, out: _Collector) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        out.add(label, 1, "", f"cannot read file: {error}")
        return None
    try:
        return yaml.load(text, Loader=_LineLoader)  # _LineLoader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(error, "problem", None) or str(error)
        out.add(label, line, "", f"YAML syntax error: {problem}")
        return None


def check_knowledge(
    directory: Path, require_contract: bool = True
) -> tuple[KnowledgeBase | None, list[Problem]]:
    """Read every YAML file under `directory`; return the knowledge base and every problem.

    The knowledge base is None whenever there is a problem, so nothing half-valid is served.
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
    safety_check: list[str] = []
    out_of_scope: list[str] = []
    synonyms: dict[str, str] = {}
    ignored: set[str] = set()
    smalltalk: list[SmallTalk] = []
    # (file, line, topic id, phrasings) of `examples:`, joined to their topics at the end.
    examples: list[tuple[str, int, str, tuple[str, ...]]] = []
    related_refs: list[tuple[str, int, str, str]] = []

    for path in files:
        label = str(path.relative_to(directory.parent) if directory.parent != path else path)
        data = _read_yaml(path, label, out)
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
        for key, target in (("safety_check", safety_check), ("out_of_scope", out_of_scope)):
            if key in data:
                target.extend(_texts(data, key, label, "file", out))
        if "vocabulary" in data:
            _parse_vocabulary(
                data["vocabulary"], label, _line_of(data, "vocabulary"), synonyms, ignored, out
            )
        if "examples" in data:
            examples += _parse_examples(data["examples"], label, _line_of(data, "examples"), out)
        for index, node in _mapping_items(
            data.get("smalltalk", []), label, "smalltalk", _line_of(data, "smalltalk"), out
        ):
            smalltalk.append(_parse_smalltalk(node, label, f"smalltalk[{index}]", out))

    for label, line, name, ref in related_refs:
        if ref not in topics:
            out.add(label, line, name, f"unknown topic id {ref!r}")
    for label, line, topic_id, phrasings in examples:
        if topic_id not in topics:
            out.add(label, line, f"examples.{topic_id}", f"unknown topic id {topic_id!r}")
            continue
        topic = topics[topic_id]
        topics[topic_id] = replace(topic, examples=topic.examples + phrasings)

    if require_contract:
        where = str(directory)
        for topic_id in REQUIRED_TOPIC_IDS:
            if topic_id not in topics:
                out.add(where, 1, "topics", f"required topic {topic_id!r} is missing")
        for session_id in REQUIRED_SESSION_IDS:
            if session_id not in sessions:
                out.add(where, 1, "sessions", f"required session {session_id!r} is missing")

    if out.problems:
        return None, out.problems
    return (
        KnowledgeBase(
            topics=topics,
            sessions=sessions,
            safety_check=tuple(safety_check),
            out_of_scope=tuple(out_of_scope),
            synonyms=synonyms,
            ignored_words=frozenset(ignored),
            smalltalk=tuple(smalltalk),
        ),
        [],
    )


def load_knowledge(directory: Path, require_contract: bool = True) -> KnowledgeBase:
    """Load the knowledge base or raise KnowledgeError listing every problem."""
    knowledge, problems = check_knowledge(directory, require_contract=require_contract)
    if knowledge is None:
        raise KnowledgeError(problems)
    return knowledge
