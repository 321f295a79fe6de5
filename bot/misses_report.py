"""`massage-bot misses`: the misses log grouped into clusters of similar messages, for review.

Messages people send again and again in slightly different words ("how hard do i press",
"how hard should i press?") are one gap in the knowledge base, so the log is grouped into
clusters, biggest first, each with a few examples, what was offered and what people picked,
and what the current knowledge base does with it now (to see a fix take effect).

Similarity is rapidfuzz's token_sort_ratio over a message's content words (stop words and
punctuation aside). Where two messages count as the same is chosen on data: the knowledge
base's own questions and examples are messages labelled by topic, and the threshold is the
lowest at which pairs that similar are about one topic at least CLUSTER_PRECISION of the
time (`fit_similarity`), so a cluster rarely hides one gap inside another.

Three formats: text for reading, JSON for tools, and YAML in the format of the evaluation
files (`{q, expect, style}`, as ../shared/eval/questions-dev.yaml), one entry per message with
`expect` filled from what people picked, or left empty for the author to label; labelled, the
entries go into a `knowledge/examples/` file and the file itself is an evaluation set.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz, process

from bot.knowledge import KnowledgeBase, phrasing_key
from bot.matcher import Matcher
from bot.store import MissRow
from bot.wording import STOP_WORDS

# How often two messages that count as similar must be about one topic.
CLUSTER_PRECISION = 0.9
# Similarity is never looser than this, whatever a small knowledge base suggests.
LOOSEST = 60
# With fewer labelled pairs than this above a threshold (or fewer pairs of different
# topics at all), its precision says nothing; then the threshold this project's knowledge
# base gave (85, from 2,000 of its 2,729 phrasings) is used.
MIN_PAIRS = 30
DEFAULT_SIMILARITY = 85
# The fit compares every pair of phrasings; past this many it takes an even sample.
MAX_FIT_PHRASINGS = 2000
EXAMPLES_SHOWN = 3
STYLES = {"clarify": "did-you-mean", "fallback": "fallback", "answer": "not-what-i-asked"}
SAID = {"clarify": "did you mean", "fallback": "fallback", "answer": "not what I asked"}


def content_key(text: str) -> str:
    """What similarity compares: the words that carry meaning, or all words if none do."""
    words = phrasing_key(text).split()
    return " ".join(w for w in words if w not in STOP_WORDS) or " ".join(words)


def fit_similarity(knowledge: KnowledgeBase, precision: float = CLUSTER_PRECISION) -> int:
    """The lowest similarity (0..100) at which pairs of the knowledge base's questions and
    examples are about one topic at least `precision` of the time."""
    labelled = [
        (content_key(text), topic.id)
        for topic in knowledge.topics.values()
        for text in (*topic.questions, *topic.examples)
        if phrasing_key(text)
    ]
    step = max(1, -(-len(labelled) // MAX_FIT_PHRASINGS))
    labelled = labelled[::step]
    texts = [text for text, _ in labelled]
    pairs: list[tuple[float, bool]] = []
    for index, (text, topic) in enumerate(labelled):
        later = texts[index + 1 :]
        for _match, score, offset in process.extract(
            text, later, scorer=fuzz.token_sort_ratio, score_cutoff=LOOSEST, limit=None
        ):
            pairs.append((score, labelled[index + 1 + offset][1] == topic))
    if sum(not same for _score, same in pairs) < MIN_PAIRS:
        return DEFAULT_SIMILARITY
    for threshold in range(LOOSEST, 101):
        above = [same for score, same in pairs if score >= threshold]
        if len(above) < MIN_PAIRS:
            break
        if sum(above) >= precision * len(above):
            return threshold
    return DEFAULT_SIMILARITY


@dataclass
class Cluster:
    """Similar messages from the log: one gap in the knowledge base."""

    rows: list[MissRow] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.rows)

    def messages(self) -> list[tuple[str, list[MissRow]]]:
        """Each distinct message (as first written) with its rows, the most frequent first."""
        by_key: dict[str, list[MissRow]] = {}
        for row in self.rows:
            by_key.setdefault(phrasing_key(row.text), []).append(row)
        ordered = sorted(by_key.values(), key=len, reverse=True)
        return [(rows[0].text, rows) for rows in ordered]

    def decisions(self) -> Counter[str]:
        return Counter(row.decision for row in self.rows)

    def offered(self) -> list[tuple[str, int, float]]:
        """(topic, times offered, best score), most offered first. For an answer marked
        not what was asked, the answer counts as offered too."""
        times: Counter[str] = Counter()
        best: dict[str, float] = {}
        for row in self.rows:
            for topic, score in row.candidates:
                times[topic] += 1
                best[topic] = max(best.get(topic, 0.0), score)
        return [(topic, n, best[topic]) for topic, n in times.most_common()]

    def picked(self) -> Counter[str]:
        return Counter(row.picked for row in self.rows if row.picked)

    def none_of_these(self) -> int:
        return sum(row.none_of_these for row in self.rows)

    def days(self) -> tuple[str, str]:
        days = sorted(row.day for row in self.rows)
        return days[0], days[-1]


def cluster(rows: Iterable[MissRow], similarity: int) -> list[Cluster]:
    """Group the log's rows: each distinct message, most frequent first, joins the cluster
    whose first message it is most like (at least `similarity`), or starts one. Biggest
    first; ties by the latest day."""
    by_key: dict[str, list[MissRow]] = {}
    for row in rows:
        by_key.setdefault(content_key(row.text), []).append(row)
    leaders: list[str] = []
    clusters: list[Cluster] = []
    for key, members in sorted(by_key.items(), key=lambda item: -len(item[1])):
        found = process.extractOne(key, leaders, scorer=fuzz.token_sort_ratio,
                                   score_cutoff=similarity) if leaders else None
        if found is None:
            leaders.append(key)
            clusters.append(Cluster(list(members)))
        else:
            clusters[found[2]].rows.extend(members)
    return sorted(clusters, key=lambda c: (c.count, c.days()[1]), reverse=True)


@dataclass(frozen=True)
class Report:
    clusters: list[Cluster]
    knowledge: KnowledgeBase
    matcher: Matcher
    since: str  # the first day asked for, "" for the whole log

    @property
    def messages(self) -> int:
        return sum(c.count for c in self.clusters)

    def now(self, cluster: Cluster) -> tuple[str, list[str]]:
        """What the knowledge base does now with the cluster's most frequent message."""
        match = self.matcher.match(cluster.messages()[0][0])
        if match.decision == "answer" and match.topic:
            return "answer", [match.topic]
        return match.decision, [c.topic for c in match.candidates]

    def title(self, topic: str) -> str:
        known = self.knowledge.topics.get(topic)
        return known.title if known else f"{topic} (no longer in the knowledge base)"

    def header(self) -> str:
        if not self.clusters:
            since = f" since {self.since}" if self.since else ""
            return f"No misses logged{since}."
        first = min(c.days()[0] for c in self.clusters)
        last = max(c.days()[1] for c in self.clusters)
        ends = Counter(row.front_end for c in self.clusters for row in c.rows)
        where = ", ".join(f"{name} {n}" for name, n in sorted(ends.items()))
        return (f"{self.messages} message(s) in {len(self.clusters)} group(s), {first} to "
                f"{last} ({where}), biggest first.")


