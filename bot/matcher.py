"""Match a chat message to a knowledge-base topic: answer, clarify, fall back, or small talk.

People type the way they chat: typos ("petrisage"), other names ("kneading"), one word
("talc"), descriptions ("the tapping one with fists") and long messages with a story before
the question. The answers are health-adjacent, so a confident wrong answer is worse than
asking back.

How a message is scored (every index is built once, in the constructor):

1. Words: markup stripped, folded, the knowledge base's `phrases` read as the one word each
   means ("had a stroke": the illness), stop words and its `ignore` words dropped, its
   `synonyms` applied, lightly stemmed (`bot/wording.py`). A word the knowledge base never
   uses is corrected against its titles, aliases, questions and examples (edit distance). A
   word only people's examples use, rarely, that is a typo of a word the author uses
   ("sholders") counts as both words, in the examples and in messages.
2. Weight: each word weighs its rarity across topics (IDF), times `story` when it is in the
   story around the question rather than in the question sentence itself. People's examples
   are read the same way: the story in one lends its topic less than its question does.
3. Topic score = how much of the message the topic's vocabulary explains (titles and aliases
   count fully, questions, examples and answer text less), blended with how closely the
   message matches the topic's single nearest phrasing. A message that tells a story and asks
   a question can also be scored on its question alone, each topic keeping its better score
   (`question_view`; the last fit turned it off: the condition before a bare "is it ok?"
   matters more than the question sentence's own words).
4. Decision: a logistic model of "the best topic is right" over a few features of the
   ranking (its lead over the nearest out-of-scope phrasing, its share of the nearest
   phrasings across topics, how much of the message is unknown, ...). It answers when that
   probability is high enough, or a lower bar when no other topic is near; it asks back
   ("did you mean") with the close runners-up when unsure, on a tie at the top, on a short
   message holding a word it cannot place, and on a safety question (pain, a condition, a
   medicine) led by a comfort topic, then with the nearest safety topic among the choices.
   A warning sign the knowledge base lists (`caution`: "hurts", "numb") offers its safety
   topic beside a comfort topic's answer, without stopping the answer.
   A message that says exactly one topic's phrasing is that topic's; one nearer to an
   out-of-scope phrasing, or with only a lone weak guess, gets the fallback. Chit-chat
   ("thanks!") is small talk, never a topic.

Every weight and threshold is in `Params`, fitted by cross-validation on the knowledge base's
own phrasings and on labelled questions, and the decision's features are chosen on blind
sets held out in turn (`python -m bot.calibration`, `make fit`): none is set by hand. The
constants below are work caps and what a tie is.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import cache, lru_cache
from importlib import resources
from operator import mul as _mul
from typing import Any, Literal, NamedTuple

from rapidfuzz import process
from rapidfuzz.distance import OSA

from bot.knowledge import KnowledgeBase, Topic
from bot.wording import (
    CHAT_SPELLINGS,
    NUMBER_TOKEN,
    NUMBER_WORDS,
    STOP_WORDS,
    Phrases,
    base_forms,
    raw_words,
    sentences,
    stem,
    story_and_question,
)

Decision = Literal["answer", "clarify", "fallback", "smalltalk"]
TextWords = Callable[[str], tuple[str, ...]]

MAX_CORRECTIONS = 24
# Longer "words" are keyboard mashing or pasted codes: not worth a fuzzy look-up.
MAX_WORD_LENGTH = 30
# A did-you-mean offers at most this many topics. The right one was among them in 93% of
# the did-you-means on the blind sets (each asked without its own set) with three, 95% with
# four and 95.5% with five; in 10-fold cross-validation, 91% with four and 92% with five. The
# floor under the best score (`clarify_spread`) keeps out the implausible ones.
MAX_CANDIDATES = 5
# Scoring finds the best this many topics exactly; a fourth or fifth choice is as pruning leaves it
# (keeping four sure made each question slower, for no better choice on the blind sets).
SURE_TOPICS = 3
# An example's word that no authored text uses, used at most this often, may be a typo (of
# 0, 2, 5, 10 and any, 2 scored best in 10-fold cross-validation, if by little).
EXAMPLE_TYPO_USES = 2
# A message of at most this many topic words that also holds a word no topic uses ("massage
# oil for my beard") is short enough that the unknown word is likely what it is about.
SHORT_KNOWN_TERMS = 3
# An out-of-scope phrasing counts as said when its words come with at most this many other
# words between them ("knead some bread dough", "massage my legs").
PHRASE_SLACK = 1
# A half-typed word in search expands to at most this many knowledge-base words.
MAX_COMPLETIONS = 12
# A term reaches its full evidence for a topic when this many of the topic's phrasings use it.
CENTRAL_USES = 3
# Inline search (as one types) lists topics scoring at least this.
SEARCH_MIN = 5.0
# Scores (0..100) closer than this are a tie: the ranking cannot tell the topics apart.
TIE = 1.0
# How many topics from the cheap coverage pass get the per-phrasing comparison.
RERANK_POOL = 12
# A term used by more entries than this only adds to the PRUNE_KEEP best entries found so
# far and to its own PRUNE_KEEP strongest entries (only knowledge bases of thousands of
# topics have such terms).
PRUNE_POSTINGS = 500
PRUNE_KEEP = 256
# Past this many content words, a message's length no longer says how vague it is.
LONG_MESSAGE_TERMS = 12
# The phrasings nearest to a message, across topics, that vote on how crowded its best
# topic's neighbourhood is.
VOTERS = 5
# At most this many of a message's words are scored, the most telling ones, and of those at
# most PHRASING_TERMS are compared phrasing by phrasing.
MAX_SCORED_TERMS = 24
PHRASING_TERMS = 16
# A word more of an entry's phrasings use than this, up to MAX_COMMON_WORDS of a message's,
# is compared combination by combination (see Matcher._nearest_phrasings): the work, not
# the result, depends on both.
COMMON_PHRASINGS = 24
MAX_COMMON_WORDS = 4

# What the decision model can weigh; `Params.features` says which it does, in the order of
# `Params.coefficients` (chosen by `bot/calibration.py` on held-out sets).
FEATURES = (
    "score",  # the best topic's score, 0..1
    "margin",  # its lead over the next topic
    "out_of_scope_margin",  # its lead over the nearest out-of-scope phrasing
    "unknown_share",  # how much of the message's weight is in words no topic uses
    "strong",  # 1 when a title, alias or question supports it, not only answer text
    "short_unknown",  # 1 for a short message holding a word no topic uses (or not the best)
    "phrasing",  # how closely its single best phrasing matches the message, 0..1
    "explained",  # how much of the message's known weight the topic uses at all
    "vote",  # its share of the phrasings nearest to the message, across topics
    "length",  # how many content words the message has, up to 12, over 12: a short one is vaguer
    "closeness",  # the next topic's score over the best one's: 1 is a tie
    "vote_margin",  # the best topic's share of the nearest phrasings minus the next one's
)


FEATURE_INDEX = {name: index for index, name in enumerate(FEATURES)}


@dataclass(frozen=True)
class Params:
    """Every weight and threshold of the matcher; `bot/matcher_params.json` holds the fitted
    values (see `bot/calibration.py`), these defaults are only a starting point."""

    # How much a word counts as evidence for a topic, by where the topic uses it.
    alias_weight: float = 1.0  # titles and aliases
    question_weight: float = 0.8
    answer_weight: float = 0.3
    # A term's evidence grows from `central_base` of its field weight, when one phrasing of
    # the topic uses it, to all of it when CENTRAL_USES or more phrasings do.
    central_base: float = 0.6
    specificity: float = 0.0  # how much a term favours the topic that uses it most
    length_norm: float = 0.0  # how much a topic's evidence shrinks with its vocabulary's size
    corrected: float = 0.85  # a corrected word is a guess
    unknown: float = 0.6  # how much words the knowledge base never uses dilute a score
    saturation: float = 3.0  # past this many rare words' worth, more words no longer dilute
    coverage_share: float = 0.5  # score = share * coverage + (1 - share) * best phrasing
    story: float = 0.5  # weight of a word in the story around the question
    question_view: float = 0.0  # weight of the question alone, as a second view; 0: off
    safety_boost: float = 0.0  # lift of safety topics, per unit of safety share
    # Decision.
    features: tuple[str, ...] = ("margin", "out_of_scope_margin", "unknown_share")
    coefficients: tuple[float, ...] = (12.0, 6.0, -3.0)
    bias: float = -1.0
    answer_probability: float = 0.5  # P(best topic is right) needed to answer
    clarify_min: float = 25.0  # a topic scoring less is never offered
    clarify_spread: float = 20.0  # runners-up offered are within this of the best
    lone_probability: float = 0.2  # a topic with no other near it is answered from this
    safety_share: float = 0.35  # a message this much in safety words is a safety question

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Params:
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def confidence(self, features: Sequence[float]) -> float:
        """The decision model's P(the best topic is the right answer), from all FEATURES."""
        if not features:
            return 0.0
        x = self.bias + sum(
            weight * features[FEATURE_INDEX[name]]
            for name, weight in zip(self.features, self.coefficients, strict=True)
        )
        return 0.0 if x < -60.0 else 1.0 / (1.0 + math.exp(-x))


