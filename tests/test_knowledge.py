"""The loader and validator: each kind of problem on its own small fixture, and the real KB."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from bot.knowledge import (
    REQUIRED_SESSION_IDS,
    REQUIRED_TOPIC_IDS,
    KnowledgeError,
    check_knowledge,
    load_knowledge,
)

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT.parent / "shared" / "kb-contract.md"

VALID_TOPIC = """\
  - id: {id}
    kind: technique
    title: Kneading
    aliases: [petrissage]
    questions: [how do i knead]
    answer: Squeeze and roll the muscles.
    related: []
"""


def write_kb(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "knowledge"
    directory.mkdir()
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(dedent(text), encoding="utf-8")
    return directory


def problems_of(directory: Path) -> list[str]:
    knowledge, problems = check_knowledge(directory, require_contract=False)
    assert knowledge is None, "an invalid knowledge base must not load"
    return [str(problem) for problem in problems]


def warnings_of(directory: Path) -> list[str]:
    knowledge, problems = check_knowledge(directory, require_contract=False)
    assert knowledge is not None, "warnings alone must not stop the knowledge base loading"
    assert all(problem.warning for problem in problems)
    return [str(problem) for problem in problems]


def test_valid_fixture_loads(tmp_path: Path) -> None:
    directory = write_kb(tmp_path, topics="topics:\n" + VALID_TOPIC.format(id="kneading"))
    knowledge = load_knowledge(directory, require_contract=False)
    assert knowledge.topics["kneading"].aliases == ("petrissage",)
    assert knowledge.summary() == "1 topics, 0 sessions, 1 aliases, 1 questions, 0 examples"


def test_duplicate_ids_across_files_name_both_places(tmp_path: Path) -> None:
    directory = write_kb(
        tmp_path,
        a="topics:\n" + VALID_TOPIC.format(id="kneading"),
        b="topics:\n" + VALID_TOPIC.format(id="kneading"),
    )
    [problem] = problems_of(directory)
    assert problem.startswith("knowledge/b.yaml:2: topic kneading.id: duplicate id")
    assert "knowledge/a.yaml:2" in problem


def test_unknown_related_id_names_file_line_and_field(tmp_path: Path) -> None:
    text = "topics:\n" + VALID_TOPIC.format(id="kneading").replace(
        "related: []", "related:\n      - tapping"
    )
    [problem] = problems_of(write_kb(tmp_path, topics=text))
    assert problem == (
        "knowledge/topics.yaml:9: topic kneading.related[0]: unknown topic id 'tapping'"
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("    answer: Squeeze and roll the muscles.\n", ""), "kneading.answer: is missing"),
        (("answer: Squeeze and roll the muscles.", "answer: '  '"), "kneading.answer: is empty"),
        (("aliases: [petrissage]", "aliases: petrissage"), "kneading.aliases: must be a list"),
        (("title: Kneading", "title: [a, b]"), "kneading.title: must be a string, not a list"),
        (("kind: technique", "kind: recipe"), "topic kneading.kind: unknown kind 'recipe'"),
        (("id: kneading", "id: Kneading_Strokes"), "is not kebab-case"),
        (("id: kneading", "id: kneading-" + "x" * 30), "longer than 32 characters"),
        (("questions: [how do i knead]", "questions: ['']"), "questions[0]: must be a non-empty"),
    ],
)
def test_each_topic_field_problem(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    text = "topics:\n" + VALID_TOPIC.format(id="kneading").replace(*edit)
    problems = problems_of(write_kb(tmp_path, topics=text))
    assert any(expected in p for p in problems), problems
    assert all(re.match(r"knowledge/topics\.yaml:\d+: ", p) for p in problems)


def test_all_problems_are_collected_not_just_the_first(tmp_path: Path) -> None:
    text = "topics:\n" + VALID_TOPIC.format(id="kneading").replace(
        "kind: technique", "kind: recipe"
    ).replace("title: Kneading", "title: ''")
    problems = problems_of(write_kb(tmp_path, topics=text))
    assert len(problems) == 2


SESSION = """\
sessions:
  - id: quick
    title: Quick
    summary: Ten minutes.
    steps:
      - title: Warm up
        text: Stroke gently.
        seconds: {seconds}