def format_text(report: Report) -> str:
    lines = [report.header()]
    for number, group in enumerate(report.clusters, 1):
        first, last = group.days()
        days = first if first == last else f"{first} to {last}"
        kinds = ", ".join(f"{SAID[d]} {n}" for d, n in group.decisions().most_common())
        lines += ["", f"{number}. {group.count} message(s), {days}: {kinds}"]
        for text, rows in group.messages()[:EXAMPLES_SHOWN]:
            lines.append(f"   \"{text}\"" + (f" ({len(rows)} times)" if len(rows) > 1 else ""))
        more = len(group.messages()) - EXAMPLES_SHOWN
        if more > 0:
            lines.append(f"   …and {more} more")
        offered = ", ".join(f"{topic} {n} (best score {score:.0f})"
                            for topic, n, score in group.offered())
        lines.append(f"   offered: {offered or 'nothing (fallback)'}")
        picks = [f"{topic} {n}" for topic, n in group.picked().most_common()]
        if group.none_of_these():
            picks.append(f"none of these {group.none_of_these()}")
        lines.append(f"   picked:  {', '.join(picks) or 'nothing'}")
        decision, topics = report.now(group)
        lines.append(f"   now:     {_now_words(decision, topics)}")
    return "\n".join(lines)


def _now_words(decision: str, topics: Sequence[str]) -> str:
    if decision == "answer":
        return f"answers {topics[0]}"
    if decision == "clarify":
        return f"did you mean {', '.join(topics)}"
    return decision


