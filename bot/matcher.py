"""Match a chat message to a knowledge-base topic: answer, clarify, or fall back.

People type the way they chat: typos ("petrisage"), other names ("kneading"), one word
("talc"), descriptions ("the tapping one with fists") and long messages with context. The
answers are health-adjacent, so a confident wrong answer is worse than asking back: the
matcher answers only when one topic is clearly ahead, offers up to three choices when it is
unsure, and falls back when the message is not about what the knowledge base covers.

How a message is scored (every index is built once, in the constructor):

1. Words are normalised (case, accents, apostrophes, chat spellings), stop words dropped,
   the rest lightly stemmed. A word the knowledge base never uses is corrected against the
   knowledge base's own vocabulary (rapidfuzz edit distance), so typos of technique names and
   ordinary words both land; a word that stays unknown counts against confidence, because
   "car oil" and "bread dough" share only one word with the knowledge base.
2. Each word weighs its rarity across topics (IDF): "massage" says little, "talc" a lot.
3. Topic score = how much of the message the topic's vocabulary explains (titles and aliases
   count fully, example questions a little less, the answer text weakly) blended with how
   closely the message matches the topic's single best title, alias or example question.
4. The knowledge base's `out_of_scope` phrasings form a pseudo-topic: when the message is
   nearer to one of them than to any topic, or when the best topic is supported only by words
   from answer text, the matcher does not answer.
5. Answer when the top score is high enough and clearly ahead of the next; otherwise clarify
   with the close runners-up; otherwise fall back.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from rapidfuzz import process
from rapidfuzz.distance import OSA

from bot.knowledge import KnowledgeBase, Topic

Decision = Literal["answer", "clarify", "fallback"]

# Work caps for very long messages: a 4,000-character ramble still gets matched, on its
# first words, and only a bounded number of words pay for a fuzzy look-up.
MAX_CHARS = 4000
MAX_WORDS = 160
MAX_CORRECTIONS = 24
MAX_CANDIDATES = 3
# A half-typed word in search expands to at most this many knowledge-base words.
MAX_COMPLETIONS = 12

# How much a word counts as evidence for a topic, by where the topic uses it.
TITLE_WEIGHT = 1.0
ALIAS_WEIGHT = 1.0
QUESTION_WEIGHT = 0.8
ANSWER_WEIGHT = 0.3
# A corrected word is a guess; it counts a little less than a word typed right.
CORRECTED_FACTOR = 0.85
# Words the knowledge base never uses dilute coverage, but only partly: a long message has
# many incidental words ("stressed at work") that say nothing against the topic.
UNKNOWN_FACTOR = 0.6
# Past about this many rare words' worth of message, more words no longer dilute the score.
SATURATION_WORDS = 3.0

# Score blend: coverage of the message by the topic's vocabulary vs the best single phrasing.
COVERAGE_SHARE = 0.5
PHRASING_SHARE = 0.5

# Decision thresholds on the 0..100 score.
ANSWER_MIN = 45.0
ANSWER_MARGIN = 8.0
CLARIFY_MIN = 25.0
# Runners-up offered in a clarify must be within this of the leader.
CLARIFY_SPREAD = 20.0
SEARCH_MIN = 5.0
# How many topics from the cheap coverage pass get the per-phrasing comparison.
RERANK_POOL = 24

# Function words and chat filler: they carry no topic. Negations and words like "long",
# "often", "hard", "need", "after" stay, because they decide between topics.
_STOP_WORDS_TEXT = """
    a an the and or but so if then than as of at by for from in into on onto to with without
    about over out again further once here there when where why how what
    which who whom whose this that these those am is are was were be been being have has had
    having do does did doing done i me my mine myself we us our ours ourselves you your yours
    yourself yourselves he him his himself she her hers herself it its itself they them their
    theirs themselves can could should would will shall may might must ought just really very
    quite also too any some such only own same other each few more most all both either
    kind sort thing things stuff bit lot lots like get gets got getting go going gonna gotta
    wanna please thanks thank hi hello hey ok okay yes yeah yep no nope lol lmao haha tell
    know mean means meant say says said want wants think guess maybe actually basically
    anyway well oh ah um uh hmm im ive id ill youre theyre whats hows wheres whos thats
    theres lets someone somebody person people one ones
    everything something anything nothing mom mum mother mama dad father papa wife husband
    partner girlfriend boyfriend gf bf nan nana gran granny grandma grandmother grandpa grandad
    grandfather son daughter kid kids child children friend friends brother sister auntie
    aunt uncle fiance fiancee hubby wifey mate bro babe
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

