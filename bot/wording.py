"""Words of a chat message as the matcher sees them: markup stripped, folded, stemmed,
and weighed by whether they are in the question or in the story around it.

This is language, not domain knowledge: function words, chat spellings and a light stemmer.
What the knowledge base means by its words (synonyms, words that only say who) lives in the
knowledge base's `vocabulary:`.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

# Work caps for very long messages: a 4,000-character ramble still gets matched, on its
# first words, and only a bounded number of words pay for a fuzzy look-up.
MAX_CHARS = 4000
MAX_WORDS = 100

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
    one ones everything something anything nothing
    nah nice lovely alright honestly literally obviously involve involves improve properly
    correctly
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

# Chat spellings and abbreviations that edit distance cannot reach (too short or too far).
CHAT_SPELLINGS = {
    "u": "you", "ur": "your", "r": "are", "y": "why", "pls": "please", "plz": "please",
    "thx": "thanks", "thnx": "thanks", "thanx": "thanks", "ty": "thanks", "b4": "before",
    "wat": "what", "wot": "what",
    "wut": "what", "wht": "what", "shud": "should", "shld": "should", "cud": "could",
    "wud": "would", "abt": "about", "bc": "because", "coz": "because", "cos": "because",
    "cuz": "because", "tho": "though", "thru": "through", "n": "and", "w": "with",
    "mins": "minutes", "min": "minute", "hr": "hour", "hrs": "hours", "sec": "second",
    "secs": "seconds", "shd": "should", "bcuz": "because", "diff": "difference",
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

# A sentence that opens with one of these, or uses one of the second set anywhere, holds the
# question; the sentences around it are the story. Chat openers ("so", "ok", "hi") are
# passed over to find how a sentence opens.
_QUESTION_OPENERS_TEXT = """
    how what where when which who why whats hows wheres should shall can could is are do does
    did will would may might any tips help
"""
QUESTION_OPENERS = frozenset(_QUESTION_OPENERS_TEXT.split())
_QUESTION_ANYWHERE_TEXT = "how what why should whats hows"
QUESTION_ANYWHERE = frozenset(_QUESTION_ANYWHERE_TEXT.split())
_CHAT_OPENERS_TEXT = """
    so and but ok okay also um hi hey hello right well honestly like then oh yeah please anyway
    sorry