"""


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        ("-5", "knowledge/sessions.yaml:8: session quick.steps[0].seconds: must be positive"),
        ("99999", "knowledge/sessions.yaml:8: session quick.steps[0].seconds: 99999 s is absurd"),
        ("'3 min'", "knowledge/sessions.yaml:8: session quick.steps[0].seconds: must be a whole"),
    ],
)
def test_bad_step_durations(tmp_path: Path, seconds: str, expected: str) -> None:
    problems = problems_of(write_kb(tmp_path, sessions=SESSION.format(seconds=seconds)))
    assert any(p.startswith(expected) for p in problems), problems


def test_step_without_text(tmp_path: Path) -> None:
    text = SESSION.format(seconds=60).replace("        text: Stroke gently.\n", "")
    [problem] = problems_of(write_kb(tmp_path, sessions=text))
    assert problem == "knowledge/sessions.yaml:6: session quick.steps[0].text: is missing"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    directory = write_kb(tmp_path, broken="topics:\n  - id: a\n    title: [unclosed\n")
    [problem] = problems_of(directory)
    assert problem.startswith("knowledge/broken.yaml:")
    assert "YAML syntax error" in problem


def test_arbitrary_python_objects_are_refused(tmp_path: Path) -> None:
    directory = write_kb(tmp_path, evil="topics: !!python/object/apply:os.system ['true']\n")
    [problem] = problems_of(directory)
    assert "YAML syntax error" in problem


def test_unknown_top_level_key(tmp_path: Path) -> None:
    directory = write_kb(tmp_path, t="topic:\n" + VALID_TOPIC.format(id="kneading"))
    [problem] = problems_of(directory)
    assert problem.startswith("knowledge/t.yaml:1: topic: unknown top-level key")


def test_missing_contract_ids_are_reported(tmp_path: Path) -> None:
    directory = write_kb(tmp_path, topics="topics:\n" + VALID_TOPIC.format(id="kneading"))
    knowledge, problems = check_knowledge(directory)
    assert knowledge is None
    text = "\n".join(map(str, problems))
    assert "required topic 'petrissage' is missing" in text
    assert "required session 'bedside-back-rub' is missing" in text


def test_load_raises_with_every_problem(tmp_path: Path) -> None:
    directory = write_kb(tmp_path, t="topics:\n  - id: x\n")
    with pytest.raises(KnowledgeError) as raised:
        load_knowledge(directory, require_contract=False)
    assert len(raised.value.problems) >= 5  # kind, title, aliases, questions, answer, related


# --- the real knowledge base ---------------------------------------------------------------


@pytest.fixture(scope="module")
def real_kb():  # type: ignore[no-untyped-def]
    return load_knowledge(ROOT / "knowledge")


def test_real_knowledge_base_meets_the_contract(real_kb) -> None:  # type: ignore[no-untyped-def]
    for topic_id in REQUIRED_TOPIC_IDS:
        assert topic_id in real_kb.topics
    for session_id in REQUIRED_SESSION_IDS:
        assert real_kb.sessions[session_id].steps
        assert real_kb.sessions[session_id].aftercare


def test_contract_ids_match_the_shared_contract() -> None:
    """The ids the loader requires are the ones shared/kb-contract.md lists."""
    if not CONTRACT.is_file():
        pytest.fail(f"{CONTRACT} is missing: the contract must sit beside the checkout")
    text = CONTRACT.read_text(encoding="utf-8")
    listed = set(re.findall(r"`([a-z]+(?:-[a-z]+)*)`", text))
    for topic_id in REQUIRED_TOPIC_IDS + REQUIRED_SESSION_IDS:
        assert topic_id in listed


def test_sessions_have_the_promised_lengths(real_kb) -> None:  # type: ignore[no-untyped-def]
    full = real_kb.sessions["full-back"].total_seconds / 60
    quick = real_kb.sessions["quick-back"].total_seconds / 60
    assert 15 <= full <= 30
    assert 7 <= quick <= 13


def test_answers_are_plain_text_for_a_chat_screen(real_kb) -> None:  # type: ignore[no-untyped-def]
    for topic in real_kb.topics.values():
        assert not re.search(r"<[a-z/]|\*\*|__", topic.answer), topic.id
        assert len(topic.answer.split()) <= 220, topic.id


def test_safety_facts_are_present(real_kb) -> None:  # type: ignore[no-untyped-def]
    contraindications = real_kb.topics["contraindications"].answer.lower()
    for word in ("fever", "rash", "wound", "burn", "surgery", "clot", "thinner",
                 "osteoporosis", "cancer", "pregnan", "numb", "tingl"):
        assert word in contraindications, word
    bedsores = real_kb.topics["bedsore-prevention"].answer.lower()
    assert "position" in bedsores or "turn" in bedsores
    assert "red" in bedsores
    tapping = real_kb.topics["tapotement"].answer.lower()
    assert "spine" in tapping and "kidney" in tapping
    assert real_kb.safety_check


def test_check_command_summary_and_failure(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", str(ROOT / "knowledge")],
        capture_output=True, text=True, check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"OK: \d+ topics, 3 sessions, \d+ aliases, \d+ questions", ok.stdout)

    broken = write_kb(tmp_path, t="topics:\n  - id: x\n    kind: recipe\n")
    bad = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", str(broken)],
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode == 1
    assert "knowledge/t.yaml:3: topic x.kind: unknown kind 'recipe'" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


# --- safety check, variants and step variants ---------------------------------------------------

VARIANT_KB = """\
variants:
  - id: light
    name: light strokes only
    note: Light strokes only.
    button: Doctor said yes
    offer: Once the doctor agrees, light strokes only.
