"""Topics, session steps and the safety check never contradict each other on a condition.

For each condition (blood thinners, a red patch that doesn't fade, tapping frail people...)
every place that speaks about it, a topic, a session step in any variant, a safety-check
entry or a variant's note, must state the stance they all share, and no sentence about it may
say what that stance rules out. A list item is read with the heading it sits under ("Don't
massage the back today if the person has:"), so a bullet keeps its heading's meaning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bot.knowledge import KnowledgeBase

NEGATION = (
    r"\b(no|not|never|don't|do not|doesn't|isn't|can't|skip|avoid|without|leave|instead)\b"
    r"|n't\b"
)


@dataclass(frozen=True)
class Stance:
    name: str
    mention: str  # a sentence about the condition matches this
    agrees: str  # each place about it says one of these
    contradicts: str = ""  # and no sentence about it says this, unless it negates it
    place: str = ""  # only places (a topic, a step) that also match this anywhere

    def about(self, sentence: str) -> bool:
        return bool(re.search(self.mention, sentence, re.IGNORECASE))

    def agreeing(self, sentence: str) -> bool:
        return bool(re.search(self.agrees, sentence, re.IGNORECASE))

    def contradicting(self, sentence: str) -> bool:
        return bool(
            self.contradicts
            and re.search(self.contradicts, sentence, re.IGNORECASE)
            and not re.search(NEGATION, sentence, re.IGNORECASE)
        )


TAPPING = r"\b(tap|tapping|tapotement|hack|hacking|pummel\w*|percussion)\b"
STANCES = (
    Stance(
        "blood thinners: light gliding only, after asking their doctor or nurse",
        r"blood thinner|bleeding disorder|low platelets|warfarin|apixaban|anticoagulant",
        rf"doctor|nurse|light|{NEGATION}",
        r"\b(firm|firmer|deep|deeper|hard)\b",
    ),
    Stance(
        "a red patch that doesn't fade is never rubbed; tell the nurse",
        r"(doesn't|does not|didn't|don't) fade|red patch|red or sore patch|reddened",
        rf"{NEGATION}|weight off|stay off|nurse",
        r"\b(gently|circulation)\b",
    ),
    Stance(
        "a red patch that doesn't fade is reported the same day",
        r"(?=.*((doesn't|does not|didn't|don't) fade|red patch|redness))(?=.*\b(nurse|doctor)\b)",
        r"today|same day",
    ),
    Stance(
        "no tapping for frail or older people",
        r"\b(frail|older|elderly)\b", rf"{NEGATION}|gentle|light", place=TAPPING,
    ),
    Stance("no tapping in pregnancy", r"pregnan|\bbump\b", NEGATION, place=TAPPING),
    Stance(
        "kneading and friction stay light for frail people, thin skin and bruising",
        r"\b(frail|thin|papery|bruis\w*)\b",
        rf"light|lightly|gentle|gently|glide|{NEGATION}",
        r"\b(firm|firmer|deep|deeper)\b",
        place=r"\b(knead\w*|petrissage|friction)\b",
    ),
    Stance(
        "pregnancy: on her side once the bump shows, not never on the front",
        r"\b(lie|lies|lying) (on (her|their|the) (tummy|front|stomach)|face down)",
        r"once|early|side|bump",
        r"\bnever\b", place=r"pregnan|bump",
    ),
    Stance(
        "a blood clot or a swollen, painful leg: no massage, get it checked",
        r"\b(clots?|dvt)\b", rf"{NEGATION}|ask|doctor|nurse|999|111",
        r"\b(light|gentle|gently)\b",
    ),
    Stance(
        "no alcohol rubs or surgical spirit", r"alcohol rub|surgical spirit|spirit rub", NEGATION
    ),
    Stance("nothing petroleum-based and no flames with home oxygen", r"\boxygen\b", NEGATION),
    Stance(
        "fragile bones: ask first, light strokes only",
        r"osteoporosis|fragile bones|brittle bones", rf"ask|doctor|light|glide|{NEGATION}",
        r"\b(firm|deep|hard)\b",
    ),
    Stance(
        "cancer: ask the cancer team; never press on a tumour",
        r"\bcancer\b|tumour", rf"ask|cancer team|doctor|nurse|{NEGATION}", r"\b(firm|deep)\b",
    ),
    Stance(
        "a fever: no massage today",
        r"\bfever\b|high temperature", rf"{NEGATION}|GP|doctor|111|999|help|wait",
        r"\b(fine|ok|okay|safe|go ahead)\b",
    ),
    Stance(
        "broken skin and wounds are never rubbed",
        r"broken skin|\bwounds?\b|open sore", rf"{NEGATION}|around|nurse|doctor|surgeon",
    ),
    Stance(
        "essential oils: diluted, never neat, not in pregnancy without advice",
        r"essential oils?", rf"drop|dilut\w*|neat|advice|{NEGATION}",
    ),
)


def sentences(text: str) -> Iterator[str]:
    """Each sentence, a list item prefixed with the heading line it sits under."""
    for paragraph in text.split("\n\n"):
        heading = ""
        for line in paragraph.split("\n"):
            line = line.strip()
            if not line:
                continue
            if line.startswith("•") or re.match(r"^\d+\.", line):
                yield f"{heading} {line.lstrip('•').strip()}".strip()
                continue
            heading = line if line.endswith(":") else ""
            yield from (part for part in re.split(r"(?<=[.!?])\s+", line) if part)


# Places whose every sentence speaks to the condition they are about, so any of them can
# carry the stance: a safety-check entry's advice, a question's explanation, a variant's note.
WHOLE_PLACES = ("safety", "variant")


def places(knowledge: KnowledgeBase) -> Iterator[tuple[str, str]]:
    """(where, text) for everything the bot can show about what to do."""
    for topic in knowledge.topics.values():
        yield f"topic {topic.id}", topic.answer
    for session in knowledge.sessions.values():
        for variant in (None, *session.variants):
            for step in session.steps_in(variant):
                yield f"session {session.id} ({variant or 'as written'}) {step.title}", step.text
        for line in session.aftercare:
            yield f"session {session.id} aftercare", line
    check = knowledge.safety_check
    for condition in (*check.conditions, *([check.not_sure] if check.not_sure else [])):
        yield f"safety check {condition.id}", f"{condition.text}\n\n{condition.advice}"
    for question in check.questions:
        yield f"safety question {question.id}", question.text
    for variant in knowledge.variants.values():
        yield f"variant {variant.id}", f"{variant.note}\n\n{variant.offer}"


def covering(knowledge: KnowledgeBase, stance: Stance) -> dict[str, list[str]]:
    """The places that speak about the condition, with their sentences about it."""
    found: dict[str, list[str]] = {}
    for where, text in places(knowledge):
        if stance.place and not re.search(stance.place, text, re.IGNORECASE):
            continue
        about = [sentence for sentence in sentences(text) if stance.about(sentence)]
        if about:
            found[where] = about
    return found


def disagreements(knowledge: KnowledgeBase, stance: Stance) -> list[str]:
    problems: list[str] = []
    texts = dict(places(knowledge))
    for where, about in covering(knowledge, stance).items():
        pool = list(sentences(texts[where])) if where.startswith(WHOLE_PLACES) else about
        if not any(stance.agreeing(sentence) for sentence in pool):
            problems.append(f"{where} never says it: {' / '.join(about)}")
        problems += [f"{where}: {s}" for s in about if stance.contradicting(s)]
    return problems


@pytest.mark.parametrize("stance", STANCES, ids=lambda stance: stance.name)
def test_topics_sessions_and_the_safety_check_agree(
    knowledge: KnowledgeBase, stance: Stance
) -> None:
    found = covering(knowledge, stance)
    assert len(found) >= 2, (stance.name, found)  # something to compare
    problems = disagreements(knowledge, stance)
    assert not problems, "\n".join(problems)


def test_most_stances_are_shared_by_topics_and_sessions_or_the_safety_check(
    knowledge: KnowledgeBase,
) -> None:
    shared = [
        stance.name
        for stance in STANCES
        if {where.split()[0] for where in covering(knowledge, stance)} > {"topic"}
    ]
    assert len(shared) >= len(STANCES) - 2, shared


def test_the_check_catches_a_contradiction(knowledge: KnowledgeBase) -> None:
    """A place saying the opposite is caught, so the test above can fail."""
    by_name = {stance.name.split(":")[0]: stance for stance in STANCES}
    cases = (
        ("blood thinners", "On blood thinners, firm kneading is fine."),
        ("a red patch that doesn't fade is never rubbed; tell the nurse",
         "Rub a red patch gently to help the circulation."),
        ("pregnancy", "She should never lie on her front."),
        ("a fever", "With a mild fever a gentle massage is fine."),
    )  # fmt: skip
    for name, sentence in cases:
        stance = by_name[name]
        assert stance.about(sentence), sentence
        assert stance.contradicting(sentence) or not stance.agreeing(sentence), sentence
