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
4. The knowledge base's `out_of_scope` phrasings form a pseudo-topic, scored by its nearest
   single phrasing: when the message is nearer to one of them than to any topic, or when the
   best topic is supported only by words from answer text, the matcher does not answer.
5. Answer when the top score is high enough and clearly ahead of the next, and the message is
   not a short one holding a word no topic uses ("massage oil for my beard"); otherwise
   clarify with the close runners-up; otherwise fall back.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, NamedTuple

from rapidfuzz import process
from rapidfuzz.distance import OSA

from bot.knowledge import KnowledgeBase, Topic

Decision = Literal["answer", "clarify", "fallback"]

# Work caps for very long messages: a 4,000-character ramble still gets matched, on its
# first words, and only a bounded number of words pay for a fuzzy look-up.
MAX_CHARS = 4000
MAX_WORDS = 160
MAX_CORRECTIONS = 24
# Longer "words" are keyboard mashing or pasted codes: not worth a fuzzy look-up.
MAX_WORD_LENGTH = 30
MAX_CANDIDATES = 3
# A message of at most this many topic words that also holds a word no topic uses ("massage
# oil for my beard", "knead pasta dough") is asked back, not answered: the unknown word is
# likely what it is about.
SHORT_KNOWN_TERMS = 3
# An out-of-scope phrasing counts as said when its words come with at most this many other
# words between them ("knead some bread dough", "massage my legs").
PHRASE_SLACK = 1
# A half-typed word in search expands to at most this many knowledge-base words.
MAX_COMPLETIONS = 12

# How much a word counts as evidence for a topic, by where the topic uses it.
TITLE_WEIGHT = 1.0
ALIAS_WEIGHT = 1.0
QUESTION_WEIGHT = 0.8
ANSWER_WEIGHT = 0.3
# A term's evidence grows from CENTRAL_BASE of its field weight, when one phrasing of the
# topic uses it, to all of it when CENTRAL_USES or more phrasings do.
CENTRAL_BASE = 0.6
CENTRAL_USES = 3
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

# How strongly an out-of-scope phrasing's words point at the out-of-scope entry.
OUT_OF_SCOPE_EVIDENCE = QUESTION_WEIGHT

# Evidence from a title, alias or example question, not just answer text.
STRONG_EVIDENCE = CENTRAL_BASE * QUESTION_WEIGHT

# Decision thresholds on the 0..100 score.
ANSWER_MIN = 40.0
ANSWER_MARGIN = 6.0
CLARIFY_MIN = 25.0
# Runners-up offered in a clarify must be within this of the leader.
CLARIFY_SPREAD = 20.0
SEARCH_MIN = 5.0
# How many topics from the cheap coverage pass get the per-phrasing comparison.
RERANK_POOL = 12
# A term used by more entries than this only adds to the PRUNE_KEEP best entries found so
# far and to its own PRUNE_KEEP strongest entries (only knowledge bases of thousands of
# topics have such terms).
PRUNE_POSTINGS = 500
PRUNE_KEEP = 256
# At most this many of a message's words are scored, the rarest ones.
MAX_SCORED_TERMS = 32

