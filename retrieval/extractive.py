"""Extractive answers: no model call — the retrieved sentences that best answer the question,
each cited. The answer mode of tenants that want no generative model, and the degradation when
every allowed tier is down or the budget is spent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.embeddings import Embedder
from retrieval.grounding import content_words, sentences


@dataclass(frozen=True, slots=True)
class Extract:
    text: str
    source: int  # 1-based number of the source it comes from
    score: float


def extract(
    question: str,
    sources: Sequence[str],
    embedder: Embedder,
    *,
    limit: int = 3,
    min_score: float = 0.35,
) -> list[Extract]:
    """The best ``limit`` sentences of ``sources`` for ``question``, in source order.

    Score: cosine of the sentence to the question, plus a small bonus for shared content words
    (exact terms — names, numbers — matter to a reader more than the embedding shows).
    """
    candidates = [
        (n, sentence)
        for n, text in enumerate(sources, start=1)
        for sentence in sentences(" ".join(text.split()))
        if len(content_words(sentence)) >= 2
    ]
    if not candidates:
        return []
    vectors = embedder.embed([question, *(s for _, s in candidates)])
    cosine = vectors[1:] @ vectors[0]
    asked = content_words(question)
    scored = []
    for (n, sentence), similarity in zip(candidates, cosine, strict=True):
        overlap = len(asked & content_words(sentence)) / len(asked) if asked else 0.0
        scored.append(Extract(sentence, n, float(similarity) + 0.2 * overlap))
    best = sorted(scored, key=lambda e: -e.score)[:limit]
    chosen = [e for e in best if e.score >= min_score]
    order = {id(e): i for i, e in enumerate(scored)}
    return sorted(chosen, key=lambda e: order[id(e)])


def render(extracts: Sequence[Extract]) -> str:
    return " ".join(f"{e.text.rstrip()} [{e.source}]" for e in extracts)


__all__ = ["Extract", "extract", "render"]