@cache
def fitted_params() -> Params:
    """The parameters fitted for this project's knowledge base, shipped with the package."""
    text = resources.files("bot").joinpath("matcher_params.json").read_text(encoding="utf-8")
    return Params.from_dict(json.loads(text)["params"])


@dataclass(frozen=True)
class Candidate:
    topic: str
    score: float  # 0..100
    phrasing: str = ""  # the topic's title, alias or question the message matched best
    words: tuple[str, ...] = ()  # the message's words that counted for the topic


@dataclass(frozen=True)
class Match:
    decision: Decision
    topic: str | None  # the answered topic id; None unless decision == "answer"
    # Best first, an answer's topic always first; up to MAX_CANDIDATES (none on fallback).
    candidates: tuple[Candidate, ...]
    smalltalk: str | None = None  # the small-talk id when decision == "smalltalk"
    confidence: float = 0.0  # the decision model's P(best topic is right)
    # A safety topic to offer beside a comfort topic's answer: the message says a warning
    # sign ("it hurts", "numb") that topic is about.
    caution: str | None = None


class _Term(NamedTuple):  # dozens a question: cheaper to make than a frozen dataclass
    term: str
    word: str  # as typed (first occurrence), to explain a match
    weight: float  # IDF of the term, times the story weight if only in the story
    factor: float  # 1.0 if typed as in the knowledge base, less if corrected
    known: bool
    corrected: bool = False  # a guess at a typo: maybe a real word the knowledge base lacks


@dataclass(frozen=True)
class _Message:
    terms: list[_Term]  # each term once
    sequence: tuple[tuple[int, str], ...]  # (word position, term) in order, repeats kept
    words: tuple[str, ...]  # every word, canonical, stop words kept (for small talk)
    question: list[_Term]  # the terms of its question sentences, when it also tells a story
    # (position, term) of the sequence read from two words run together ("bed sores" as
    # "bedsores"): not words of the message as a phrasing would be read
    joined: frozenset[tuple[int, str]] = frozenset()

    def said(self) -> tuple[str, ...]:
        """Its terms as a set, read as the knowledge base's phrasings are (no joined words)."""
        return _term_set(term for at, term in self.sequence if (at, term) not in self.joined)


class _Scored(NamedTuple):  # a dozen a question: a tuple is cheaper to make than a dataclass
    index: int
    score: float
    strong: bool  # supported by a title, alias or example question, not only answer text
    phrasing: int  # position of the best phrasing, -1 if none shares a word
    similarity: float  # how closely that phrasing matches the message, 0..1
    vote: float  # its share of the phrasings nearest to the message, across topics


@dataclass(frozen=True)
class Assessment:
    """What the matcher found in a message, before deciding what to do with it."""

    message: _Message
    smalltalk: str | None = None
    vetoed: bool = False  # says an out-of-scope phrasing
    topics: tuple[_Scored, ...] = ()  # best first
    out_of_scope: float = 0.0  # score of the nearest out-of-scope phrasing
    features: tuple[float, ...] = ()  # the decision model's inputs, in FEATURES order
    safety_share: float = 0.0  # how much of the message is in safety words
    exact: int = -1  # the entry one of whose phrasings the message says exactly, if only one
    urgent: int = -1  # the entry answering an emergency the message says
    caution: int = -1  # the safety entry about a warning sign the message says


class _Vocabulary:
    """The words a knowledge base uses: each word's term, how often it is used, which are
    words of phrasings (what a typo is corrected to), and the correction of a typo."""

    def __init__(self, ignored: Iterable[str], typo_of: Mapping[str, str] | None = None) -> None:
        # Typos in people's examples and the words they stand for (see _example_typos).
        self.typo_of = typo_of or {}
        # Surface word -> its term, or "" for a stop word: correcting "wich" to "which" must
        # make it vanish, not match a topic word one letter away. Filled while the texts are
        # read, it also saves stemming the same word over and over.
        self.surface: dict[str, str] = dict.fromkeys(ignored, "")
        self.ignored = frozenset(self.surface)
        # How often the knowledge base uses each word: between equally close corrections
        # the commoner word is the likelier one ("paitents": patients, not parents).
        self.uses: dict[str, int] = {}
        # Words of titles, aliases, example questions and out-of-scope phrasings: the ones a
        # typo is corrected to. A word only an answer uses is a poor guess ("pasta" is not
        # the "paste" talc makes with oil, "certain" not the "curtain" round a bed).
        self.phrase_words: set[str] = set()
        # Correction candidates by first letter and length (a typo keeps both, nearly);
        # made by `ready` once every text is read.
        self.by_start: dict[tuple[str, int], list[str]] = {}

    def terms(self, words: Iterable[str], phrase: bool) -> list[str]:
        """The content terms of a text's (canonical) words, recording each word;
        `phrase` when the text is a title, alias or question, not answer text."""
        terms = []
        for word in words:
            self.uses[word] = self.uses.get(word, 0) + 1
            if phrase:
                self.phrase_words.add(word)
            term = self.surface.get(word)
            if term is None:
                term = self.surface[word] = self.term_of(word)
            if term:
                terms.append(term)
                meant = self.typo_of.get(word)
                if meant is not None:
                    meant_term = self.surface.get(meant)
                    if meant_term is None:  # not read yet
                        meant_term = self.term_of(meant)
                    if meant_term:  # not a stop word or an ignored one ("resident")
                        terms.append(meant_term)
        return terms

    def term_of(self, word: str) -> str:
        """A new word's term: its stem, or "" when that is a stop word or one the knowledge
        base ignores; a form of one is one too ("tells", "says"; "ladies", "dads")."""
        term = stem(word)
        return "" if term in self.ignored else term

    def ready(self) -> None:
        """Index the correction candidates, once every text is read."""
        self.by_start = {}
        for word, term in self.surface.items():
            if not term or word in self.phrase_words:
                self.by_start.setdefault((word[0], len(word)), []).append(word)

    def correct(self, word: str) -> str | None:
        """The knowledge-base word `word` is most likely a typo of, or None.

        A typo rarely hits the first letter, while a different word a letter or two away
        often differs there ("dough" is not "rough", "enough" is not "dough"), so only words
        with the same first letter are considered (and a swapped first pair, "ebnefits").
        Two edits are accepted only in long words or where letters were left out ("strait",
        "eflurage"). A four-letter word is corrected only to a stop word ("wich", "meen") or by
        swapping two letters ("sdie"): too many real words are one letter from a
        knowledge-base word ("play", "plan").
        """
        length = len(word)
        if length < 4:
            return None  # too short to tell a typo from another word ("car", "bar")
        swapped = word[1] + word[0] + word[2:]
        if swapped in self.phrase_words or self.surface.get(swapped) == "":
            return swapped
        limit = 1 if length <= 5 else 2
        pool: list[str] = []
        for size in range(length - limit, length + limit + 1):
            pool.extend(self.by_start.get((word[0], size), ()))
        found = process.extract(word, pool, scorer=OSA.distance, score_cutoff=limit, limit=8)
        best: tuple[int, int, str] | None = None
        for candidate, distance, _index in found:
            if distance > 1 and length < 8 and len(candidate) <= length:
                continue
            if length == 4 and self.surface[candidate] and sorted(candidate) != sorted(word):
                continue  # "play" is not a typo of "plan"; "sdie" is of "side"
            # Ties go to the word the knowledge base uses most, then alphabetically so the
            # choice does not depend on the order of the knowledge files.
            rank = (int(distance), -self.uses.get(candidate, 0), candidate)
            if best is None or rank < best:
                best = rank
        return None if best is None else best[2]