"""
CHAT_OPENERS = frozenset(_CHAT_OPENERS_TEXT.split())

# In the knowledge base's phrases ("their stroke"), any of these and a person's possessive
# ("dads", "mums": an ignored word and "s") stand for "their".
POSSESSIVES = frozenset({"his", "her", "their"})
_THEIR = "their"

_WORD_PATTERN = re.compile(r"[a-z0-9]+")
_APOSTROPHES = str.maketrans("", "", "'\u2019\u2018`")
# Telegram HTML and Markdown, and what people paste from the web: formatting, not words.
_TAG = re.compile(r"</?[a-zA-Z][^<>]{0,200}>")
_BREAK = re.compile(r"[.!?;\n]")
_TRAILING = ".!?; \t\r\n"
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\s*\n+\s*|(?<=\?)(?=\S)")


def strip_markup(text: str) -> str:
    """Text without HTML tags and entities (`<b>how</b> do i` -> `how do i`)."""
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return text


def raw_words(text: str, limit: int | None = MAX_WORDS) -> list[str]:
    """Lower-case ASCII words of `text`, accents and apostrophes removed ("what's" -> "whats"):
    the first `limit` of a message (None: all, for the knowledge base's own texts)."""
    if limit is not None:
        text = text[:MAX_CHARS]
    words = _WORD_PATTERN.findall(_folded(strip_markup(text)))
    return words if limit is None else words[:limit]


def _folded(text: str) -> str:
    """Lower case, accents and apostrophes removed; punctuation and spacing kept."""
    folded = text.casefold()
    if not folded.isascii():  # most text is plain ASCII; decomposing it is wasted work
        folded = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return folded.translate(_APOSTROPHES)


@dataclass(frozen=True)
class Sentence:
    words: list[str]
    question: bool  # holds the question, not the story around it


def sentences(text: str) -> list[Sentence]:
    """The message's sentences, each marked as question or story.

    A sentence is a question when it ends with "?", opens like one ("is it ok", "can i") or
    asks "how", "what", "should" anywhere. In a message that mixes both, the question
    sentences are what it asks and the rest is context ("he drove 9 hours yesterday. is that
    a good idea?"); a message that is all question or all story is all question.
    """
    text = strip_markup(text[:MAX_CHARS])
    if not _BREAK.search(text.rstrip(_TRAILING)):
        # Most messages are one sentence: no need to split, nor to tell question from story.
        words = raw_words(text)
        return [Sentence(words, True)] if words else []
    found: list[Sentence] = []
    # Folded once, then split: folding leaves the punctuation that ends a sentence alone.
    for part in _SENTENCE_END.split(_folded(text)):
        words = _WORD_PATTERN.findall(part)[:MAX_WORDS]
        if not words:
            continue
        opener = next((w for w in words if w not in CHAT_OPENERS), "")
        asks = (
            part.rstrip().endswith("?")
            or canonical(opener) in QUESTION_OPENERS
            or not QUESTION_ANYWHERE.isdisjoint(map(canonical, words))
        )
        found.append(Sentence(words, asks))
    if sum(len(s.words) for s in found) > MAX_WORDS:
        found = _within_budget(found)
    if all(s.question for s in found) or not any(s.question for s in found):
        return [Sentence(s.words, True) for s in found]
    return found


def story_and_question(text: str) -> tuple[list[str], list[str]] | None:
    """The words of a text's question sentences and of the story around them, when it has
    both (as `sentences` reads a message); None when it does not."""
    if not _BREAK.search(text.rstrip(_TRAILING)):
        return None  # one sentence, the common case: no words to read for this
    found = sentences(text)
    asked = [w for s in found if s.question for w in s.words]
    told = [w for s in found if not s.question for w in s.words]
    return (asked, told) if asked and told else None


def _within_budget(found: list[Sentence]) -> list[Sentence]:
    """At most MAX_WORDS words of a long message: its questions first, then the story
    nearest to them, from the end, where the question of a long message usually is."""
    order = sorted(range(len(found)), key=lambda i: (not found[i].question, -i))
    budget, kept = MAX_WORDS, {}
    for i in order:
        if budget <= 0:
            break
        kept[i] = Sentence(found[i].words[:budget], found[i].question)
        budget -= len(kept[i].words)
    return [kept[i] for i in sorted(kept)]


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


# Derivational endings tried on a word the knowledge base does not know, before guessing a
# typo: "tappy" is about tapping, "gently" about gentle, "knotty" about knots.
_DERIVED_ENDINGS = ("iness", "ness", "ily", "ly", "ish", "y")


def base_forms(word: str) -> list[str]:
    """Shorter words `word` may be derived from ("tappy" -> "tapp", "tap"), longest first."""
    forms = []
    for ending in _DERIVED_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            base = word[: -len(ending)]
            forms.append(base)
            if len(base) > 3 and base[-1] == base[-2]:
                forms.append(base[:-1])  # "tapp" -> "tap", "knott" -> "knot"
            if ending.startswith("i"):
                forms.append(base + "y")  # "easily" -> "easy"
    return forms


def canonical(word: str) -> str:
    """The spelling used for look-ups, before stemming: chat spellings, numbers."""
    word = CHAT_SPELLINGS.get(word, word)
    if word.isdigit() or word in NUMBER_WORDS:
        return NUMBER_TOKEN
    return word


@dataclass(frozen=True)
class Phrases:
    """The knowledge base's phrases that mean one word ("had a stroke": the illness, not a
    massage stroke), ready to find in a text's words (see `join`)."""

    by_first: Mapping[str, tuple[tuple[tuple[str, ...], str], ...]]  # longest first
    people: frozenset[str]  # words whose possessive is "their" ("dad": "dads stroke")
    starts: frozenset[str]  # every word that can open a phrase, possessives included

    @classmethod
    def of(cls, phrases: Mapping[tuple[str, ...], str], people: frozenset[str]) -> Phrases:
        by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for words, meant in phrases.items():
            keys = tuple(_possessive_key(word, people) for word in words)
            by_first.setdefault(keys[0], []).append((keys, meant))
        starts = set(by_first)
        if _THEIR in starts:
            starts |= POSSESSIVES | {person + "s" for person in people}
        return cls(
            {first: tuple(sorted(found, key=lambda item: -len(item[0])))
             for first, found in by_first.items()},
            people,
            frozenset(starts),
        )

    def join(self, words: list[str]) -> list[str]:
        """`words` with each phrase in them replaced by the word it means."""
        if self.starts.isdisjoint(words):
            return words  # the common case: no word can open a phrase
        keys = [_possessive_key(word, self.people) for word in words]
        joined: list[str] = []
        at = 0
        while at < len(words):
            for phrase, meant in self.by_first.get(keys[at], ()):
                if tuple(keys[at:at + len(phrase)]) == phrase:
                    joined.append(meant)
                    at += len(phrase)
                    break
            else:
                joined.append(words[at])
                at += 1
        return joined


def _possessive_key(word: str, people: frozenset[str]) -> str:
    if word in POSSESSIVES or (word[-1:] == "s" and word[:-1] in people):
        return _THEIR
    return word
