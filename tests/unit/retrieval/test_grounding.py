"""Groundedness of cited answers and extractive answers, with the real MiniLM embedder."""

from __future__ import annotations

from retrieval.adapters.minilm import OnnxMiniLMEmbedder
from retrieval.extractive import extract, render
from retrieval.grounding import check, missing_claims

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


POLICY = [
    "Hotels up to 180 euros a night in Paris, 140 euros elsewhere in France. Meals are "
    "reimbursed up to 40 euros a day.",
    "Alcohol is never reimbursed. Trips over 2,000 euros must be approved by the finance "
    "director before booking.",
]


def test_a_marker_after_the_final_stop_belongs_to_its_sentence() -> None:
    result = check(
        "Hotels up to 180 euros a night in Paris, 140 euros elsewhere in France. [1] Alcohol "
        "is never reimbursed. [2]",
        POLICY,
    )
    assert result.score == 1.0 and result.cited == [1, 2]
    assert [c.cited for c in result.checks] == [(1,), (2,)]


def test_a_wrong_number_is_unsupported_however_many_words_overlap() -> None:
    wrong = check("The hotel limit per night in Paris is 120 euros [1].", POLICY)
    assert wrong.score == 0.0 and wrong.checks[0].reason == "claim:120"
    meals = check("The meal allowance is 10 euros per day [1].", POLICY)
    assert meals.unsupported_sentences == ["The meal allowance is 10 euros per day [1]."]


def test_numbers_match_across_thousands_separators_and_number_words() -> None:
    assert check("Trips over 2000 euros need the finance director's approval [2].", POLICY).passed
    assert check(
        "First class is allowed on train journeys longer than 4 hours [2].", SOURCES
    ).passed


def test_a_name_the_source_does_not_hold_is_unsupported() -> None:
    sentence = "Trips over 2,000 euros must be approved by Dr. Martin [2]."
    assert not check(sentence, POLICY).passed
    assert "martin" in missing_claims(sentence, POLICY[1])


def test_a_dropped_negation_is_unsupported() -> None:
    result = check("Alcohol is reimbursed [2].", POLICY)
    assert not result.passed and result.checks[0].reason == "negation"
    assert check("Alcohol is not reimbursed [2].", POLICY).passed


def test_sentences_keep_abbreviations_decimals_and_list_items_whole() -> None:
    from retrieval.grounding import sentences

    assert sentences("It was founded in 1923 by Dr. Smith in St. Louis. It cost $1.5 million.") == [
        "It was founded in 1923 by Dr. Smith in St. Louis.",
        "It cost $1.5 million.",
    ]
    assert sentences("Rules:\n- Hotels are booked centrally\n- Meals up to 40 euros") == [
        "Rules:",
        "- Hotels are booked centrally",
        "- Meals up to 40 euros",
    ]


def test_extractive_answers_put_the_asked_fact_first_and_never_repeat_a_sentence() -> None:
    embedder = OnnxMiniLMEmbedder()
    sources = [*POLICY, POLICY[0]]
    extracts = extract("What is the meal allowance per day?", sources, embedder)
    assert extracts[0].text == "Meals are reimbursed up to 40 euros a day."
    assert len({e.text for e in extracts}) == len(extracts) <= 3
    approval = extract("Who must approve trips over 2000 euros?", POLICY, embedder)
    assert "finance director" in approval[0].text and approval[0].source == 2


def test_extraction_abstains_when_no_sentence_answers() -> None:
    assert extract("What is the mileage rate for private cars?", POLICY, OnnxMiniLMEmbedder()) == []


def test_a_misspelt_question_word_is_read_as_the_word_the_sources_hold() -> None:
    embedder = OnnxMiniLMEmbedder()
    sources = [
        "The racial makeup of Fresno was 49.6% White and 8.3% African American.",
        "Fresno is the fifth-largest city in California.",
    ]
    found = extract("What was the percentage of whit people in Fresno?", sources, embedder)
    assert found and "49.6%" in found[0].text
    # The same question with a word no source is one slip from stays unanswered.
    assert extract("What was the percentage of zzyzx people in Fresno?", sources, embedder) == []


def test_a_chunk_without_the_number_the_question_names_is_not_quoted() -> None:
    sources = [
        "The geological period called the Quaternary began 2.6 million years ago.",
        "Fossils from 505 million years ago date from the mid-Cambrian.",
    ]
    question = "What was the period called that was 505 million years ago?"
    found = extract(question, sources, OnnxMiniLMEmbedder())
    assert [e.source for e in found] == [2] and "mid-Cambrian" in found[0].text


def test_a_pleasantry_or_a_hedge_cannot_carry_an_uncited_claim() -> None:
    assert check("Hello! I hope this helps.", POLICY).passed
    assert check("The documents do not say how taxis are handled.", POLICY).passed
    for smuggled in (
        "Hi, the hotel limit in Paris is 500 euros.",
        "The documents do not say, but taxis are always free.",
        "Thanks for asking, hotels in Paris are unlimited for Dr. Martin.",
        "Overall, alcohol is reimbursed.",
    ):
        assert not check(smuggled, POLICY).passed, smuggled