class _PhraseIndex:
    """Phrasings (term sets) a message says when their words come close together.

    Closeness matters: "face massage" is out of scope, "lie face down for the massage" is
    not, and "a clot in his leg, can I still massage his back" is not "leg massage". A
    phrasing's words must all fall within its length plus PHRASE_SLACK words.
    """

    def __init__(self, phrases: Iterable[frozenset[str]]) -> None:
        phrases = list(phrases)
        self.terms = frozenset().union(*phrases)
        # Each phrasing filed under its rarest term: a message can only say the phrasings
        # filed under terms it holds.
        uses: dict[str, int] = {}
        for phrase in phrases:
            for term in phrase:
                uses[term] = uses.get(term, 0) + 1
        self.by_term: dict[str, list[frozenset[str]]] = {}
        for phrase in phrases:
            self.by_term.setdefault(min(sorted(phrase), key=uses.__getitem__), []).append(phrase)

    def said(self, sequence: Sequence[tuple[int, str]]) -> frozenset[str] | None:
        """The first phrasing the message's (position, term) sequence says, or None."""
        hits = [(at, term) for at, term in sequence if term in self.terms]
        said = frozenset(term for _at, term in hits)
        for phrase in itertools.chain.from_iterable(self.by_term.get(t, ()) for t in said):
            if not phrase <= said:
                continue
            found = [(at, term) for at, term in hits if term in phrase]
            if _close_together(found, len(phrase), len(phrase) - 1 + PHRASE_SLACK):
                return phrase
        return None