# Function words and chat filler: they carry no topic. Negations and words like "long",
# "often", "hard", "need", "after" stay, because they decide between topics.
_STOP_WORDS_TEXT = """
    a an the and or but so if then than as of at by for from in into on onto to with without
    about out again further here there when where why how what
    which who whom whose this that these those am is are was were be been being have has had
    having do does did doing done i me my mine myself we us our ours ourselves you your yours
    yourself yourselves he him his himself she her hers herself it its itself they them their
    theirs themselves can could should would will shall may might must ought just really very
    quite also too any some such only own same other each few more most all both either
    kind sort thing things stuff bit lot lots like get gets got getting go going gonna gotta
    wanna please thanks thank hi hello hey ok okay yes yeah yep no nope lol lmao haha tell
    know mean means meant say says said want wants think guess maybe actually basically
    anyway well oh ah um uh hmm during while whilst every ever even still already always
    usually else though although because since until till whether ago soon put im ive id
    kinda sorta goes went gone vs versus
    ill youre theyre whats hows wheres whos thats theres lets someone somebody person people
    hes shes theyve weve youve youd theyd itll youll theyll heres
    one ones everything something anything nothing mom mum mother mama dad father papa wife husband
    partner girlfriend boyfriend gf bf nan nana gran granny grandma grandmother grandpa grandad
    grandfather son daughter kid kids child children friend friends brother sister auntie
    aunt uncle fiance fiancee hubby wifey mate bro babe
    patient patients resident residents client clients lady gentleman guy man woman
    nah nice lovely alright honestly literally obviously involve involves improve properly
    correctly
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
    "secs": "seconds", "tummy": "stomach", "shd": "should", "safest": "safe", "safer": "safe",
    "achy": "aching", "shaky": "shaking",
    "stick": "put", "shove": "put", "chuck": "put", "pop": "put",
    "belly": "stomach", "massge": "massage", "bcuz": "because", "diff": "difference",
    # Negation decides between topics ("when not to massage", "can't lie face down"), in
    # whatever form it is typed.
    "cant": "not", "cannot": "not", "unable": "not", "dont": "not", "doesnt": "not",
    "didnt": "not", "isnt": "not", "arent": "not", "wasnt": "not", "shouldnt": "not",
    "wont": "not", "never": "not", "couldnt": "not", "wouldnt": "not", "aint": "not",
    "havent": "not", "hasnt": "not", "hadnt": "not", "werent": "not", "neednt": "not",
    "mustnt": "not",
}  # fmt: skip

# Numbers say "an amount" ("is 5 mins enough"); spelled or in digits they are one word.
_NUMBER_WORDS_TEXT = (
    "two three four five six seven eight nine ten eleven twelve fifteen twenty thirty "
    "forty fifty sixty ninety hundred"
)
NUMBER_WORDS = frozenset(_NUMBER_WORDS_TEXT.split())
NUMBER_TOKEN = "num"

# Word forms the suffix stripper would merge with a word of another meaning: "stroking" is
# the gliding technique, while "stroke" is also the illness ("mum had a stroke").
STEM_EXCEPTIONS = {"stroking": "stroking", "stroked": "stroking"}

_WORD_PATTERN = re.compile(r"[a-z0-9]+")
_APOSTROPHES = str.maketrans("", "", "'\u2019\u2018`")


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
    candidates: tuple[Candidate, ...]  # best first, up to 3 (may be empty on fallback)


def raw_words(text: str) -> list[str]:
    """Lower-case ASCII words of `text`, accents and apostrophes removed ("what's" -> "whats")."""
    folded = text[:MAX_CHARS].casefold()
    if not folded.isascii():  # most text is plain ASCII; decomposing it is wasted work
        folded = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return _WORD_PATTERN.findall(folded.translate(_APOSTROPHES))[:MAX_WORDS]


def stem(word: str) -> str:
    """A light suffix stripper: enough to meet "sores"/"sore", "kneading"/"knead".

    Deliberately weaker than Porter: it only has to be consistent between the knowledge base
    and the message, and over-stemming merges words that mean different things.
    """
    if len(word) <= 3 or word.isdigit():
        return word
    if word in STEM_EXCEPTIONS:
        return STEM_EXCEPTIONS[word]
    if word.endswith("ying") and not any(ch in "aeiou" for ch in word[:-4]):
        word = word[:-4] + "ie"  # lying -> lie, but buying -> buy, playing -> play
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


@dataclass(frozen=True)
class _Term:
    term: str
    weight: float  # IDF of the term in the message
    factor: float  # 1.0 if typed as in the knowledge base, less if corrected
    known: bool


@dataclass(frozen=True)
class _Message:
    terms: list[_Term]  # each term once
    sequence: tuple[tuple[int, str], ...]  # (word position, term) in order, repeats kept


@dataclass(frozen=True)
class _Phrasing:
    terms: frozenset[str]
    weight: float  # total IDF of its terms


class _Scored(NamedTuple):  # a dozen a question: a tuple is cheaper to make than a dataclass
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
        # Surface word -> its term, or "" for a stop word: correcting "wich" to "which" must
        # make it vanish, not match a topic word one letter away. Filled while the texts are
        # read, it also saves stemming the same word over and over.
        self._surface: dict[str, str] = dict.fromkeys(STOP_WORDS, "")
        # How often the knowledge base uses each word: between equally close corrections
        # the commoner word is the likelier one ("paitents": patients, not parents).
        self._uses: dict[str, int] = {}
        # Words of titles, aliases, example questions and out-of-scope phrasings: the ones a
        # typo is corrected to. A word only an answer uses is a poor guess ("pasta" is not
        # the "paste" talc makes with oil, "certain" not the "curtain" round a bed).
        self._phrase_words: set[str] = set()
        fields = [
            [(weight, self._terms_of(text, weight > ANSWER_WEIGHT)) for weight, text in entry]
            for entry in texts
        ]

        # evidence[i][term]: how strongly the term points at entry i. The strongest field
        # that uses it sets the scale; a term used across many of the entry's phrasings is
        # central to it ("oil" for oil-and-lotion), one used once is incidental (the "oil" in
        # an effleurage alias).
        evidence: list[dict[str, float]] = []
        document_frequency: dict[str, float] = {}
        for entry in fields:
            best: dict[str, float] = {}
            uses: dict[str, int] = {}
            for weight, terms in entry:
                for term in set(terms):
                    best[term] = max(best.get(term, 0.0), weight)
                    if weight > ANSWER_WEIGHT:
                        uses[term] = uses.get(term, 0) + 1
            evidence.append(
                {term: _evidence(weight, uses.get(term, 0)) for term, weight in best.items()}
            )
            # A word only in an entry's answer text makes it a fraction of a document: answers
            # mention "hands" everywhere, which says little about which topic is meant.
            for term, weight in best.items():
                document_frequency[term] = document_frequency.get(term, 0.0) + weight
        entries = len(evidence)
        self._idf = {
            term: math.log(1.0 + entries / count) for term, count in document_frequency.items()
        }
        # A word no topic uses counts as rarer than any word a topic does use.
        self._unknown_idf = math.log(1.0 + entries / 0.5)
        self._postings: dict[str, dict[int, float]] = {}
        for index, weights in enumerate(evidence):
            for term, weight in weights.items():
                self._postings.setdefault(term, {})[index] = weight
        # Out-of-scope phrasings that veto a message saying them. One word vetoes only if no
        # topic uses it by name ("chiropractor"): "what time is it" leaves just "time", which
        # plenty of in-scope questions say.
        topic_words = {
            term
            for weights in evidence[:-1]
            for term, weight in weights.items()
            if weight >= STRONG_EVIDENCE
        }
        self._out_of_scope_exact = {frozenset(terms) for _weight, terms in fields[-1] if terms}
        self._out_of_scope = [
            phrase
            for phrase in self._out_of_scope_exact
            if len(phrase) > 1 or not phrase <= topic_words
        ]
        self._champions = {
            term: heapq.nlargest(PRUNE_KEEP, postings, key=postings.__getitem__)
            for term, postings in self._postings.items()
            if len(postings) > PRUNE_POSTINGS
        }
        self._out_of_scope_terms = frozenset().union(*self._out_of_scope)
        self._phrasings: list[list[_Phrasing]] = []
        for entry in fields:
            phrasings = []
            for weight, terms in entry:
                if weight > ANSWER_WEIGHT and terms:
                    unique = frozenset(terms)
                    phrasings.append(_Phrasing(unique, sum(self._idf[t] for t in unique)))
            self._phrasings.append(phrasings)
        # Which of an entry's phrasings use a term, so reranking looks only at the phrasings
        # that share a word with the message instead of testing every one.
        self._phrasings_with: list[dict[str, tuple[int, ...]]] = []
        for phrasings in self._phrasings:
            with_term: dict[str, list[int]] = {}
            for position, phrasing in enumerate(phrasings):
                for term in phrasing.terms:
                    with_term.setdefault(term, []).append(position)
            self._phrasings_with.append({t: tuple(p) for t, p in with_term.items()})
        # The entries a term supports strongly: named in a title, alias or question.
        self._strong_entries = {
            term: frozenset(i for i, weight in postings.items() if weight >= STRONG_EVIDENCE)
            for term, postings in self._postings.items()
        }

        # Correction candidates by first letter and length: a typo keeps both, nearly.
        self._by_start: dict[tuple[str, int], list[str]] = {}
        for word, term in self._surface.items():
            if not term or word in self._phrase_words:
                self._by_start.setdefault((word[0], len(word)), []).append(word)
        # Sorted knowledge-base words, for completing a half-typed last word in search.
        self._sorted_words = sorted(word for word, term in self._surface.items() if term)

    def _terms_of(self, text: str, phrase: bool) -> list[str]:
        """Content terms of a knowledge-base text, recording each word in the vocabulary;
        `phrase` when the text is a title, alias or question, not answer text."""
        terms = []
        for word in map(_canonical, raw_words(text)):
            self._uses[word] = self._uses.get(word, 0) + 1
            if phrase:
                self._phrase_words.add(word)
            term = self._surface.get(word)
            if term is None:
                term = stem(word)
                # A form of a stop word ("tells", "says") is one too.
                term = self._surface[word] = "" if term in STOP_WORDS else term
            if term:
                terms.append(term)
        return terms

    # -- the message -------------------------------------------------------------------

    def _correct(self, word: str) -> str | None:
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
        if swapped in self._phrase_words or self._surface.get(swapped) == "":
            return swapped
        limit = 1 if length <= 5 else 2
        pool: list[str] = []
        for size in range(length - limit, length + limit + 1):
            pool.extend(self._by_start.get((word[0], size), ()))
        found = process.extract(word, pool, scorer=OSA.distance, score_cutoff=limit, limit=8)
        best: tuple[int, int, str] | None = None
        for candidate, distance, _index in found:
            if distance > 1 and length < 8 and len(candidate) <= length:
                continue
            if length == 4 and self._surface[candidate] and sorted(candidate) != sorted(word):
                continue  # "play" is not a typo of "plan"; "sdie" is of "side"
            # Ties go to the word the knowledge base uses most, then alphabetically so the
            # choice does not depend on the order of the knowledge files.
            rank = (int(distance), -self._uses.get(candidate, 0), candidate)
            if best is None or rank < best:
                best = rank
        return None if best is None else best[2]

    def _analyse(self, text: str) -> _Message:
        """The message's content terms, corrected and weighted, in order and without repeats."""
        terms: dict[str, _Term] = {}
        sequence: list[tuple[int, str]] = []

        def add(at: int, term: str, factor: float, known: bool = True) -> None:
            sequence.append((at, term))
            old = terms.get(term)
            if old is None or old.factor < factor:
                weight = self._idf[term] if known else self._unknown_idf
                terms[term] = _Term(term, weight, factor, known)

        corrections = 0
        previous = ""
        for position, word in enumerate(map(_canonical, raw_words(text))):
            if word in STOP_WORDS:
                previous = ""
                continue
            joined = stem(previous + word) if previous else ""
            if joined in self._idf:  # "bed sores" where the knowledge base says "bedsores"
                add(position, joined, 1.0)
            previous = word
            term = self._surface.get(word)
            if term is None:
                stemmed = stem(word)
                if stemmed in STOP_WORDS:
                    term = ""
                elif stemmed in self._idf:
                    term = stemmed
            if term is not None:
                if term:  # "" is a stop word only the knowledge base spells this way
                    add(position, term, 1.0)
                continue
            if corrections < MAX_CORRECTIONS and len(word) <= MAX_WORD_LENGTH:
                corrections += 1
                fixed = self._correct(word)
                if fixed is not None:
                    if self._surface[fixed]:  # a typo of a stop word ("wich") just vanishes
                        add(position, self._surface[fixed], CORRECTED_FACTOR)
                    continue
                parts = self._split(word)
                if parts:
                    for part in parts:
                        add(position, part, CORRECTED_FACTOR)
                    continue
            add(position, stem(word), 1.0, known=False)
        return _Message(list(terms.values()), tuple(sequence))

    def _out_of_scope_phrase(self, message: _Message) -> bool:
        """Whether the message says one of the out-of-scope phrasings, words close together.

        Closeness matters: "face massage" is out of scope, "lie face down for the massage"
        is not, and "a clot in his leg, can I still massage his back" is not "leg massage".
        A phrasing's words must all fall within its length plus PHRASE_SLACK words.
        """
        if frozenset(term for _at, term in message.sequence) in self._out_of_scope_exact:
            return True  # the whole message is one of them, even "what time is it"
        hits = [(at, term) for at, term in message.sequence if term in self._out_of_scope_terms]
        said = frozenset(term for _at, term in hits)
        for phrase in self._out_of_scope:
            if not phrase <= said:  # most phrasings are not said at all; a C set test
                continue
            found = [(at, term) for at, term in hits if term in phrase]
            if _close_together(found, len(phrase), len(phrase) - 1 + PHRASE_SLACK):
                return True
        return False

    def _split(self, word: str) -> tuple[str, str] | None:
        """Two knowledge-base terms run together ("backrub"), or None."""
        for cut in range(3, len(word) - 2):
            left, right = stem(word[:cut]), stem(word[cut:])
            if left in self._idf and right in self._idf:
                return left, right
        return None

    # -- scoring -----------------------------------------------------------------------

    def _score(self, terms: list[_Term], pool: int) -> list[_Scored]:
        """The `pool` entries sharing most with the message, plus the out-of-scope entry,
        best first."""
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
        # The out-of-scope entry is always weighed: the decision compares it with the best.
        out_of_scope = len(self._ids) - 1
        if out_of_scope not in chosen:
            coverage[out_of_scope] = sum(
                mass * self._postings[term].get(out_of_scope, 0.0) for term, mass in query.items()
            )
            if coverage[out_of_scope]:
                chosen.append(out_of_scope)
        scored = []
        asked = frozenset(query)
        strong_entries = frozenset().union(*(self._strong_entries[term] for term in asked))
        for index in chosen:
            phrasing = 0.0
            best_overlap = 0.0
            # How much of the message each phrasing sharing a word with it says.
            overlaps: dict[int, float] = {}
            with_term = self._phrasings_with[index]
            for term, mass in query.items():
                for position in with_term.get(term, ()):
                    overlaps[position] = overlaps.get(position, 0.0) + mass
            if overlaps:
                phrasings = self._phrasings[index]
                best_overlap = max(overlaps.values())
                phrasing = max(
                    overlap / math.sqrt(total * phrasings[position].weight)
                    for position, overlap in overlaps.items()
                )
            share = coverage[index] / total
            if index == out_of_scope:
                # The out-of-scope phrasings are unrelated to each other ("car oil", "massage
                # my feet", "treat a burn at home"): together they "cover" any long message
                # about oil, feet and home. Only the nearest single phrasing counts.
                share = min(share, OUT_OF_SCOPE_EVIDENCE * best_overlap / total)
            score = 100.0 * min(1.0, COVERAGE_SHARE * share + PHRASING_SHARE * phrasing)
            scored.append(_Scored(index, score, index in strong_entries))
        scored.sort(key=lambda s: s.score, reverse=True)
        return scored

    def match(self, text: str) -> Match:
        """Decide how to reply to `text`: answer one topic, clarify, or fall back."""
        message = self._analyse(text)
        if self._out_of_scope_phrase(message):
            # The message says a phrasing the knowledge base says never to answer ("knead
            # bread dough"): whatever else it shares with a topic is incidental.
            return Match("fallback", None, ())
        scored = self._score(message.terms, RERANK_POOL)
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
        # Words only out-of-scope phrasings use ("car", "hair") count as unknown here too.
        foreign = len(self._ids) - 1
        unknown = sum(
            1 for t in message.terms if not t.known or self._postings[t.term].keys() == {foreign}
        )
        known = len(message.terms) - unknown
        if (
            top.strong
            and not (unknown and known <= SHORT_KNOWN_TERMS)
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
        terms = self._analyse(text).terms
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


def _evidence(field_weight: float, phrasings: int) -> float:
    """How strongly a term points at a topic: its strongest field's weight, scaled up from
    CENTRAL_BASE to all of it as more of the topic's phrasings use the term."""
    centrality = min(1.0, phrasings / CENTRAL_USES)
    return field_weight * (CENTRAL_BASE + (1.0 - CENTRAL_BASE) * centrality)


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


def _weighted_texts(topic: Topic) -> list[tuple[float, str]]:
    """Every text of a topic with how strongly a word in it points at the topic."""
    texts = [(TITLE_WEIGHT, topic.title), (ALIAS_WEIGHT, topic.id.replace("-", " "))]
    texts += [(ALIAS_WEIGHT, alias) for alias in topic.aliases]
    texts += [(QUESTION_WEIGHT, question) for question in topic.questions]
    texts.append((ANSWER_WEIGHT, topic.answer))
    texts += [(ANSWER_WEIGHT, item) for item in topic.checklist]
    return texts