safety_check:
  conditions:
    - id: thinners
      text: Blood thinners
      button: Blood thinners
      advice: Ask their doctor first.
      related: []
      allows: light
  not_sure:
    advice: Ask first.
  questions: []
sessions:
  - id: quick
    title: Quick
    summary: Ten minutes.
    variants: [light]
    steps:
      - title: Glide
        text: Glide up the back.
        seconds: 60
        variants:
          light:
            text: Glide lightly.
      - title: Knead
        text: Knead the shoulders.
        seconds: 60
        variants:
          light: skip
"""


def test_step_variants_replace_or_skip_steps(tmp_path: Path) -> None:
    knowledge = load_knowledge(write_kb(tmp_path, s=VARIANT_KB), require_contract=False)

    quick = knowledge.sessions["quick"]
    assert [step.title for step in quick.steps_in(None)] == ["Glide", "Knead"]
    assert [(step.title, step.text) for step in quick.steps_in("light")] == [
        ("Glide", "Glide lightly.")
    ]
    assert knowledge.safety_check.conditions[0].allows == "light"
    assert knowledge.safety_check.screens("quick") == 1


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("    variants: [light]\n", "    variants: [light, softer]\n"),
         "knowledge/s.yaml:22: session quick.variants: unknown variant 'softer'"),
        (("          light: skip\n", "          gentle: skip\n"),
         "session quick.steps[1].variants: 'gentle' is not one of the session's variants"),
        (("      allows: light\n", "      allows: firm\n"),
         "safety condition thinners.allows: unknown variant 'firm'"),
        (("    button: Doctor said yes\n", ""),
         "variant 'light' is offered after the safety check, so it needs a button and an offer"),
        (("            text: Glide lightly.\n", "            text: Glide lightly.\n"
                                                "            speed: 3\n"),
         "session quick.steps[0].variants.light: unknown fields speed"),
        (("  not_sure:\n    advice: Ask first.\n", ""),
         "safety_check.not_sure: is missing"),
        (("  questions: []\n", "  questions:\n    - id: frail\n      text: Frail?\n"
                               "      sessions: [quick]\n      variant: gentle\n"),
         "safety question frail.variant: 'gentle' is not one of session 'quick''s variants"),
    ],
)  # fmt: skip
def test_safety_check_and_variant_problems_are_reported(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    assert edit[0] in VARIANT_KB
    problems = problems_of(write_kb(tmp_path, s=VARIANT_KB.replace(*edit)))
    assert any(expected in p for p in problems), problems


def test_a_variant_that_skips_every_step_is_refused(tmp_path: Path) -> None:
    text = VARIANT_KB.replace("            text: Glide lightly.\n", "").replace(
        "          light:\n", "          light: skip\n"
    )
    problems = problems_of(write_kb(tmp_path, s=text))
    assert any("'light' skips every step" in p for p in problems), problems


def test_the_old_list_of_safety_questions_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    directory = write_kb(tmp_path, s="safety_check:\n  - Does the person have a fever?\n")
    [problem] = problems_of(directory)
    assert problem == (
        "knowledge/s.yaml:1: safety_check: must be a mapping: conditions, not_sure, questions"
    )


def test_real_safety_check_lists_each_condition_once_and_offers_real_variants(  # type: ignore[no-untyped-def]
    real_kb,
) -> None:
    check = real_kb.safety_check
    ids = [c.id for c in check.conditions]
    assert len(ids) == len(set(ids)) and len(ids) <= 10  # one readable screen
    assert check.not_sure is not None
    assert check.screens("full-back") == check.screens("quick-back") == 2
    assert check.screens("bedside-back-rub") == 1
    assert real_kb.sessions["bedside-back-rub"].unsafe_variant == "skin-check-only"


# --- check as `rasa data validate`: conflicts between entries, syntax errors in plain words ------

TWO_TOPICS = """\
topics:
  - id: kneading
    kind: technique
    title: Kneading
    aliases: [petrissage]
    questions: [how do i knead]
    answer: Squeeze and roll the muscles.
    related: []
  - id: tapping
    kind: technique
    title: Tapping
    aliases:
      - tapotement
      - kneading
    questions: [how do i tap]
    answer: Tap lightly with loose hands.
    related: []