class Matcher:
    """Answer, clarify or fall back for a chat message; see the module docstring."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        params: Params | None = None,
        words_of: TextWords | None = None,
    ) -> None:
        self.params = p = params or fitted_params()
        self._words_of = words_of or text_words
        # Entry i is topic ids[i]; the last entry, id None, is the out-of-scope pseudo-topic.
        self._ids: list[str | None] = [*knowledge.topics, None]
        self._safety_entries = frozenset(
            i for i, topic in enumerate(knowledge.topics.values()) if topic.kind == "safety"
        )
        texts: list[list[tuple[float, str, bool]]] = [
            _weighted_texts(topic, p) for topic in knowledge.topics.values()
        ]
        texts.append([(p.question_weight, phrase, True) for phrase in knowledge.out_of_scope])
        # How a typed word is spelt for look-ups: chat spellings, numbers and the knowledge
        # base's synonyms, in one table.
        self._spelling: dict[str, str] = {
            word: NUMBER_TOKEN for word in NUMBER_WORDS
        }
        for typed, meant in CHAT_SPELLINGS.items():
            self._spelling[typed] = knowledge.synonyms.get(meant, meant)
        for typed, meant in knowledge.synonyms.items():
            self._spelling.setdefault(typed, meant)
        ignored = STOP_WORDS | knowledge.ignored_words
        self._phrases = Phrases.of(knowledge.phrases, knowledge.ignored_words)
        # Each text's words are read twice (for the typos, then for the index): once is enough.
        words_of = cache(self._text_words)
        typo_of = self._example_typos(knowledge, texts, ignored, words_of)
        # A typo of a stop word ("whic", "jsut") is one too, in the examples as in messages:
        # as a word of its own it would point at whichever topic's example has it.
        ignored |= {typo for typo, meant in typo_of.items() if stem(meant) in ignored}
        vocabulary = self._vocabulary = _Vocabulary(ignored, typo_of)
        self._surface = vocabulary.surface
        examples = frozenset(e for topic in knowledge.topics.values() for e in topic.examples)
        entry_fields = [
            [field for weight, text, phrase in entry
             for field in self._fields(weight, text, phrase, text in examples, words_of)]
            for entry in texts
        ]

        # evidence[i][term]: how strongly the term points at entry i. The strongest field
        # that uses it sets the scale; a term used across many of the entry's phrasings is
        # central to it ("oil" for oil-and-lotion), one used once is incidental (the "oil" in
        # an effleurage alias).
        evidence: list[dict[str, float]] = []
        document_frequency: dict[str, float] = {}
        bests: list[dict[str, float]] = []
        entry_uses: list[dict[str, int]] = []
        most_uses: dict[str, int] = {}  # the most phrasings of any one topic using a term
        for entry in entry_fields:
            best: dict[str, float] = {}
            uses: dict[str, int] = {}
            for weight, _text, phrase, terms, _said in entry:
                for term in set(terms):
                    best[term] = max(best.get(term, 0.0), weight)
                    if phrase:
                        uses[term] = uses.get(term, 0) + 1
            bests.append(best)
            entry_uses.append(uses)
            for term, count in uses.items():
                most_uses[term] = max(most_uses.get(term, 0), count)
            # A word only in an entry's answer text makes it a fraction of a document: answers
            # mention "hands" everywhere, which says little about which topic is meant.
            for term, weight in best.items():
                document_frequency[term] = document_frequency.get(term, 0.0) + weight
        for best, uses in zip(bests, entry_uses, strict=True):
            # A term many phrasings of one topic use and few of another ("how often" in
            # duration, once in bedsores) points at the first more, to the degree
            # `specificity` says.
            evidence.append(
                {
                    term: _evidence(weight, uses.get(term, 0), p.central_base)
                    * ((uses.get(term, 0) + 1) / (most_uses.get(term, 0) + 1)) ** p.specificity
                    for term, weight in best.items()
                }
            )
        entries = len(evidence)
        self._idf = {
            term: math.log(1.0 + entries / count) for term, count in document_frequency.items()
        }
        # A word no topic uses counts as rarer than any word a topic does use.
        self._unknown_idf = math.log(1.0 + entries / 0.5)
        # A topic with a large vocabulary explains some of any long message ("drive", "gym",
        # "weeks"): as BM25 does for long documents, its evidence is divided by how much
        # larger than average its vocabulary is, to the degree `length_norm` says.
        sizes = [sum(weights.values()) for weights in evidence[:-1]]
        mean_size = sum(sizes) / len(sizes) if sizes else 1.0
        norms = [1.0 - p.length_norm + p.length_norm * size / mean_size for size in sizes]
        norms.append(1.0)  # the out-of-scope entry counts by its nearest phrasing instead
        self._postings: dict[str, dict[int, float]] = {}
        for index, weights in enumerate(evidence):
            for term, weight in weights.items():
                self._postings.setdefault(term, {})[index] = weight / norms[index]
        # How much of each term's evidence points at safety topics: a message mostly in such
        # words ("numb", "warfarin", "red patch") is a safety question.
        self._safety: dict[str, float] = {}
        foreign = entries - 1
        for term, postings in self._postings.items():
            total = sum(w for i, w in postings.items() if i != foreign)
            safe = sum(w for i, w in postings.items() if i in self._safety_entries)
            if total and safe:
                self._safety[term] = safe / total
        # Out-of-scope phrasings that veto a message saying them, when one of their words is
        # one no topic uses by name ("car oil", "bread dough", "chiropractor"). Made only of
        # topic words ("why does my back hurt", "what time is it"), a phrasing would veto
        # in-scope questions that say the same words: it counts by nearness instead.
        strong_evidence = p.central_base * p.question_weight
        topic_words = {
            term
            for weights in evidence[:-1]
            for term, weight in weights.items()
            if weight >= strong_evidence
        }
        out_of_scope_sets = {
            frozenset(terms) for _weight, _text, _phrase, terms, _said in entry_fields[-1] if terms
        }
        self._out_of_scope_exact = {_term_set(terms) for terms in out_of_scope_sets}
        self._out_of_scope = _PhraseIndex(
            phrase for phrase in out_of_scope_sets if not phrase <= topic_words
        )
        self._champions = {
            term: heapq.nlargest(PRUNE_KEEP, postings, key=postings.__getitem__)
            for term, postings in self._postings.items()
            if len(postings) > PRUNE_POSTINGS
        }
        # Words only out-of-scope phrasings use ("car", "hair").
        self._foreign_only = frozenset(
            term for term, postings in self._postings.items() if postings.keys() == {foreign}
        )
        # Each entry's phrasings (titles, aliases, questions, examples) as term sets; only
        # what scoring needs is kept of them: the text (to explain a match), a scale (a
        # phrasing's similarity to a message is overlap / sqrt(its weight * the message's)),
        # and which phrasings use each term, so reranking looks only at those.
        self._phrasing_texts: list[list[str]] = []
        self._phrasing_scales: list[list[float]] = []
        self._phrasings_with: list[dict[str, tuple[int, ...]]] = []
        self._common_with: list[dict[str, tuple[frozenset[int], int]]] = []
        self._ranked_positions: list[tuple[int, ...]] = []
        self._ranked_scales: list[tuple[float, ...]] = []
        # Per entry and term, the largest scale of a phrasing using the term: a bound on how
        # close any of the entry's phrasings can come to a message.
        self._max_scales: list[dict[str, float]] = []
        # A message that says exactly what one topic's title, alias, question or example says
        # is what the author filed under that topic; said by two topics, it is ambiguous.
        said_by: dict[tuple[str, ...], set[int]] = {}
        for index, entry in enumerate(entry_fields):
            texts, scales = [], []
            with_term: dict[str, list[int]] = {}
            best_scale: dict[str, float] = {}
            for _weight, text, phrase, _terms, said in entry:
                if said and index != foreign:
                    said_by.setdefault(_term_set(said), set()).add(index)
                if not (phrase and said):
                    continue
                unique = frozenset(said)
                scale = 1.0 / math.sqrt(sum(self._idf[t] for t in unique))
                for term in unique:
                    with_term.setdefault(term, []).append(len(texts))
                    best_scale[term] = max(best_scale.get(term, 0.0), scale)
                texts.append(text)
                scales.append(scale)
            self._phrasing_texts.append(texts)
            self._phrasing_scales.append(scales)
            self._phrasings_with.append({t: tuple(p) for t, p in with_term.items()})
            # The entry's phrasings by scale, largest first; and for each word many of them
            # use, those phrasings as a set of positions and as bits by that rank (see
            # _nearest_phrasings).
            ranked = sorted(range(len(scales)), key=lambda at: (-scales[at], at))
            rank_of = {at: rank for rank, at in enumerate(ranked)}
            self._ranked_positions.append(tuple(ranked))
            self._ranked_scales.append(tuple(scales[at] for at in ranked))
            self._common_with.append({
                term: (frozenset(used), sum(1 << rank_of[at] for at in used))
                for term, used in with_term.items()
                if len(used) > COMMON_PHRASINGS
            })
            self._max_scales.append(best_scale)
        self._said_by_one = {
            terms: next(iter(entries)) for terms, entries in said_by.items() if len(entries) == 1
        }
        # The entries a term supports strongly: named in a title, alias or question.
        strong: dict[str, set[int]] = {term: set() for term in self._postings}
        for index, weights in enumerate(evidence):
            for term, weight in weights.items():
                if weight >= strong_evidence:
                    strong[term].add(index)
        self._strong_entries = {term: tuple(found) for term, found in strong.items() if found}

        vocabulary.ready()
        # Sorted knowledge-base words, for completing a half-typed last word in search.
        self._sorted_words = sorted(word for word, term in self._surface.items() if term)

        # Small talk: each phrasing's words with its entry, and every small-talk word.
        self._smalltalk: dict[tuple[str, ...], str] = {}
        for talk in knowledge.smalltalk:
            for text in talk.phrasings:
                said = tuple(self._canonical(w) for w in raw_words(text))
                self._smalltalk.setdefault(said, talk.id)
        self._smalltalk_words = frozenset(w for said in self._smalltalk for w in said)
        self._smalltalk_longest = max(map(len, self._smalltalk), default=0)
        self._who_words = knowledge.ignored_words  # "cheers mate" is still thanks
        self._smalltalk_by_start: dict[str, list[str]] = {}
        for word in self._smalltalk_words:
            self._smalltalk_by_start.setdefault(word[0], []).append(word)

        # Emergencies ("tight chest", "passed out") and warning signs ("it hurts"), read as
        # a message's words are, each with the entry about it.
        self._urgent_entry = self._phrase_entries(knowledge.urgent)
        self._urgent = _PhraseIndex(self._urgent_entry)
        self._caution_entry = self._phrase_entries(knowledge.caution)
        self._caution = _PhraseIndex(self._caution_entry)

    def _phrase_entries(
        self, phrasings_of: Mapping[str, Sequence[str]]
    ) -> dict[frozenset[str], int]:
        """Each phrasing's terms, with the entry of the topic it is filed under."""
        entries: dict[frozenset[str], int] = {}
        for topic_id, phrasings in phrasings_of.items():
            entry = self._ids.index(topic_id)
            for text in phrasings:
                terms = frozenset(term for _at, term in self._analyse(text).sequence)
                if terms:
                    entries.setdefault(terms, entry)
        return entries

    def _fields(
        self, weight: float, text: str, phrase: bool, example: bool, words_of: TextWords
    ) -> list[tuple[float, str, bool, list[str], list[str]]]:
        """A text's fields for the index: (weight, text, phrase, terms, said), where `terms`
        are what the text lends its topic as evidence and `said` the terms of the whole
        phrasing ([] for answer text). An example is a person's message and is read as one:
        when it tells a story around its question, the story's words point at the topic at
        `story` times the weight, as a message's story does, while the whole example is
        still the phrasing messages are compared with."""
        parts = story_and_question(text) if example else None
        if parts is None:
            terms = self._vocabulary.terms(words_of(text), phrase)
            return [(weight, text, phrase, terms, terms if phrase else [])]
        # Both parts' words are an example's, for typo correction as before.
        asked, told = (
            self._vocabulary.terms(map(self._canonical, self._phrases.join(words)), True)
            for words in parts
        )
        return [(weight, text, True, asked, asked + told),
                (weight * self.params.story, text, False, told, [])]

    def _canonical(self, word: str) -> str:
        word = self._spelling.get(word, word)
        return NUMBER_TOKEN if word.isdigit() else word

    def _text_words(self, text: str) -> tuple[str, ...]:
        return tuple(map(self._canonical, self._phrases.join(list(self._words_of(text)))))

    def _example_typos(
        self, knowledge: KnowledgeBase, texts: list[list[tuple[float, str, bool]]],
        ignored: Iterable[str], words_of: TextWords,
    ) -> dict[str, str]:
        """Typos in people's examples ("sholders", "shuold") and the words they stand for.

        Filed as words of their own, they would point at the one topic whose example has
        them, and a message with the same typo would not be corrected to the word it
        means. A word that only examples use, at most EXAMPLE_TYPO_USES times, and that
        is a typo of a word the author uses (as a message's word would be corrected),
        counts as both: it may also be a real word the author never needed ("statin").
        """
        examples = {text for topic in knowledge.topics.values() for text in topic.examples}
        authored = _Vocabulary(ignored)
        for entry in texts:
            for _weight, text, phrase in entry:
                if text not in examples:
                    authored.terms(words_of(text), phrase)
        authored.ready()
        known_terms = set(authored.surface.values())
        uses: dict[str, int] = {}
        for text in examples:
            for word in words_of(text):
                if word not in authored.surface:
                    uses[word] = uses.get(word, 0) + 1
        typos = {}
        for word, count in uses.items():
            if count > EXAMPLE_TYPO_USES or len(word) > MAX_WORD_LENGTH:
                continue
            if stem(word) in known_terms:
                continue  # another form of a word the author uses ("kneads")
            meant = authored.correct(word)
            if meant is not None:
                typos[word] = meant
        return typos

    # -- the message -------------------------------------------------------------------

    def _analyse(self, text: str) -> _Message:
        """The message's content terms, corrected and weighted, in order and without repeats."""
        terms: dict[str, _Term] = {}
        sequence: list[tuple[int, str]] = []
        joins: set[tuple[int, str]] = set()
        all_words: list[str] = []
        story = self.params.story

        def add(at: int, term: str, word: str, scale: float, factor: float,
                known: bool = True, corrected: bool = False) -> None:
            sequence.append((at, term))
            old = terms.get(term)
            weight = (self._idf[term] if known else self._unknown_idf) * scale
            if old is None or old.weight * old.factor < weight * factor:
                typed = old is not None and not old.corrected
                terms[term] = _Term(term, old.word if old else word, weight, factor, known,
                                    corrected and not typed)
            if mixed and scale == 1.0 and term not in asked:
                asked[term] = _Term(term, word, weight, factor, known, corrected)

        corrections = 0
        position = -1
        spelling, surface = self._spelling, self._surface
        found = sentences(text)
        # A message that mixes a story and a question also gets its question weighed alone.
        mixed = any(s.question for s in found) and not all(s.question for s in found)
        asked: dict[str, _Term] = {}
        for sentence in found:
            scale = 1.0 if sentence.question else story
            previous = ""
            for raw in self._phrases.join(sentence.words):
                position += 1
                word = spelling.get(raw, raw)
                if word.isdigit():
                    word = NUMBER_TOKEN
                all_words.append(word)
                term = surface.get(word)
                if term == "":  # a stop word
                    previous = ""
                    continue
                if previous:
                    # "bed sores" where the knowledge base says "bedsores"
                    joined = surface.get(previous + word)
                    if joined:
                        add(position, joined, previous + word, scale, 1.0)
                        joins.add((position, joined))
                previous = word
                if term is None:
                    term = self._known_term(word)
                if term is not None:
                    if term:  # "" is a stop word only the knowledge base spells this way
                        add(position, term, raw, scale, 1.0)
                        meant = self._vocabulary.typo_of.get(word)
                        if meant is not None and surface.get(meant):
                            add(position, surface[meant], raw, scale, self.params.corrected,
                                corrected=True)
                    continue
                if corrections < MAX_CORRECTIONS and len(word) <= MAX_WORD_LENGTH:
                    corrections += 1
                    fixed = self._vocabulary.correct(word)
                    if fixed is not None:
                        if self._surface[fixed]:  # a typo of a stop word ("wich") just vanishes
                            add(position, self._surface[fixed], raw, scale,
                                self.params.corrected, corrected=True)
                        continue
                    parts = self._split(word)
                    if parts:
                        for part in parts:
                            add(position, part, raw, scale, self.params.corrected,
                                corrected=True)
                        continue
                add(position, stem(word), raw, scale, 1.0, known=False)
        return _Message(
            list(terms.values()), tuple(sequence), tuple(all_words), list(asked.values()),
            frozenset(joins),
        )

    def _known_term(self, word: str) -> str | None:
        """The term of a word the knowledge base never spells this way, if one of its forms
        is known: "" for a stop word or an ignored one, None if nothing is."""
        stemmed = stem(word)
        if stemmed in self._vocabulary.ignored:
            return ""
        if stemmed in self._idf:
            return stemmed
        for base in base_forms(word):
            term = self._surface.get(base)
            if term is None:
                term = stem(base)
            if term in self._idf:
                return term
        return None

    def _out_of_scope_phrase(self, message: _Message) -> bool:
        """Whether the message says one of the out-of-scope phrasings (see _PhraseIndex)."""
        if message.said() in self._out_of_scope_exact:
            return True  # the whole message is one of them, even "what time is it"
        return self._out_of_scope.said(message.sequence) is not None

    def _split(self, word: str) -> tuple[str, str] | None:
        """Two knowledge-base terms run together ("backrub"), or None."""
        for cut in range(3, len(word) - 2):
            left, right = stem(word[:cut]), stem(word[cut:])
            if left in self._idf and right in self._idf:
                return left, right
        return None

    def _smalltalk_of(self, message: _Message) -> str | None:
        """The small-talk entry a message is: small-talk phrasings one after another ("ok
        thanks bye"), with at most words that say who or stop words between them ("cheers
        mate, thats great"). Small-talk words that make no phrasing ("what good does it
        do") are a question."""
        if not self._smalltalk or not message.words:
            return None
        words = []
        for word in message.words:
            if word not in self._smalltalk_words and self._surface.get(word) != "":
                if len(word) < 4 or self._surface.get(word):
                    # Too short to guess, or a word a topic uses: "sore back" is not "sure".
                    return None
                found = process.extractOne(
                    word, self._smalltalk_by_start.get(word[0], ()), scorer=OSA.distance,
                    score_cutoff=1,
                )
                if found is None:
                    return None
                word = found[0]
            words.append(word)
        # said[i]: the phrasings (entry, words) that read the first i words, None if none do.
        said: list[list[tuple[str, int]] | None] = [[], *([None] * len(words))]
        for start, word in enumerate(words):
            so_far = said[start]
            if so_far is None:
                continue
            # Words that say who ("cheers mate") go anywhere, stop words only after a
            # phrasing ("ta, bye for now"): "where do i even start" is no "start".
            skip = word in self._who_words or (so_far and self._surface.get(word) == "")
            if skip and said[start + 1] is None:
                said[start + 1] = so_far
            for end in range(start + 1, min(len(words), start + self._smalltalk_longest) + 1):
                talk = self._smalltalk.get(tuple(words[start:end]))
                if talk is not None and (said[end] is None or not said[end]):
                    said[end] = [*so_far, (talk, end - start)]
        if not said[-1]:
            return None
        # The entry most of the message says; on a tie the last ("ok thanks bye": goodbye).
        words_of: dict[str, int] = {}
        for talk, length in said[-1]:
            words_of[talk] = words_of.get(talk, 0) + length
        most = max(words_of.values())
        return next(talk for talk, _length in reversed(said[-1]) if words_of[talk] == most)

    # -- scoring -----------------------------------------------------------------------

    def _total(self, terms: list[_Term]) -> float:
        """What a topic's evidence is divided by: the message's weight, with unknown words
        counting part and long messages capped (most of a ramble is context)."""
        known = sum(t.weight for t in terms if t.known)
        unknown = sum(t.weight for t in terms if not t.known)
        return min(known + self.params.unknown * unknown,
                   self.params.saturation * self._unknown_idf)

    def _score(
        self, terms: list[_Term], pool: int, include: int = -1, keep: int = SURE_TOPICS
    ) -> list[_Scored]:
        """The `pool` entries sharing most with the message, plus the out-of-scope entry and
        the entry `include` (one whose phrasing the message says exactly), best first.

        Only the best `keep` topics, the safety topics and those holding a vote are sure to
        be listed: an entry that can reach neither is skipped.
        """
        known = [t for t in terms if t.known]
        if not known:
            return []
        total = self._total(terms)
        # A long message is scored on its most telling words only, which bounds the work.
        if len(known) > MAX_SCORED_TERMS:
            known = heapq.nlargest(MAX_SCORED_TERMS, known, key=lambda t: t.weight * t.factor)
        # Rarest terms first. A term used by thousands of entries ("massage" in a large
        # knowledge base) then adds only to the best entries found so far and to its own
        # champions (the entries it points at most strongly), instead of touching every
        # entry. An entry that only such words reach would score low anyway.
        known.sort(key=lambda t: len(self._postings[t.term]))
        coverage: dict[int, float] = {}
        query: dict[str, float] = {}
        for t in known:
            mass = t.weight * t.factor
            query[t.term] = mass
            postings = self._postings[t.term]
            champions = self._champions.get(t.term)
            if champions is None:
                for index, evidence in postings.items():
                    coverage[index] = coverage.get(index, 0.0) + mass * evidence
                continue
            if len(coverage) > PRUNE_KEEP:
                kept = heapq.nlargest(PRUNE_KEEP, coverage, key=coverage.__getitem__)
                coverage = {index: coverage[index] for index in kept}
            for index in coverage:  # updates values only, so iterating is safe
                evidence = postings.get(index)
                if evidence is not None:
                    coverage[index] += mass * evidence
            for index in champions:
                if index not in coverage:
                    coverage[index] = mass * postings[index]
        # sorted()[:pool] is what nlargest is defined as, ties included, and is faster here.
        chosen = sorted(coverage, key=coverage.__getitem__, reverse=True)[:pool]
        if include >= 0 and include not in chosen and include in coverage:
            chosen.append(include)
        # The out-of-scope entry is always weighed: the decision compares it with the best.
        out_of_scope = len(self._ids) - 1
        if out_of_scope not in chosen:
            coverage[out_of_scope] = sum(
                mass * self._postings[term].get(out_of_scope, 0.0) for term, mass in query.items()
            )
            if coverage[out_of_scope]:
                chosen.append(out_of_scope)
        # Safety topics are lifted by the share of the message in safety words.
        lift = 1.0
        if self.params.safety_boost and self._safety_entries:
            lift += self.params.safety_boost * self._safety_share(query)
        share_of_coverage = self.params.coverage_share
        asked = frozenset(query)
        strong_entries = frozenset().union(
            *(self._strong_entries.get(term, ()) for term in asked)
        )
        query_scale = 1.0 / math.sqrt(total)
        # Phrasings are compared on the message's most telling words: the rest barely move a
        # similarity, and every word costs a pass over the phrasings that use it.
        telling = heapq.nlargest(PHRASING_TERMS, query.items(), key=lambda item: item[1])
        # (entry, score, best phrasing's position, its similarity)
        found: list[tuple[int, float, int, float]] = []
        best_scores: list[float] = []  # the `keep` best topic scores so far, lowest first
        voters: list[tuple[float, int]] = []  # the VOTERS nearest phrasings so far, nearest first
        for index in chosen:
            share = coverage[index] / total
            if (
                len(best_scores) >= keep
                and len(voters) >= VOTERS
                and index != out_of_scope
                and index != include
                and index not in self._safety_entries
            ):
                # Can it still reach the best `keep` or hold a vote? Its best phrasing says
                # at most all the message's words it uses, each at its shortest phrasing.
                reach = sum(
                    mass * self._max_scales[index].get(term, 0.0) for term, mass in telling
                )
                bound = share_of_coverage * share + (1.0 - share_of_coverage) * reach * query_scale
                if bound < best_scores[0] and reach < voters[-1][0]:
                    continue
            phrasing = 0.0
            best_position = -1
            best_overlap = 0.0
            touched, overlaps, similarities = self._nearest_phrasings(
                index, telling,
                math.inf if index == out_of_scope
                else -math.inf if len(voters) < VOTERS
                else voters[-1][0],
                index == out_of_scope,
            )
            if touched:
                best_overlap = max(overlaps)
                nearest_similarity = max(similarities)
                phrasing = nearest_similarity * query_scale
                # Of equally near phrasings, the first filed (a title before an example).
                best_position = touched[similarities.index(nearest_similarity)]
                if similarities.count(nearest_similarity) > 1:
                    best_position = min(
                        at for at, sim in zip(touched, similarities, strict=True)
                        if sim == nearest_similarity
                    )
                if index != out_of_scope and (
                    len(voters) < VOTERS or nearest_similarity > voters[-1][0]
                ):
                    # Of the phrasings closest to the message across topics, each topic's
                    # share is its vote (see _votes).
                    voters = sorted(
                        voters + [(sim, index) for sim in heapq.nlargest(VOTERS, similarities)],
                        reverse=True,
                    )[:VOTERS]
            if index == out_of_scope:
                # The out-of-scope phrasings are unrelated to each other ("car oil", "massage
                # my feet", "treat a burn at home"): together they "cover" any long message
                # about oil, feet and home. Only the nearest single phrasing counts.
                share = min(share, self.params.question_weight * best_overlap / total)
            score = share_of_coverage * share + (1.0 - share_of_coverage) * phrasing
            if index in self._safety_entries:
                score *= lift
            found.append((index, score, best_position, phrasing))
            if index != out_of_scope:
                best_scores = sorted([*best_scores, score])[-keep:]
        votes = _votes(voters)
        scored = [
            # Not capped: a long message can hold more evidence than its capped weight, and
            # the ranking between such topics still counts.
            _Scored(index, 100.0 * score, index in strong_entries, position, min(1.0, phrasing),
                    votes.get(index, 0.0))
            for index, score, position, phrasing in found
        ]
        scored.sort(key=lambda s: s.score, reverse=True)
        return scored

    def _nearest_phrasings(
        self, index: int, telling: list[tuple[str, float]], vote_floor: float, overlap: bool
    ) -> tuple[list[int], list[float], list[float]]:
        """Entry `index`'s phrasings that can matter to the message (`telling`: its most
        telling terms with their mass, heaviest first): their positions, how much of the
        message each says, and its similarity to the message (overlap times scale).

        A phrasing matters if it can be the entry's nearest, one of its VOTERS nearest that
        beats `vote_floor` (math.inf: none can), or, with `overlap`, the one saying most of
        the message. Every phrasing sharing a rarer word with the message is counted. Those
        sharing only words many of the entry's phrasings use ("massage", "back") differ only
        in which of those words they say and in scale, so each combination of the words is
        looked at once, its phrasings largest-scaled first (bit sets kept in that order),
        as far as they can matter. That saves the work, not the result: every phrasing
        kept has the overlap, in the same sum, that counting every phrasing gives it.
        """
        with_term = self._phrasings_with[index]
        common = self._common_with[index]
        frequent: list[tuple[float, frozenset[int], int]] = []
        members_of: dict[str, frozenset[int]] = {}
        for term, mass in telling:
            shared = common.get(term)
            if shared is not None and len(frequent) < MAX_COMMON_WORDS:
                frequent.append((mass, *shared))
                members_of[term] = shared[0]
        touched_set: set[int] = set()
        for term, _mass in telling:
            if term not in members_of:
                touched_set.update(with_term.get(term, ()))
        overlaps = dict.fromkeys(touched_set, 0.0)
        # Each phrasing's overlap adds the masses in the message's order.
        for term, mass in telling:
            members = members_of.get(term)
            if members is not None:
                for position in members.intersection(touched_set):
                    overlaps[position] += mass
            else:
                for position in with_term.get(term, ()):
                    overlaps[position] += mass
        scales = self._phrasing_scales[index]
        touched = list(overlaps)
        said = list(overlaps.values())
        similarities = list(map(_mul, said, map(scales.__getitem__, touched)))
        if not frequent:
            return touched, said, similarities
        nearest = max(similarities, default=-math.inf)
        best = sorted(similarities)[-VOTERS:]
        bar = min(nearest, max(best[0] if len(best) >= VOTERS else -math.inf, vote_floor))
        said_most = max(said, default=0.0)
        ranked_positions = self._ranked_positions[index]
        ranked_scales = self._ranked_scales[index]
        for combination in range(1, 1 << len(frequent)):
            inside, outside, says = -1, 0, 0.0
            for bit, (mass, _members, mask) in enumerate(frequent):
                if combination >> bit & 1:
                    inside &= mask
                    says += mass
                else:
                    outside |= mask
            exact = inside & ~outside  # the phrasings saying just these common words
            kept = 0
            while exact and kept < VOTERS:
                lowest = exact & -exact
                exact ^= lowest
                rank = lowest.bit_length() - 1
                position = ranked_positions[rank]
                if position in overlaps:
                    continue  # it says a rarer word too, and is counted already
                similarity = says * ranked_scales[rank]
                if similarity < bar and not (overlap and says > said_most):
                    break
                said_most = max(said_most, says)
                overlaps[position] = says
                touched.append(position)
                said.append(says)
                similarities.append(similarity)
                kept += 1
        return touched, said, similarities

    def _safety_share(self, query: Mapping[str, float]) -> float:
        """How much of the message's weight is in words that point at safety topics."""
        total = sum(query.values())
        if not total:
            return 0.0
        return sum(mass * self._safety.get(term, 0.0) for term, mass in query.items()) / total

    def match(self, text: str) -> Match:
        """Decide how to reply to `text`: answer one topic, clarify, or fall back."""
        return self.decide(self.assess(text))

    def assess(self, text: str) -> Assessment:
        """Everything the decision needs to know about `text`, before deciding."""
        message = self._analyse(text)
        talk = self._smalltalk_of(message)
        if talk is not None:
            return Assessment(message, smalltalk=talk)
        said_urgent = self._urgent.said(message.sequence)
        urgent = -1 if said_urgent is None else self._urgent_entry[said_urgent]
        if urgent < 0 and self._out_of_scope_phrase(message):
            # The message says a phrasing the knowledge base says never to answer ("knead
            # bread dough"): whatever else it shares with a topic is incidental.
            return Assessment(message, vetoed=True)
        said = message.said()
        exact = self._said_by_one.get(said, -1) if all(t.known for t in message.terms) else -1
        scored = self._score(message.terms, RERANK_POOL, urgent if urgent >= 0 else exact)
        if message.question and self.params.question_view:
            # The question alone may point more clearly than the story around it ("...she
            # loves a back rub before she settles. Once it's over, what should I do?"): each
            # topic keeps the better of its two scores.
            view = self.params.question_view
            alone = self._score(message.question, RERANK_POOL, exact)
            best = {s.index: s for s in scored}
            for s in alone:
                s = s._replace(score=s.score * view)
                if s.index not in best or s.score > best[s.index].score:
                    best[s.index] = s
            scored = sorted(best.values(), key=lambda s: s.score, reverse=True)
        topics = tuple(s for s in scored if self._ids[s.index] is not None)
        if urgent >= 0 and all(s.index != urgent for s in topics):
            # An emergency in words its topic never uses ("gasping for air") is still one.
            return Assessment(message, topics=(_Scored(urgent, 0.0, False, -1, 0.0, 0.0),),
                              urgent=urgent)
        if not topics:
            return Assessment(message)
        out_of_scope = next((s.score for s in scored if self._ids[s.index] is None), 0.0)
        top = topics[0]
        runner_up = topics[1].score if len(topics) > 1 else 0.0
        # Words only out-of-scope phrasings use ("car", "hair") count as unknown here too.
        unknown = [t for t in message.terms if not t.known or t.term in self._foreign_only]
        weight = sum(t.weight for t in message.terms)
        known_mass = {t.term: t.weight * t.factor for t in message.terms if t.known}
        explained = sum(
            mass for term, mass in known_mass.items() if top.index in self._postings[term]
        )
        # A short message is about a word it holds that no topic uses, or that was read as
        # a typo of a word the best topic does not use ("massage oil for my beard": "board").
        unexplained = len(unknown) + sum(
            1 for t in message.terms
            if t.corrected and t.known and top.index not in self._postings[t.term]
        )
        features = (
            top.score / 100.0,
            (top.score - runner_up) / 100.0,
            (top.score - out_of_scope) / 100.0,
            sum(t.weight for t in unknown) / weight if weight else 0.0,
            1.0 if top.strong else 0.0,
            1.0
            if unexplained and len(message.terms) - unexplained <= SHORT_KNOWN_TERMS
            else 0.0,
            top.similarity,
            explained / sum(known_mass.values()),
            top.vote,
            min(len(message.terms), LONG_MESSAGE_TERMS) / LONG_MESSAGE_TERMS,
            runner_up / top.score if top.score else 1.0,
            top.vote - (topics[1].vote if len(topics) > 1 else 0.0),
        )
        safety = self._safety_share(known_mass)
        said_caution = self._caution.said(message.sequence)
        caution = -1 if said_caution is None else self._caution_entry[said_caution]
        return Assessment(message, topics=topics, out_of_scope=out_of_scope,
                          features=features, safety_share=safety, exact=exact, urgent=urgent,
                          caution=caution)

    def decide(self, assessment: Assessment, params: Params | None = None) -> Match:
        """The decision for an assessed message; `params` overrides the decision thresholds
        (calibration tries many on the same assessments)."""
        p = params or self.params
        if assessment.smalltalk is not None:
            return Match("smalltalk", None, (), smalltalk=assessment.smalltalk)
        topics = assessment.topics
        urgent = None if assessment.urgent < 0 else next(
            (s for s in topics if s.index == assessment.urgent), None
        )
        if urgent is not None:
            # An emergency is answered at once, however the rest of the message reads.
            return Match("answer", self._ids[urgent.index],
                         (self._candidate(urgent, assessment.message),))
        if not topics:
            return Match("fallback", None, ())
        top = topics[0]
        confidence = p.confidence(assessment.features)
        if top.score < p.clarify_min or assessment.out_of_scope >= top.score:
            # Too little in common with any topic, or nearer to a phrasing the knowledge
            # base says never to answer than to any topic.
            return Match("fallback", None, (), confidence=confidence)
        floor = max(p.clarify_min, top.score - p.clarify_spread)
        close = [s for s in topics[:MAX_CANDIDATES] if s.score >= floor]
        safety_question = (
            top.index not in self._safety_entries and assessment.safety_share >= p.safety_share
        )
        # A warning sign ("it hurts") led by a comfort topic: its safety topic is offered
        # beside the answer or among the choices. It does not stop the answer: people say
        # "hurt" of pressure and of their own hands more often than of a warning, and
        # asking back on it answered 1.4 points fewer of the blind sets.
        # Whether the best topic stands alone, before a safety topic joins the choices.
        alone = len(close) == 1
        caution = None
        if assessment.caution >= 0 and top.index not in self._safety_entries:
            caution = next((s for s in topics if s.index == assessment.caution),
                           _Scored(assessment.caution, 0.0, False, -1, 0.0, 0.0))
        if safety_question or caution is not None:
            # A message about pain, a condition or a medicine is never answered with a
            # comfort topic alone: the nearest safety topic is offered beside it.
            safest = caution or next((s for s in topics if s.index in self._safety_entries),
                                     None)
            if safest is not None and safest not in close:
                close = [*close[: MAX_CANDIDATES - 1], safest]
        candidates = tuple(self._candidate(s, assessment.message) for s in close)
        exact = next((s for s in topics if s.index == assessment.exact), None)
        if exact is not None:
            # What the author filed under one topic, word for word, is that topic's.
            chosen = (exact, *(s for s in close if s is not exact))[:MAX_CANDIDATES]
            return Match("answer", self._ids[exact.index],
                         tuple(self._candidate(s, assessment.message) for s in chosen),
                         confidence=confidence)
        # A tie at the top is a coin toss, however sure each topic looks on its own; a short
        # message with a word no topic uses ("massage oil for my beard") is likely about that
        # word, which the knowledge base knows nothing of.
        tied = len(topics) > 1 and topics[1].score > top.score - TIE
        unsure = tied or assessment.features[FEATURE_INDEX["short_unknown"]] > 0
        if not (safety_question or unsure) and (
            confidence >= p.answer_probability
            # A topic that stands alone, no other near it, needs less to be answered.
            or (alone and confidence >= p.lone_probability)
        ):
            return Match("answer", self._ids[top.index], candidates, confidence=confidence,
                         caution=None if caution is None else self._ids[caution.index])
        if len(candidates) == 1:
            # One weak guess is no help as a choice: that is a fallback.
            return Match("fallback", None, (), confidence=confidence)
        return Match("clarify", None, candidates, confidence=confidence)

    def topic_of(self, scored: _Scored) -> str | None:
        return self._ids[scored.index]

    def search(self, text: str, limit: int = 5) -> list[Candidate]:
        """Topics ranked for `text`, looser than `match`: for inline suggestions as one types.

        No out-of-scope veto and no margin: it only ranks. A half-typed last word ("petri")
        is completed from the knowledge base's words.
        """
        message = self._analyse(text)
        terms = message.terms
        words = raw_words(text)
        # The last word may be half typed even when it is a word of its own ("petri" of
        # "petri sage"), so its completions always join it.
        if words:
            terms += self._completions(words[-1], {t.term for t in terms})
        scored = self._score(terms, max(limit, RERANK_POOL), keep=max(limit, 0))
        found = [s for s in scored if self._ids[s.index] is not None and s.score >= SEARCH_MIN]
        return [self._candidate(s, message) for s in found[: max(limit, 0)]]

    def _completions(self, prefix: str, seen: set[str]) -> list[_Term]:
        """Terms of the knowledge-base words that start with `prefix` (3+ letters)."""
        if len(prefix) < 3:
            return []
        start = bisect.bisect_left(self._sorted_words, prefix)
        found: dict[str, _Term] = {}
        for word in itertools.islice(self._sorted_words, start, start + MAX_COMPLETIONS):
            if not word.startswith(prefix):
                break
            term = self._surface[word]
            if term in self._idf and term not in seen:
                found[term] = _Term(term, word, self._idf[term], self.params.corrected, True)
        return list(found.values())

    def _candidate(self, scored: _Scored, message: _Message) -> Candidate:
        topic = self._ids[scored.index]
        assert topic is not None  # callers pass topics only, never the out-of-scope entry
        phrasing = (
            self._phrasing_texts[scored.index][scored.phrasing] if scored.phrasing >= 0 else ""
        )
        words = tuple(
            t.word for t in message.terms if scored.index in self._postings.get(t.term, ())
        )
        return Candidate(topic, round(min(100.0, scored.score), 1), phrasing, words)