# Chat spellings and abbreviations that edit distance cannot reach (too short or too far).
CHAT_SPELLINGS = {
    "u": "you", "ur": "your", "r": "are", "y": "why", "pls": "please", "plz": "please",
    "thx": "thanks", "ty": "thanks", "b4": "before", "wat": "what", "wot": "what",
    "wut": "what", "wht": "what", "shud": "should", "shld": "should", "cud": "could",
    "wud": "would", "abt": "about", "bc": "because", "coz": "because", "cos": "because",
    "cuz": "because", "tho": "though", "thru": "through", "n": "and", "w": "with",
    "mins": "minutes", "min": "minute", "hr": "hour", "hrs": "hours", "sec": "second",
    "secs": "seconds", "tummy": "stomach",
    "belly": "stomach", "massge": "massage", "bcuz": "because",
    # Negation decides between topics ("when not to massage", "can't lie face down"), in
    # whatever form it is typed.
    "cant": "not", "cannot": "not", "unable": "not", "dont": "not", "doesnt": "not",
    "didnt": "not", "isnt": "not", "arent": "not", "wasnt": "not", "shouldnt": "not",
    "wont": "not", "never": "not", "couldnt": "not", "wouldnt": "not", "aint": "not",
}  # fmt: skip

# Numbers say "an amount" ("is 5 mins enough"); spelled or in digits they are one word.
_NUMBER_WORDS_TEXT = (
    "two three four five six seven eight nine ten eleven twelve fifteen twenty thirty "
    "forty fifty sixty ninety hundred"
)
NUMBER_WORDS = frozenset(_NUMBER_WORDS_TEXT.split())
NUMBER_TOKEN = "num"

_WORD_PATTERN = re.compile(r"[a-z0-9]+")
_APOSTROPHES = str.maketrans("", "", "'\u2019\u2018`")


@dataclass(frozen=True)
class Candidate:
    topic: str
    score: float  # 0..100


@dataclass(frozen=True)
class Match:
    decision: Decision
    topic: str | None  # the answered topic id; None unless decision == "answer"
    candidates: tuple[Candidate, ...]  # best first, up to 3 (may be empty on fallback)


