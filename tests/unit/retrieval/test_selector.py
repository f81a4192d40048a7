"""The learned sentence ranker: it quotes the sentence that holds the asked fact where an
on-topic rival of another chunk wins on the hand-weighted score, and its weights file must fit
the features it reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from retrieval.adapters.minilm import OnnxMiniLMEmbedder
from retrieval.extractive import extract, score
from retrieval.selector import FEATURES, WEIGHTS, Selector, load, selector

RIVALS = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "answers" / "rival-sentences.json").read_text()
)


@pytest.mark.parametrize("case", RIVALS, ids=[c["squad_id"] for c in RIVALS])
def test_the_answer_quotes_the_chunk_that_holds_the_fact_not_an_on_topic_rival(
    case: dict[str, object],
) -> None:
    embedder = OnnxMiniLMEmbedder()
    question, sources, contexts = case["question"], case["sources"], case["contexts"]
    assert isinstance(question, str) and isinstance(sources, list) and isinstance(contexts, list)
    answers = [str(a) for a in case["answers"]]  # type: ignore[attr-defined]
    # The hand-weighted score alone would quote a rival chunk without the answer ...
    hand = max(score(question, sources, embedder, contexts=contexts), key=lambda e: e.score)
    assert not any(a in sources[hand.source - 1] for a in answers)
    # ... the answer quotes the chunk that holds it, first.
    found = extract(question, sources, embedder, contexts=contexts)
    assert found and any(a in sources[found[0].source - 1] for a in answers)


def test_the_shipped_weights_fit_the_features_and_record_where_they_come_from() -> None:
    fitted = json.loads(WEIGHTS.read_text())
    assert tuple(fitted["features"]) == FEATURES
    assert len(selector().weights) == len(FEATURES)
    assert "SQuAD v1.1 training set" in fitted["data"]["source"]


def test_weights_fitted_for_other_features_are_refused(tmp_path: Path) -> None:
    stale = json.loads(WEIGHTS.read_text())
    stale["features"], stale["weights"] = stale["features"][:-1], stale["weights"][:-1]
    path = tmp_path / "selector.json"
    path.write_text(json.dumps(stale))
    with pytest.raises(RuntimeError, match="other features"):
        load(path)


def _aligned(question: str, sources: list[str]) -> dict[str, float]:
    """Each sentence's token alignment to the question, as the ranker reads it."""
    blank = Selector(np.zeros(len(FEATURES)))
    scored = score(question, sources, OnnxMiniLMEmbedder(), ranked=True, ranker=blank)
    return {e.text: e.features[FEATURES.index("aligned")] for e in scored}


def test_a_sentence_is_read_with_what_its_chunk_said_before_it() -> None:
    question = "What did the fossils found in the Burgess Shale lack?"
    found = "Three species of fossils were found in the Burgess Shale of Canada."
    lacked = "All three apparently lacked tentacles but had many comb rows."
    in_its_chunk = _aligned(question, [f"{found} {lacked}"])[lacked]
    on_its_own = _aligned(question, [found, lacked])[lacked]
    assert in_its_chunk > on_its_own + 0.1


def test_a_word_of_the_asked_meaning_aligns_closer_than_a_rival_word() -> None:
    aligned = _aligned(
        "Which canal takes the Rhine water through France?",
        [
            "On the French side, the Grand Canal d'Alsace takes the water.",
            "On the Swiss side, the Linth Canal takes the water.",
        ],
    )
    french, swiss = aligned.values()
    assert french > swiss + 0.05
