"""The Presidio internals that dlp/adapters/presidio.py overrides or calls, checked on the
installed release: a release that renames, re-signs or stops using one fails here (and the
adapter's ``PRESIDIO_SUPPORTED`` range fails its import first)."""

from __future__ import annotations

import inspect

from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from dlp.adapters import presidio
from kernel.supply_chain import require_version


def parameters(function: object) -> list[str]:
    return [name for name in inspect.signature(function).parameters if name != "self"]  # type: ignore[arg-type]


def test_the_installed_presidio_is_the_supported_release() -> None:
    require_version("presidio-analyzer", presidio.PRESIDIO_SUPPORTED, user="test")
    require_version("presidio-anonymizer", presidio.PRESIDIO_SUPPORTED, user="test")


def test_the_spacy_engine_internals_keep_their_signatures() -> None:
    assert parameters(SpacyNlpEngine._doc_to_nlp_artifact) == ["doc", "language"]
    assert parameters(SpacyNlpEngine._get_entities) == ["doc"]
    assert parameters(SpacyNlpEngine._get_scores_for_entities) == ["doc"]
    assert parameters(SpacyNlpEngine._get_updated_entities) == ["entities", "scores"]
    # process_text is public but the adapter replaces it: it must still go through the artifact
    # builder that the adapter overrides.
    assert "_doc_to_nlp_artifact" in inspect.getsource(SpacyNlpEngine.process_text)


def test_the_phone_recognizer_builds_its_results_where_the_adapter_calls_it() -> None:
    assert parameters(PhoneRecognizer._get_recognizer_result) == [
        "match",
        "text",
        "region",
        "nlp_artifacts",
    ]


def test_the_context_enhancer_finds_tokens_and_copies_results_where_the_adapter_expects() -> None:
    assert isinstance(
        inspect.getattr_static(LemmaContextAwareEnhancer, "_find_index_of_match_token"),
        staticmethod,
    )
    assert parameters(LemmaContextAwareEnhancer._find_index_of_match_token) == [
        "word",
        "start",
        "tokens",
        "tokens_indices",
    ]
    # The adapter hands results it alone holds in a list whose deep copy is itself: the
    # enhancer must copy them with copy.deepcopy for that to skip the copy.
    source = inspect.getsource(LemmaContextAwareEnhancer.enhance_using_context)
    assert "copy.deepcopy(raw_results)" in source
