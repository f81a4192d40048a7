"""The learned half of the detector: two logistic regressions and the small one that joins them.

* **Words** (``Classifier``): reads the normalised text (``_normalise.normalise``); every distinct
  word and pair of adjacent words is a feature, the features of one text weigh
  ``1 / sqrt(count)`` each, and the logit is their weighted sum. A text longer than ``WINDOW``
  words is read in overlapping windows and scores as its most suspicious one, so an instruction
  planted in a long document is not diluted by the document around it.
* **Meaning** (``EmbeddingModel``): a linear model over the 384-d MiniLM sentence embedding of
  the raw message, the very vector the chat path computes for retrieval and the cache (so it
  costs one dot product). It catches what words alone miss: short rephrasings ("Share blueprint
  behind answers") and persona prompts without the usual words.
* **Stack** (``Stack``): a logistic regression over the word logit, the embedding logit and
  whether the text is short, with its own threshold. Used when the message's embedding is
  at hand (``Guard.flags_with``); without one (a retrieved chunk, a sentence of one, a caller
  with another embedding model) the word model decides alone at its own threshold
  (``Classifier.flags``), abstaining under ``MIN_WORDS`` words.

The weights (``model.json``) are fitted by ``bench/data/injection_public/train.py`` on the
tuning half of the public evaluation set and on texts that are not in the set at all
(``training.json.gz``: the sources' own training splits and unsampled rows); both thresholds
are read off out-of-fold scores of the tuning half. ``bench/injection.py`` reports the
held-out half. No package installable here ships a prompt-injection classifier that runs
offline without PyTorch (docs/PERFORMANCE.md names the ones checked).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

MODEL = Path(__file__).with_name("model.json")
WINDOW = 48  # words
# Fewer words than this and the word model alone abstains (the rules still apply): on a handful
# of words its score rests on one or two of them ("you are dull", "Shipping rules.").
MIN_WORDS = 4
STRIDE = 24
_WORD = re.compile(r"\w+")


def features(words: list[str]) -> set[str]:
    """Words and adjacent word pairs."""
    found = set(words)
    found.update(f"{a} {b}" for a, b in pairwise(words))
    return found


def windows(norm: str) -> list[list[str]]:
    words = _WORD.findall(norm)
    if len(words) <= WINDOW:
        return [words]
    return [words[i : i + WINDOW] for i in range(0, len(words) - STRIDE, STRIDE)]


def word_count(norm: str) -> int:
    return len(_WORD.findall(norm))


@dataclass(frozen=True, slots=True)
class Classifier:
    """The word model."""

    weights: dict[str, float]
    bias: float
    threshold: float

    def logit(self, words: list[str]) -> float:
        found = features(words)
        if not found:
            return self.bias
        total = sum(self.weights.get(f, 0.0) for f in found)
        return self.bias + total / math.sqrt(len(found))

    def best_logit(self, norm: str) -> float:
        """The logit of the most suspicious window of ``norm``."""
        return max(self.logit(words) for words in windows(norm))

    def score(self, norm: str) -> float:
        """Probability-like score in [0, 1] of the most suspicious window of ``norm``."""
        return 1.0 / (1.0 + math.exp(-self.best_logit(norm)))

    def flags(self, norm: str) -> bool:
        if word_count(norm) < MIN_WORDS:
            return False
        return self.score(norm) >= self.threshold


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    """A linear model over one embedding model's unit vectors."""

    model_id: str
    weights: NDArray[np.float32]
    bias: float

    def logit(self, embedding: Sequence[float] | NDArray[np.float32]) -> float:
        vector = np.asarray(embedding, dtype=np.float32)
        if vector.shape != self.weights.shape:
            raise ValueError(f"expected a {self.weights.shape[0]}-d {self.model_id} embedding")
        return float(vector @ self.weights) + self.bias


@dataclass(frozen=True, slots=True)
class Stack:
    """Joins the two logits (and shortness: ``short_below`` words) into one decision."""

    word: float
    embedding: float
    short: float
    bias: float
    short_below: int
    threshold: float  # on the stacked logit

    def logit(self, word_logit: float, embedding_logit: float, words: int) -> float:
        short = 1.0 if words < self.short_below else 0.0
        weighed = self.word * word_logit + self.embedding * embedding_logit
        return weighed + self.short * short + self.bias


@dataclass(frozen=True, slots=True)
class Guard:
    words: Classifier
    meaning: EmbeddingModel
    stack: Stack
    english: frozenset[str]  # frequent English words: which decoded reading is English

    def flags_with(
        self, word_logit: float, words: int, embedding: Sequence[float] | NDArray[np.float32]
    ) -> bool:
        """The stacked decision for a text whose best word logit (over its readings) and word
        count are given, with the embedding of its raw text."""
        logit = self.stack.logit(word_logit, self.meaning.logit(embedding), words)
        return logit >= self.stack.threshold


def load(path: Path) -> Guard:
    data = json.loads(path.read_text())
    meaning = data["embedding"]
    stack = data["stack"]
    return Guard(
        words=Classifier(data["weights"], data["bias"], data["threshold"]),
        meaning=EmbeddingModel(
            meaning["model_id"], np.asarray(meaning["weights"], dtype=np.float32), meaning["bias"]
        ),
        stack=Stack(
            stack["word"],
            stack["embedding"],
            stack["short"],
            stack["bias"],
            stack["short_below"],
            stack["threshold"],
        ),
        english=frozenset(data["english"]),
    )


@cache
def guard() -> Guard:
    return load(MODEL)


def classifier() -> Classifier:
    return guard().words