"""


def test_an_alias_that_is_another_topics_title_is_reported_at_the_alias(tmp_path: Path) -> None:
    [problem] = warnings_of(write_kb(tmp_path, topics=TWO_TOPICS))
    assert problem == (
        "knowledge/topics.yaml:14: warning: topic tapping.aliases[1]: 'kneading' is also the "
        "title of topic kneading (knowledge/topics.yaml:4): keep it under the one topic that "
        "answers it"
    )


def test_the_same_phrasing_under_two_topics_across_files_is_reported(tmp_path: Path) -> None:
    topics = TWO_TOPICS.replace("      - kneading\n", "")
    examples = "examples:\n  tapping:\n    - tap tap\n    - How do I knead?\n"
    [problem] = warnings_of(write_kb(tmp_path, topics=topics, wave=examples))
    # Case and punctuation aside, the example is topic kneading's question.
    assert problem.startswith("knowledge/wave.yaml:4: warning: examples.tapping[1]: "
                              "'How do I knead?' is also a question of topic kneading "
                              "(knowledge/topics.yaml:6)")


def test_an_out_of_scope_phrasing_equal_to_a_topic_phrasing_is_reported(tmp_path: Path) -> None:
    topics = TWO_TOPICS.replace("      - kneading\n", "")
    [problem] = warnings_of(write_kb(
        tmp_path, topics=topics, zz="out_of_scope:\n  - knead bread dough\n  - petrissage\n"
    ))
    assert problem == (
        "knowledge/zz.yaml:3: warning: out_of_scope[1]: 'petrissage' is also an alias of topic "
        "kneading (knowledge/topics.yaml:5): a message can't be both answered and out of scope"
    )


def test_small_talk_that_hides_a_topic_phrasing_is_reported(tmp_path: Path) -> None:
    topics = TWO_TOPICS.replace("      - kneading\n", "")
    talk = "smalltalk:\n  - id: help\n    phrasings: [help, how do i tap]\n    command: help\n"
    [problem] = warnings_of(write_kb(tmp_path, topics=topics, talk=talk))
    assert problem.startswith("knowledge/topics.yaml:14: warning: topic tapping.questions[0]: "
                              "'how do i tap' is also a phrasing of small talk help")
    assert problem.endswith("small talk answers it first, so the topic never does")


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("topics:\n  - id: a\n    title: [unclosed\n    kind: x\n", "3:12",
         "a [ list ] that is never closed"),
        ("topics:\n  - id: a\n    title: A\n   kind: b\n", "4:4",
         "the indentation does not line up"),
        ("topics:\n  - id: a\n    title: Note: this\n", "3:16",
         "a colon and a space inside a value: put the whole value in quotes"),
        ("topics:\n  - id: a\n\ttitle: A\n", "3:1", "a tab character: indent with spaces only"),
        ("topics:\n  - id: a\n    title A\n    kind: b\n", "3:5",
         "a line that is neither \"field: value\" nor a list item"),
        ("topics:\n  - id: a\n    title: \"abc\n    kind: b\n", "3:12",
         "a quote that is never closed"),
        ("topics:\n  - id: a\n    title: @home\n", "3:12",
         "a value that starts with '@', which YAML reserves: put the text in quotes"),
    ],
)  # fmt: skip
def test_a_yaml_syntax_error_is_one_problem_in_plain_words(
    tmp_path: Path, text: str, where: str, words: str
) -> None:
    [problem] = problems_of(write_kb(tmp_path, broken=text))
    assert problem.startswith(f"knowledge/broken.yaml:{where}: YAML syntax error: {words}")
    for jargon in ("expected", "block", "scalar", "token", "while"):
        assert jargon not in problem.split("YAML syntax error:")[1], problem


def test_problems_that_only_follow_from_a_syntax_error_are_not_shown(tmp_path: Path) -> None:
    broken = TWO_TOPICS.replace("title: Tapping", "title: [Tapping")
    others = (
        "topics:\n" + VALID_TOPIC.format(id="stroking").replace("related: []",
                                                                "related: [tapping, tickling]")
    )
    examples = "examples:\n  kneading: [squeezing the shoulders]\n"
    problems = problems_of(write_kb(tmp_path, techniques=broken, other=others, wave=examples))
    assert problems == [
        "knowledge/techniques.yaml:11:12: YAML syntax error: a [ list ] that is never closed: "
        "a missing ] or comma; 2 problem(s) elsewhere that only follow from this are not shown",
        # Not defined in the broken file either: a mistake of its own, said to be perhaps not.
        "knowledge/other.yaml:8: topic stroking.related[1]: unknown topic id 'tickling' "
        "(unless knowledge/techniques.yaml, which could not be read, defines it)",
    ]


def test_required_topics_missing_because_of_a_syntax_error_are_not_listed(
    tmp_path: Path,
) -> None:
    ids = "\n".join(f"  - id: {topic_id}\n    title: [broken" for topic_id in REQUIRED_TOPIC_IDS)
    directory = write_kb(tmp_path, topics=f"topics:\n{ids}\n")
    _knowledge, problems = check_knowledge(directory)
    text = [str(problem) for problem in problems]
    assert len(text) == 1 + len(REQUIRED_SESSION_IDS), text
    assert text[0].startswith("knowledge/topics.yaml:3:12: YAML syntax error:")
    assert f"{len(REQUIRED_TOPIC_IDS)} problem(s) elsewhere" in text[0]
    assert all("(unless knowledge/topics.yaml" in line for line in text[1:])


def test_a_key_given_twice_is_reported_at_the_second(tmp_path: Path) -> None:
    text = "topics:\n" + VALID_TOPIC.format(id="kneading").replace(
        "    answer: Squeeze", "    title: Kneading again\n    answer: Squeeze"
    )
    [problem] = problems_of(write_kb(tmp_path, topics=text))
    assert problem == (
        "knowledge/topics.yaml:7: title: given twice (first at line 4); YAML would keep only "
        "this one"
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("      related: []\n", "      related:\n        - nothing\n        - missing\n"),
         "knowledge/s.yaml:15: safety condition thinners.related: unknown topic id 'missing'"),
        (("      allows: light\n", "      allows: firm\n"),
         "knowledge/s.yaml:14: safety condition thinners.allows: unknown variant 'firm'"),
        (("    variants: [light]\n", "    variants:\n      - light\n      - softer\n"),
         "knowledge/s.yaml:24: session quick.variants: unknown variant 'softer'"),
        (("          light: skip\n", "          gentle: skip\n"),
         "knowledge/s.yaml:34: session quick.steps[1].variants: 'gentle' is not one of"),
    ],
)  # fmt: skip
def test_a_fields_problem_points_at_the_fields_own_line(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    assert edit[0] in VARIANT_KB
    problems = problems_of(write_kb(tmp_path, s=VARIANT_KB.replace(*edit)))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_vocabulary_problem_points_at_the_word(tmp_path: Path) -> None:
    text = "vocabulary:\n  synonyms:\n    stomach:\n      - tummy\n      - Belly\n  ignore:\n" \
           "    - mum\n    - my Dad\n"
    problems = problems_of(write_kb(tmp_path, vocabulary=text))
    assert problems == [
        "knowledge/vocabulary.yaml:5: vocabulary.synonyms.stomach: 'Belly' is not one "
        "lower-case word",
        "knowledge/vocabulary.yaml:8: vocabulary.ignore[1]: 'my Dad' is not one lower-case word",
    ]


def test_a_phrase_problem_points_at_the_phrase(tmp_path: Path) -> None:
    text = "vocabulary:\n  phrases:\n    apoplexy:\n      - had a stroke\n      - stroke\n" \
           "      - Had A Stroke\n    fit:\n      - had a stroke\n"
    problems = problems_of(write_kb(tmp_path, vocabulary=text))
    assert problems == [
        "knowledge/vocabulary.yaml:5: vocabulary.phrases.apoplexy: 'stroke' is not a phrase of "
        "two or more lower-case words",
        "knowledge/vocabulary.yaml:6: vocabulary.phrases.apoplexy: 'Had A Stroke' is not a "
        "phrase of two or more lower-case words",
        "knowledge/vocabulary.yaml:8: vocabulary.phrases.fit: 'had a stroke' already means "
        "'apoplexy'",
    ]


def test_an_urgent_phrasing_problem_points_at_its_topic(tmp_path: Path) -> None:
    text = "vocabulary:\n  urgent:\n    when-to-stop:\n      - chest pain\n" \
           "    nope: chest pain\n"
    problems = problems_of(write_kb(tmp_path, vocabulary=text))
    assert problems == [
        "knowledge/vocabulary.yaml:5: vocabulary.urgent.nope: must be a list of strings",
        "knowledge/vocabulary.yaml:3: vocabulary.urgent.when-to-stop: unknown topic id "
        "'when-to-stop'",
    ]


def test_a_warning_sign_must_lead_to_a_safety_topic(tmp_path: Path) -> None:
    text = "vocabulary:\n  caution:\n    kneading:\n      - it hurts\n" \
           "    nope: [numb]\n"
    directory = write_kb(tmp_path, topics="topics:\n" + VALID_TOPIC.format(id="kneading"),
                         vocabulary=text)
    assert problems_of(directory) == [
        "knowledge/vocabulary.yaml:3: vocabulary.caution.kneading: warning signs must lead to "
        "a safety topic, not a technique one",
        "knowledge/vocabulary.yaml:5: vocabulary.caution.nope: unknown topic id 'nope'",
    ]


def test_check_reports_a_syntax_error_once_from_the_command_line(tmp_path: Path) -> None:
    # The real knowledge base with one slip in the file that defines the techniques, which
    # every other file refers to and the contract requires.
    directory = tmp_path / "knowledge"
    shutil.copytree(ROOT / "knowledge", directory)
    techniques = directory / "techniques.yaml"
    text = techniques.read_text(encoding="utf-8")
    techniques.write_text(text.replace("    title: Effleurage (long gliding strokes)",
                                       "    title: Effleurage: long gliding strokes", 1),
                          encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", str(directory)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 1
    [error, summary] = done.stdout.splitlines()
    assert error.startswith(
        "knowledge/techniques.yaml:6:22: YAML syntax error: a colon and a space inside a value: "
        "put the whole value in quotes, like title: \"Note: this\"; "
    )
    assert re.search(r"; \d+ problem\(s\) elsewhere that only follow from this are not shown$",
                     error)
    assert summary == "1 problem(s) in the knowledge base."


def test_check_fails_on_warnings_though_the_bot_would_load(tmp_path: Path) -> None:
    directory = tmp_path / "knowledge"
    shutil.copytree(ROOT / "knowledge", directory)
    (directory / "zz-reviewed.yaml").write_text("out_of_scope:\n  - Kneading!\n",
                                                encoding="utf-8")
    assert load_knowledge(directory).out_of_scope[-1] == "Kneading!"
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check", str(directory)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 1
    [warning, summary] = done.stdout.splitlines()
    assert warning.startswith("knowledge/zz-reviewed.yaml:2: warning: out_of_scope[0]: "
                              "'Kneading!' is also ")
    assert "of topic petrissage (knowledge/" in warning
    assert summary.endswith("with 1 warning(s) to fix.")
