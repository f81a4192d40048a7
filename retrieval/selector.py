"""Which retrieved sentence answers the question: a linear ranker over features of each
sentence, fitted on public data that the answer benchmark does not hold.

``retrieval.extractive`` scores every sentence of the retrieved chunks; this module turns what
it measured (how much of the question's specific vocabulary the sentence and its neighbours
hold, its embedding's cosine to the question, how closely its tokens, read in their chunk,
match the question's terms, the chunk's search rank, ...) into one feature row per sentence,
and ranks the rows with weights read from ``assets/sentence-selector.json``.

The weights are a conditional logit (a softmax over the sentences of one retrieval, those that
hold the answer as the target) fitted by ``tools/train_selector.py`` on what the ranker ranks in
the product: retrievals of the real search. Articles of the SQuAD v1.1 *training* set (CC BY-SA
4.0; the benchmark's come from the development set) are laid out into corpora as the answer
benchmark's is, ingested into an embedded server through the API, and each question's chunks
come from ``POST /v1/search``. The file records the data, the seed and the held-out top-1
accuracy next to the hand-weighted score's. The ranker only orders sentences: whether any of
them answers (abstention) is still the evidence test of ``retrieval.extractive``.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from retrieval.grounding import plain
from retrieval.text import root

WEIGHTS = Path(__file__).parent / "assets" / "sentence-selector.json"

# What the question asks for, and what a sentence holds of it.
HOW_MUCH = re.compile(
    r"\b(how (much|many|long|old|far|often|large|big|high)|what (is|was) the "
    r"(amount|number|limit|rate|cost|price|percentage|size|population|maximum|minimum)|"
    r"what (year|percentage|amount|number)|in what year)\b",
    re.I,
)
WHEN = re.compile(r"^\s*(when|what (year|date|day|month|century))\b", re.I)
WHO = re.compile(r"^\s*(who|whom|whose|which (person|company|country|city))\b", re.I)
_WHERE = re.compile(r"\bwhere\b", re.I)
_WHY = re.compile(r"\bwhy\b", re.I)
DIGIT = re.compile(r"\d")
NAME_INSIDE = re.compile(r"\s[A-Z][a-z]")
_YEAR = re.compile(r"\b1\d{3}\b|\b20\d{2}\b")
_PERCENT = re.compile(r"%|\bper ?cent\b", re.I)
_WORD = re.compile(r"[a-z0-9]+")
_DIGITS = re.compile(r"\d+")
_THOUSANDS = re.compile(r"(?<=\d)[,\u202f\u00a0](?=\d{3}\b)")

QUESTION_KINDS = ("how_much", "when", "who", "where", "why", "other")
SENTENCE_HOLDS = ("digit", "name", "year", "percent")
FEATURES = (
    "coverage_own",  # the question's rarity-weighted terms the sentence holds
    "coverage_near",  # the same with its neighbours in the chunk
    "cosine",  # MiniLM cosine of the sentence to the question
    "cosine_before",  # the same of the sentence read with the one before it in its chunk
    "cosine_after",  # the same of the sentence read with the one after it
    "cosine_best",  # the highest of the three
    "aligned",  # how closely its tokens, read in their chunk, match the question's terms
    "aligned_rare",  # the same, each question term weighted by its rarity
    "novel",  # it says something besides the question's own words
    "unanchored",  # its chunk never says a number the question names
    "bigrams",  # share of the question's word pairs it holds in order
    "spread",  # how far apart the question's words lie in it
    "rarest",  # it holds the question's rarest term
    "length",  # log of its length in words
    "search_rank",  # its chunk's place in the search, over five
    "unasked",  # share of its words that the question does not use
    "figures_held",  # share of the numbers the question names ("in 1966") that it says
    "figures_none",  # the question names numbers and it says none of them
    *SENTENCE_HOLDS,
    *(f"{kind}*{holds}" for kind in QUESTION_KINDS for holds in SENTENCE_HOLDS),
)


def numbers(text: str) -> set[str]:
    """The whole numbers a text says, thousands separators read ("2,000" says 2000, not 000;
    "1,400" does not say 400)."""
    return set(_DIGITS.findall(_THOUSANDS.sub("", text)))


def question_kind(question: str) -> str:
    if HOW_MUCH.search(question):
        return "how_much"
    if WHEN.match(question):
        return "when"
    if WHO.match(question):
        return "who"
    if _WHERE.search(question):
        return "where"
    if _WHY.search(question):
        return "why"
    return "other"


@functools.lru_cache(maxsize=20_000)  # the same chunks come back request after request
def _roots(text: str) -> tuple[str, ...]:
    return tuple(root(w) for w in _WORD.findall(plain(text).lower()))


@dataclass(frozen=True, slots=True)
class Question:
    """What the features need of the question, computed once per retrieval."""

    kind: str
    asked: frozenset[str]  # its terms, as ``retrieval.extractive`` reads them
    pairs: frozenset[tuple[str, str]]  # its word pairs that hold one of those terms
    rarest: frozenset[str]  # its terms of the highest weight
    shaping: frozenset[str]  # the words that shape a question without naming its topic
    figures: frozenset[str]  # the numbers it names

    @classmethod
    def of(
        cls,
        question: str,
        asked: set[str],
        weight: dict[str, float],
        shaping: frozenset[str],
    ) -> Question:
        words = _roots(question)
        top = max(weight.values(), default=0.0)
        return cls(
            kind=question_kind(question),
            asked=frozenset(asked),
            pairs=frozenset(
                (a, b) for a, b in itertools.pairwise(words) if a in asked or b in asked
            ),
            rarest=frozenset(t for t, w in weight.items() if top and w == top),
            shaping=frozenset(root(w) for w in shaping),
            figures=frozenset(numbers(question)),
        )


def features(
    question: Question,
    sentence: str,
    held: set[str],
    *,
    own: float,
    near: float,
    cosine: float,
    windows: tuple[float, float],
    aligned: tuple[float, float],
    novel: bool,
    unanchored: bool,
    search_rank: int,
) -> list[float]:
    """One row in the order of ``FEATURES``; ``held``: the sentence's terms; ``windows``: the
    cosines of the sentence read with the one before it and with the one after it;
    ``aligned``: its token alignment to the question's terms, plain and rarity-weighted."""
    words = _roots(sentence)
    pairs = set(itertools.pairwise(words))
    places = [k for k, w in enumerate(words) if w in question.asked]
    spread = (max(places) - min(places) + 1) / len(places) if places else 0.0
    holds = [
        1.0 if DIGIT.search(sentence) else 0.0,
        1.0 if NAME_INSIDE.search(sentence) else 0.0,
        1.0 if _YEAR.search(sentence) else 0.0,
        1.0 if _PERCENT.search(sentence) else 0.0,
    ]
    kinds = [1.0 if question.kind == kind else 0.0 for kind in QUESTION_KINDS]
    said = question.figures & numbers(sentence) if question.figures else frozenset()
    return [
        own,
        near,
        cosine,
        *windows,
        max(cosine, *windows),
        *aligned,
        float(novel),
        float(unanchored),
        len(question.pairs & pairs) / max(1, len(question.pairs)),
        min(spread, 5.0) / 5.0,
        1.0 if question.rarest & held else 0.0,
        math.log(1 + len(words)) / 4,
        search_rank / 5,
        len(set(words) - question.asked - question.shaping) / max(1, len(words)),
        len(said) / len(question.figures) if question.figures else 0.0,
        1.0 if question.figures and not said else 0.0,
        *holds,
        *(k * h for k in kinds for h in holds),
    ]


@dataclass(frozen=True, slots=True)
class Selector:
    weights: NDArray[np.float64]

    def rank(self, rows: Sequence[Sequence[float]]) -> NDArray[np.float64]:
        """Each row's log-odds of being the sentence that answers (up to a shared constant)."""
        if not rows:
            return np.zeros(0)
        return np.asarray(rows, dtype=np.float64) @ self.weights


def load(path: Path) -> Selector:
    """Fitted weights; a file fitted for another feature list is refused, not misread."""
    fitted = json.loads(path.read_text())
    if tuple(fitted["features"]) != FEATURES or len(fitted["weights"]) != len(FEATURES):
        raise RuntimeError(f"{path} was fitted for other features: run tools/train_selector.py")
    return Selector(np.asarray(fitted["weights"], dtype=np.float64))


@functools.cache
def selector() -> Selector:
    """The shipped weights (``WEIGHTS``), read once."""
    return load(WEIGHTS)


__all__ = ["FEATURES", "Question", "Selector", "features", "load", "question_kind", "selector"]
