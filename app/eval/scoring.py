"""Answer quality without a model: token F1 against a reference answer (SQuAD-style, after
normalising case, punctuation, articles and citation markers) and rubric coverage (the share of
required phrases the answer contains). A case's quality is the mean of the measures it has."""

from __future__ import annotations

import re
from collections import Counter

_CITATION = re.compile(r"\[\d+\]")
_NOT_WORD = re.compile(r"[^\w\s]")
_ARTICLES = {"a", "an", "the"}


def normalise(text: str) -> list[str]:
    text = _NOT_WORD.sub(" ", _CITATION.sub(" ", text.lower()))
    return [token for token in text.split() if token not in _ARTICLES]


def token_f1(answer: str, reference: str) -> float:
    got, want = normalise(answer), normalise(reference)
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def rubric_coverage(answer: str, rubric: list[str]) -> float:
    words = " " + " ".join(normalise(answer)) + " "
    met = sum(1 for phrase in rubric if " " + " ".join(normalise(phrase)) + " " in words)
    return met / len(rubric)


def quality(answer: str, reference: str | None, rubric: list[str]) -> float:
    scores = []
    if reference is not None:
        scores.append(token_f1(answer, reference))
    if rubric:
        scores.append(rubric_coverage(answer, rubric))
    return sum(scores) / len(scores)
