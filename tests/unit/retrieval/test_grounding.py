"""Groundedness of cited answers and extractive answers, with the real MiniLM embedder."""

from __future__ import annotations

from retrieval.adapters.minilm import OnnxMiniLMEmbedder
from retrieval.extractive import extract, render
from retrieval.grounding import check

SOURCES = [
    "Employees may book hotels up to 180 euros per night in Paris and 140 euros elsewhere.",
    "First class is allowed for train journeys longer than four hours.",
]


def test_supported_cited_sentences_score_one() -> None:
    result = check(
        "Hotels in Paris are capped at 180 euros per night [1]. First class is allowed on "
        "journeys longer than four hours [2].",
        SOURCES,
    )
    assert result.score == 1.0 and result.cited == [1, 2]
    assert result.uncited_sentences == [] and result.unsupported_sentences == []


def test_uncited_and_unsupported_sentences_are_reported() -> None:
    result = check(
        "Hotels in Paris are capped at 180 euros [1]. Taxis are always reimbursed in full. "
        "Business class flights are allowed for all staff [2].",
        SOURCES,
    )
    assert result.uncited_sentences == ["Taxis are always reimbursed in full."]
    assert result.unsupported_sentences == ["Business class flights are allowed for all staff [2]."]
    assert result.score == round(1 / 3, 3)


def test_citations_to_sources_the_asker_did_not_get_are_removed() -> None:
    result = check("Paris hotels: 180 euros per night [1][7].", SOURCES)
    assert "[7]" not in result.answer and result.cited == [1]


def test_a_paraphrase_is_supported_semantically() -> None:
    result = check(
        "Long rail trips of over four hours may be taken in first class [2].",
        SOURCES,
        embedder=OnnxMiniLMEmbedder(),
    )
    assert result.score == 1.0


def test_non_factual_sentences_need_no_citation() -> None:
    result = check("The sources do not say how taxis are handled.", SOURCES)
    assert result.score == 1.0 and result.uncited_sentences == []


def test_extractive_answers_cite_the_sentences_they_quote() -> None:
    extracts = extract(
        "How much can I spend on a hotel in Paris?", SOURCES, OnnxMiniLMEmbedder(), limit=1
    )
    assert [e.source for e in extracts] == [1]
    assert render(extracts).endswith("[1]") and "180 euros" in render(extracts)
