"""A hit's snippet: the sentences of the chunk that match the question, its words marked; pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datafiles import data_text
from holocron.extract import extract
from holocron.retrieval.fusion import convex_fusion, reciprocal_rank_fusion
from holocron.retrieval.snippets import ELLIPSIS, fold, query_words, snippet

NEW_ZEALAND = "wiki-html/readability__wikipedia-2__source.html"


def _paragraph_with(text: str, needle: str) -> str:
    return next(block for block in text.split("\n\n") if needle in block)


def test_the_new_zealand_question_shows_the_sentence_that_answers_it() -> None:
    """On the real page: the paragraph that names the capital starts with other sentences."""
    page = extract("html", data_text(NEW_ZEALAND)).text
    chunk = _paragraph_with(page, "capital city is Wellington")
    assert not chunk.startswith("New Zealand's capital city")
    shown = snippet(chunk, "What is the capital city of New Zealand?", 160)
    assert shown.text.startswith(ELLIPSIS + " New Zealand's capital city is Wellington")
    assert len(shown.text) <= 160 + 2
    assert {fold(shown.text[a:b]) for a, b in shown.highlights} == {"new", "zealand", "capital", "city"}
    assert shown.matched == query_words("What is the capital city of New Zealand?")


def test_no_matching_word_shows_the_beginning() -> None:
    text = "Bees dance to tell where flowers are. The waggle points at the sun."
    shown = snippet(text, "what is the meaning of life", 200)
    assert shown.text == text and shown.highlights == []


def test_a_long_sentence_is_windowed_around_its_first_match() -> None:
    text = " ".join(["filler words here"] * 40) + " and the needle is here " + " ".join(["more words"] * 40)
    shown = snippet(text, "needle", 80)
    assert "needle" in shown.text and shown.text.startswith(ELLIPSIS) and shown.text.endswith(ELLIPSIS)
    assert len(shown.text) <= 80 + 2


def test_function_words_never_match_and_plurals_and_possessives_do() -> None:
    assert query_words("What is the capital of the Bees?") == {"capital", "bee"}
    assert fold("Zealand's") == fold("zealand") and fold("glass") == "glass"


@given(st.text(min_size=1, max_size=400), st.text(max_size=60), st.integers(min_value=20, max_value=300))
def test_highlights_are_words_of_the_query_inside_the_snippet(text: str, query: str, width: int) -> None:
    shown = snippet(text, query, width)
    wanted = query_words(query)
    for start, end in shown.highlights:
        assert 0 <= start < end <= len(shown.text)
        assert fold(shown.text[start:end]) in wanted


# --- fusion ---------------------------------------------------------------------------------------------------


def test_convex_fusion_keeps_how_far_ahead_a_leader_is() -> None:
    """A chunk far ahead in the vector list beats one that is second in both: RRF levels them, convex does not."""
    vector = [("far-ahead", 0.90), ("second-both", 0.30), ("x", 0.29), ("y", 0.28)]
    keyword = [("z", 10.0), ("second-both", 9.0), ("w", 6.0), ("far-ahead", 5.0), ("v", 0.0)]
    rrf = reciprocal_rank_fusion({"vector": [k for k, _ in vector], "keyword": [k for k, _ in keyword]})
    convex = convex_fusion({"vector": vector, "keyword": keyword})
    assert rrf[0].key == "second-both" and convex[0].key == "far-ahead"
    assert convex[0].score == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)  # vector's best, keyword's middle
    assert convex[0].ranks == {"vector": 1, "keyword": 4}


def test_convex_fusion_weights_and_edge_cases() -> None:
    only_vector = convex_fusion({"vector": [("a", 0.9), ("b", 0.1)], "keyword": [("b", 5.0)]}, {"keyword": 0.0})
    assert [f.key for f in only_vector] == ["a", "b"] and only_vector[0].score == pytest.approx(1.0)
    flat = convex_fusion({"vector": [("a", 0.5), ("b", 0.5)], "keyword": []})
    assert [f.score for f in flat] == [pytest.approx(0.5), pytest.approx(0.5)]
    with pytest.raises(ValueError, match="not all 0"):
        convex_fusion({"vector": [("a", 1.0)]}, {"vector": 0.0})