def as_dict(report: Report) -> dict[str, Any]:
    clusters = []
    for group in report.clusters:
        first, last = group.days()
        decision, topics = report.now(group)
        clusters.append({
            "count": group.count,
            "first_day": first,
            "last_day": last,
            "examples": [{"text": text, "count": len(rows)} for text, rows in group.messages()],
            "decisions": {STYLES[d]: n for d, n in group.decisions().most_common()},
            "offered": [{"topic": topic, "times": n, "best_score": round(score, 1)}
                        for topic, n, score in group.offered()],
            "picked": dict(group.picked().most_common()),
            "none_of_these": group.none_of_these(),
            "now": {"decision": decision, "topics": topics},
        })
    return {"since": report.since or None, "messages": report.messages, "clusters": clusters}


def format_json(report: Report) -> str:
    return json.dumps(as_dict(report), ensure_ascii=False, indent=2)


YAML_HEADER = """\
# From `massage-bot misses`: {summary}
# One entry per message, in the format of ../shared/eval/questions-dev.yaml. To review:
#   1. Label each entry: `expect` lists the topic ids that answer it, or [] when the bot
#      should not answer it at all. Entries people picked an answer for are filled in:
#      check them. Delete the entries you can't decide.
#   2. Put each labelled message under its topic in a knowledge/examples/*.yaml file
#      (`examples: {{topic-id: [message, ...]}}`), or under `out_of_scope:` for [].
#   3. massage-bot check, then massage-bot eval THIS-FILE and massage-bot eval --cross-validate.
"""


def format_yaml(report: Report) -> str:
    """Evaluation entries, grouped by cluster under a comment, ready to be labelled."""
    out = [YAML_HEADER.format(summary=report.header())]
    for number, group in enumerate(report.clusters, 1):
        decision, topics = report.now(group)
        picks = ", ".join(f"{topic} {n}" for topic, n in group.picked().most_common())
        offered = ", ".join(topic for topic, _n, _score in group.offered())
        out.append(f"# {number}. {group.count} message(s); offered: {offered or 'nothing'}; "
                   f"picked: {picks or 'nothing'}; now: {_now_words(decision, topics)}")
        for text, rows in group.messages():
            picked = sorted({row.picked for row in rows if row.picked})
            style = STYLES[Counter(row.decision for row in rows).most_common(1)[0][0]]
            # JSON strings are YAML double-quoted scalars: any text comes out valid.
            out.append(f"- q: {json.dumps(text, ensure_ascii=False)}")
            if picked:
                out.append(f"  expect: {json.dumps(picked)}  # picked by people: check it")
            else:
                out.append("  expect:  # fill in: topic ids, or [] for out of scope")
            out.append(f"  style: {style}")
        out.append("")
    return "\n".join(out)


FORMATS = {"text": format_text, "json": format_json, "yaml": format_yaml}