def _term_set(terms: Iterable[str]) -> tuple[str, ...]:
    """A set of terms as a dictionary key: a sorted tuple takes a third of a frozenset's
    memory, and the index keeps thousands."""
    return tuple(sorted(set(terms)))


def text_words(text: str) -> tuple[str, ...]:
    """The words of a knowledge-base text, all of them."""
    return tuple(raw_words(text, limit=None))


def cached_text_words() -> TextWords:
    """`text_words` with a memory of its own: for cross-validation and calibration, which
    build hundreds of indexes over the same texts. The bot builds one and keeps no cache."""
    return lru_cache(maxsize=None)(text_words)


def _votes(voters: list[tuple[float, int]]) -> dict[int, float]:
    """Each entry's share of the phrasings nearest to the message (similarity, entry): an
    entry whose examples crowd the message's neighbourhood is a safer answer."""
    mass = sum(sim for sim, _index in voters if sim > 0.0)
    votes: dict[int, float] = {}
    for sim, index in voters:
        if sim > 0.0:
            votes[index] = votes.get(index, 0.0) + sim / mass
    return votes


def _evidence(field_weight: float, phrasings: int, central_base: float) -> float:
    """How strongly a term points at a topic: its strongest field's weight, scaled up from
    `central_base` to all of it as more of the topic's phrasings use the term."""
    centrality = min(1.0, phrasings / CENTRAL_USES)
    return field_weight * (central_base + (1.0 - central_base) * centrality)


def _close_together(found: list[tuple[int, str]], distinct: int, span: int) -> bool:
    """Whether `distinct` different terms of `found` (position, term; in position order)
    occur within `span` positions of each other."""
    counts: dict[str, int] = {}
    left = 0
    for at, term in found:
        counts[term] = counts.get(term, 0) + 1
        while at - found[left][0] > span:
            gone = found[left][1]
            counts[gone] -= 1
            if not counts[gone]:
                del counts[gone]
            left += 1
        if len(counts) == distinct:
            return True
    return False


def _weighted_texts(topic: Topic, p: Params) -> list[tuple[float, str, bool]]:
    """Every text of a topic with how strongly a word in it points at the topic, and whether
    it is a phrasing (title, alias, question) rather than answer text."""
    texts = [(p.alias_weight, topic.title, True),
             (p.alias_weight, topic.id.replace("-", " "), True)]
    texts += [(p.alias_weight, alias, True) for alias in topic.aliases]
    texts += [(p.question_weight, question, True) for question in topic.questions]
    texts += [(p.question_weight, example, True) for example in topic.examples]
    texts.append((p.answer_weight, topic.answer, False))
    texts += [(p.answer_weight, item, False) for item in topic.checklist]
    return texts
