"""The learned half of the detector: a logistic regression over words and word pairs.

It reads the normalised text (``_normalise.normalise``): every distinct word and pair of
adjacent words is a feature, the features of one text weigh ``1 / sqrt(count)`` each, and the
score is the logistic of their weighted sum. A text longer than ``WINDOW`` words is read in
overlapping windows and scores as its most suspicious one, so an instruction planted in a long
document is not diluted by the document around it.

The weights (``model.json``, ~{size} features) were fitted by
``bench/data/injection_public/train.py`` on the tuning half of the public evaluation set only;
``bench/injection.py`` reports the held-out half. No package installable here ships a
prompt-injection classifier that runs offline without PyTorch (docs/PERFORMANCE.md names the
ones checked), and a linear model over words costs ~0.1 ms a message where a transformer costs
tens of milliseconds on these CPUs.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

MODEL = Path(__file__).with_name("model.json")
WINDOW = 48  # words
# Fewer words than this and the classifier abstains (the rules still apply): on a handful of
# words its score rests on one or two of them ("you are dull", "Shipping rules.").
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


@dataclass(frozen=True, slots=True)
class Classifier:
    weights: dict[str, float]
    bias: float
    threshold: float

    def logit(self, words: list[str]) -> float:
        found = features(words)
        if not found:
            return self.bias
        total = sum(self.weights.get(f, 0.0) for f in found)
        return self.bias + total / math.sqrt(len(found))

    def score(self, norm: str) -> float:
        """Probability-like score in [0, 1] of the most suspicious window of ``norm``."""
        best = max(self.logit(words) for words in windows(norm))
        return 1.0 / (1.0 + math.exp(-best))

    def flags(self, norm: str) -> bool:
        if len(_WORD.findall(norm)) < MIN_WORDS:
            return False
        return self.score(norm) >= self.threshold


@cache
def classifier() -> Classifier:
    data = json.loads(MODEL.read_text())
    return Classifier(data["weights"], data["bias"], data["threshold"])
