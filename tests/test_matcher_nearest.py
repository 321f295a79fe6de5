"""The matcher's shortcut through an entry's phrasings finds what counting every one finds.

`Matcher._nearest_phrasings` skips phrasings that say only words many of the entry's
phrasings use, once none of them can matter. These tests count every phrasing instead and
check that nothing the ranking reads differs: the nearest similarity and which phrasing has
it, the nearest few that can vote, the largest overlap, and each kept phrasing's overlap.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.knowledge import KnowledgeBase
from bot.matcher import VOTERS, Matcher


@pytest.fixture(scope="module")
def matcher(knowledge: KnowledgeBase) -> Matcher:
    return Matcher(knowledge)


def counted(matcher: Matcher, index: int, telling: list[tuple[str, float]]) -> dict[int, float]:
    """Every phrasing's overlap with the message, by position, counted the plain way."""
    overlaps: dict[int, float] = {}
    for term, mass in telling:
        for position in matcher._phrasings_with[index].get(term, ()):
            overlaps[position] = overlaps.get(position, 0.0) + mass
    return overlaps


@st.composite
def messages(draw: st.DrawFn, matcher: Matcher) -> tuple[int, list[tuple[str, float]]]:
    """An entry and a message's telling terms (heaviest first), mixing words many of the
    entry's phrasings use with any of the knowledge base's."""
    index = draw(st.integers(0, len(matcher._ids) - 1))
    common = sorted(matcher._common_with[index])
    anywhere = sorted(matcher._phrasings_with[index])
    terms = draw(st.lists(st.sampled_from(common), max_size=6, unique=True)) if common else []
    terms += draw(st.lists(st.sampled_from(anywhere), max_size=10, unique=True))
    terms = list(dict.fromkeys(terms))[:16]
    masses = draw(st.lists(st.floats(0.05, 4.0), min_size=len(terms), max_size=len(terms)))
    return index, sorted(zip(terms, masses, strict=True), key=lambda item: -item[1])


def test_some_entries_have_common_words_to_take_the_shortcut(matcher: Matcher) -> None:
    assert sum(1 for common in matcher._common_with if common) > len(matcher._ids) // 2


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), floor=st.one_of(st.just(-math.inf), st.floats(0.0, 4.0)))
def test_the_shortcut_keeps_everything_the_ranking_reads(
    matcher: Matcher, data: st.DataObject, floor: float
) -> None:
    index, telling = data.draw(messages(matcher))
    overlap = index == len(matcher._ids) - 1  # the out-of-scope entry needs the largest
    vote_floor = math.inf if overlap else floor
    positions, overlaps, similarities = matcher._nearest_phrasings(
        index, telling, vote_floor, overlap
    )
    every = counted(matcher, index, telling)
    scales = matcher._phrasing_scales[index]
    every_similarity = {p: o * scales[p] for p, o in every.items()}

    assert len(set(positions)) == len(positions)
    for position, said, similarity in zip(positions, overlaps, similarities, strict=True):
        assert said == every[position]  # the same sum, to the last bit
        assert similarity == every_similarity[position]
    if not every:
        assert positions == []
        return
    nearest = max(every_similarity.values())
    assert max(similarities) == nearest
    first = min(p for p, s in every_similarity.items() if s == nearest)
    assert first in positions
    voting = sorted(s for s in every_similarity.values() if s > vote_floor)[-VOTERS:]
    kept = sorted(s for s in similarities if s > vote_floor)[-VOTERS:]
    assert kept == voting
    if overlap:
        assert max(overlaps) == max(every.values())