def raw_words(text: str) -> list[str]:
    """Lower-case ASCII words of `text`, accents and apostrophes removed ("what's" -> "whats")."""
    folded = unicodedata.normalize("NFKD", text[:MAX_CHARS].casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _WORD_PATTERN.findall(folded.translate(_APOSTROPHES))[:MAX_WORDS]


def stem(word: str) -> str:
    """A light suffix stripper: enough to meet "sores"/"sore", "kneading"/"knead".

    Deliberately weaker than Porter: it only has to be consistent between the knowledge base
    and the message, and over-stemming merges words that mean different things.
    """
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ying") and len(word) > 4:
        word = word[:-4] + "ie"  # lying -> lie
    elif word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("ing") and len(word) > 5:
        word = word[:-3]
    elif len(word) > 4 and (word.endswith("ed") or (word.endswith("es") and word[-3] in "sxz")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    # A doubled final consonant left by -ing/-ed ("rubbing" -> "rubb") is undone, and a
    # final "e" dropped, so "massage", "massaged" and "massaging" all meet.
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiousl":
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def _canonical(word: str) -> str:
    """The spelling used for look-ups, before stemming: chat spellings, numbers."""
    word = CHAT_SPELLINGS.get(word, word)
    if word.isdigit() or word in NUMBER_WORDS:
        return NUMBER_TOKEN
    return word


def content_terms(text: str) -> list[str]:
    """Stemmed content words of a knowledge-base text, in order (no correction needed)."""
    terms = []
    for word in raw_words(text):
        word = _canonical(word)
        if word not in STOP_WORDS:
            terms.append(stem(word))
    return terms


@dataclass(frozen=True)
class _Term:
    term: str
    weight: float  # IDF of the term in the message
    factor: float  # 1.0 if typed as in the knowledge base, less if corrected
    known: bool


@dataclass(frozen=True)
class _Phrasing:
    terms: frozenset[str]
    weight: float  # total IDF of its terms


@dataclass(frozen=True)
class _Scored:
    index: int
    score: float
    strong: bool  # supported by a title, alias or example question, not only answer text


class Matcher:
    """Answer, clarify or fall back for a chat message; see the module docstring."""

    def __init__(self, knowledge: KnowledgeBase) -> None:
        # Entry i is topic ids[i]; the last entry, id None, is the out-of-scope pseudo-topic.
        self._ids: list[str | None] = [*knowledge.topics, None]
        texts: list[list[tuple[float, str]]] = [
            _weighted_texts(topic) for topic in knowledge.topics.values()
        ]
        texts.append([(QUESTION_WEIGHT, phrase) for phrase in knowledge.out_of_scope])
        fields = [[(weight, content_terms(text)) for weight, text in entry] for entry in texts]
        phrases = (frozenset(content_terms(phrase)) for phrase in knowledge.out_of_scope)
        self._out_of_scope = [phrase for phrase in phrases if phrase]

        # evidence[i][term]: the strongest field of entry i that uses the term.
        evidence: list[dict[str, float]] = []
        for entry in fields:
            best: dict[str, float] = {}
            for weight, terms in entry:
                for term in terms:
                    if best.get(term, 0.0) < weight:
                        best[term] = weight
            evidence.append(best)
        document_frequency: dict[str, int] = {}
        for best in evidence:
            for term in best:
                document_frequency[term] = document_frequency.get(term, 0) + 1
        entries = len(evidence)
        self._idf = {
            term: math.log(1.0 + entries / count) for term, count in document_frequency.items()
        }
        # A word no topic uses counts as rarer than any word a topic does use.
        self._unknown_idf = math.log(1.0 + entries / 0.5)
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for index, best in enumerate(evidence):
            for term, weight in best.items():
                self._postings.setdefault(term, []).append((index, weight))
        self._phrasings: list[list[_Phrasing]] = []
        for entry in fields:
            phrasings = []
            for weight, terms in entry:
                if weight > ANSWER_WEIGHT and terms:
                    unique = frozenset(terms)
                    phrasings.append(_Phrasing(unique, sum(self._idf[t] for t in unique)))
            self._phrasings.append(phrasings)

        # Surface word -> its term, or "" for a stop word: correcting "wich" to "which" must
        # make it vanish, not match a topic word one letter away.
        self._surface: dict[str, str] = dict.fromkeys(STOP_WORDS, "")
        for entry in texts:
            for _weight, text in entry:
                for word in raw_words(text):
                    word = _canonical(word)
                    self._surface.setdefault(word, stem(word))
        by_length: dict[int, list[str]] = {}
        for word in self._surface:
            by_length.setdefault(len(word), []).append(word)
        self._by_length = by_length
        # Sorted knowledge-base words, for completing a half-typed last word in search.
        self._sorted_words = sorted(word for word, term in self._surface.items() if term)

    # -- the message -------------------------------------------------------------------

    def _correct(self, word: str) -> str | None:
        """The knowledge-base word `word` is most likely a typo of, or None."""
        length = len(word)
        if length < 4:
            return None  # too short to tell a typo from another word ("car", "bar")
        limit = 1 if length <= 5 else 2
        pool: list[str] = []
        for size in range(length - limit, length + limit + 1):
            pool.extend(self._by_length.get(size, ()))
        found = process.extract(word, pool, scorer=OSA.distance, score_cutoff=limit, limit=8)
        best: tuple[int, int, str] | None = None
        for candidate, distance, _index in found:
            if not self._plausible_typo(word, candidate, int(distance)):
                continue
            # Ties go to a knowledge-base word over a stop word, then alphabetically so the
            # choice does not depend on the order of the knowledge files.
            rank = (int(distance), 0 if self._surface[candidate] else 1, candidate)
            if best is None or rank < best:
                best = rank
        return None if best is None else best[2]

    @staticmethod
    def _plausible_typo(word: str, candidate: str, distance: int) -> bool:
        """Whether `word` reads as a typo of `candidate` rather than as another real word.

        A typo rarely hits the first letter, while a different word a letter or two away
        often differs there ("dough" is not "rough", "enough" is not "dough"). Two edits are
        accepted only in long words or where letters were left out ("strait", "eflurage").
        """
        if candidate[0] != word[0] and (len(word) <= 5 or distance > 1):
            return False
        return distance <= 1 or len(word) >= 8 or len(candidate) > len(word)

    def _analyse(self, text: str) -> list[_Term]:
        """The message's content terms, corrected, weighted and without repeats."""
        terms: dict[str, _Term] = {}

        def add(term: str, factor: float) -> None:
            old = terms.get(term)
            if old is None or old.factor < factor:
                terms[term] = _Term(term, self._idf[term], factor, known=True)

        corrections = 0
        previous = ""
        for word in map(_canonical, raw_words(text)):
            if word in STOP_WORDS:
                previous = ""
                continue
            term = self._surface.get(word)
            if term is None and stem(word) in self._idf:
                term = stem(word)
            joined = stem(previous + word) if previous else ""
            if joined in self._idf:  # "bed sores" where the knowledge base says "bedsores"
                add(joined, 1.0)
            previous = word
            if term:
                if term in self._idf:
                    add(term, 1.0)
                continue
            if term == "":
                continue
            if corrections < MAX_CORRECTIONS:
                corrections += 1
                fixed = self._correct(word)
                if fixed is not None:
                    fixed_term = self._surface[fixed]
                    if fixed_term in self._idf:
                        add(fixed_term, CORRECTED_FACTOR)
                    continue
                parts = self._split(word)
                if parts:
                    for part in parts:
                        add(part, CORRECTED_FACTOR)
                    continue
            unknown = stem(word)
            if unknown not in terms:
                terms[unknown] = _Term(unknown, self._unknown_idf, 1.0, known=False)
        return list(terms.values())

    def _split(self, word: str) -> tuple[str, str] | None:
        """Two knowledge-base terms run together ("backrub"), or None."""
        for cut in range(3, len(word) - 2):
            left, right = stem(word[:cut]), stem(word[cut:])
            if left in self._idf and right in self._idf:
                return left, right
        return None

    # -- scoring -----------------------------------------------------------------------

    def _score(self, terms: list[_Term], pool: int) -> list[_Scored]:
        """Every entry sharing a term with the message, best first (the pool re-ranked)."""
        known = [t for t in terms if t.known]
        if not known:
            return []
        known_weight = sum(t.weight for t in known)
        unknown_weight = sum(t.weight for t in terms if not t.known)
        # A short message must be explained nearly whole by one topic; a long one is judged
        # by how much evidence it holds, since most of a ramble is context, not question.
        total = min(
            known_weight + UNKNOWN_FACTOR * unknown_weight,
            SATURATION_WORDS * self._unknown_idf,
        )
        coverage: dict[int, float] = {}
        strong: set[int] = set()
        query: dict[str, float] = {}
        for t in known:
            mass = t.weight * t.factor
            query[t.term] = mass
            for index, evidence in self._postings[t.term]:
                coverage[index] = coverage.get(index, 0.0) + mass * evidence
                if evidence >= QUESTION_WEIGHT:
                    strong.add(index)
        ranked = sorted(coverage.items(), key=lambda item: item[1], reverse=True)
        scored = []
        for position, (index, mass) in enumerate(ranked):
            share = mass / total
            phrasing = 0.0
            if position < pool:
                for candidate in self._phrasings[index]:
                    overlap = sum(query.get(term, 0.0) for term in candidate.terms)
                    if overlap:
                        similarity = overlap / math.sqrt(total * candidate.weight)
                        phrasing = max(phrasing, similarity)
            score = 100.0 * min(1.0, COVERAGE_SHARE * share + PHRASING_SHARE * phrasing)
            scored.append(_Scored(index, score, index in strong))
        scored.sort(key=lambda s: s.score, reverse=True)
        return scored

    def match(self, text: str) -> Match:
        """Decide how to reply to `text`: answer one topic, clarify, or fall back."""
        terms = self._analyse(text)
        present = {t.term for t in terms if t.known}
        if any(phrase <= present for phrase in self._out_of_scope):
            # Every word of a phrasing the knowledge base says never to answer ("bread
            # dough") is in the message: whatever else it shares with a topic is incidental.
            return Match("fallback", None, ())
        scored = self._score(terms, RERANK_POOL)
        topics = [s for s in scored if self._ids[s.index] is not None]
        out_of_scope = next((s.score for s in scored if self._ids[s.index] is None), 0.0)
        if not topics or topics[0].score < CLARIFY_MIN:
            return Match("fallback", None, ())
        top = topics[0]
        if out_of_scope >= top.score:
            # Nearer to a phrasing the knowledge base says never to answer than to any topic.
            return Match("fallback", None, ())
        floor = max(CLARIFY_MIN, top.score - CLARIFY_SPREAD)
        close = [s for s in topics[:MAX_CANDIDATES] if s.score >= floor]
        candidates = tuple(self._candidate(s) for s in close)
        runner_up = topics[1].score if len(topics) > 1 else 0.0
        if (
            top.strong
            and top.score >= ANSWER_MIN
            and top.score - runner_up >= ANSWER_MARGIN
            and top.score - out_of_scope >= ANSWER_MARGIN
        ):
            return Match("answer", self._ids[top.index], candidates)
        return Match("clarify", None, candidates)

    def search(self, text: str, limit: int = 5) -> list[Candidate]:
        """Topics ranked for `text`, looser than `match`: for inline suggestions as one types.

        No out-of-scope veto and no margin: it only ranks. A half-typed last word ("petri")
        is completed from the knowledge base's words.
        """
        terms = self._analyse(text)
        words = raw_words(text)
        if words and not any(t.term == stem(_canonical(words[-1])) for t in terms if t.known):
            terms += self._completions(words[-1], {t.term for t in terms})
        scored = self._score(terms, max(limit, RERANK_POOL))
        found = [s for s in scored if self._ids[s.index] is not None and s.score >= SEARCH_MIN]
        return [self._candidate(s) for s in found[: max(limit, 0)]]

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
                found[term] = _Term(term, self._idf[term], CORRECTED_FACTOR, known=True)
        return list(found.values())

    def _candidate(self, scored: _Scored) -> Candidate:
        topic = self._ids[scored.index]
        assert topic is not None  # callers pass topics only, never the out-of-scope entry
        return Candidate(topic, round(scored.score, 1))


def _weighted_texts(topic: Topic) -> list[tuple[float, str]]:
    """Every text of a topic with how strongly a word in it points at the topic."""
    texts = [(TITLE_WEIGHT, topic.title), (ALIAS_WEIGHT, topic.id.replace("-", " "))]
    texts += [(ALIAS_WEIGHT, alias) for alias in topic.aliases]
    texts += [(QUESTION_WEIGHT, question) for question in topic.questions]
    texts.append((ANSWER_WEIGHT, topic.answer))
    texts += [(ANSWER_WEIGHT, item) for item in topic.checklist]
    return texts
