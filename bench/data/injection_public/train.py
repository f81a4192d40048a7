"""Fit the injection guard's classifier (``dlp/injection/model.json``) on the tuning half.

Logistic regression over the words and word pairs of the normalised text (the features of
``dlp.injection._classifier``), L2-regularised, classes weighted to balance, fitted by full-batch
gradient descent
with numpy. Only ``split == "tuning"`` items of ``injection.json.gz`` are read:
the direct messages (the encoded ones as their decoded text: a text that decodes is classified
on what it decodes to), and the sentences of the tuning half of the indirect and clean
documents. The
regularisation and the threshold are chosen by five-fold cross-validation inside the tuning
half: the threshold is the lowest out-of-fold score that keeps the false-positive rate of the
tuning benign items at or under ``TUNING_FPR`` (a threshold read off the items the model was
fitted on would be far too low). Features used by fewer than ``MIN_COUNT`` tuning texts are
dropped.

    python bench/data/injection_public/train.py

Deterministic: same data, same weights (rounded to 4 decimals).
"""

from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from dlp.injection import normalise
from dlp.injection._classifier import MODEL, Classifier, features, windows

DATA = Path(__file__).resolve().parent / "injection.json.gz"
MIN_COUNT = 2
L2_GRID = (3e-5, 1e-4, 3e-4)
FOLDS = 5
SEED = 20261207
STEPS = 600
RATE = 0.5
TUNING_FPR = 0.01
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def examples(data: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(text, label, group) of the tuning half; a group is a set and a label."""
    found = []
    for entry in data["direct"]:
        if entry["split"] != "tuning":
            continue
        text = entry.get("plain", entry["text"])
        found.append((text, entry["label"], f"{entry['set']}:{entry['label']}"))
    for entry in data["indirect"]:
        if entry["split"] == "tuning":
            found.append((entry["planted"], 1, "planted:1"))
            clean = entry["text"].replace(entry["planted"], " ")
            found += [(s, 0, "documents:0") for s in _SENTENCE.split(clean) if len(s.split()) >= 4]
    for entry in data["clean"]:
        if entry["split"] == "tuning":
            found += [
                (s, 0, "documents:0") for s in _SENTENCE.split(entry["text"]) if len(s.split()) >= 4
            ]
    return found


def fit(
    texts: list[list[str]], labels: np.ndarray, groups: np.ndarray, l2: float
) -> tuple[dict[str, float], float]:
    sets = [features(words) for words in texts]
    counts: dict[str, int] = {}
    for found in sets:
        for f in found:
            counts[f] = counts.get(f, 0) + 1
    vocabulary = sorted(f for f, n in counts.items() if n >= MIN_COUNT)
    index = {f: i for i, f in enumerate(vocabulary)}
    x = np.zeros((len(sets), len(vocabulary)), dtype=np.float32)
    for row, found in enumerate(sets):
        if found:
            value = 1.0 / math.sqrt(len(found))
            for f in found:
                if f in index:
                    x[row, index[f]] = value
    # Every group (a set's attacks, a set's benign items) weighs the same in total, and both
    # classes weigh half: a language or a source with few benign items is not learnt as
    # "attack" for want of counter-examples.
    sample = np.zeros(len(labels), dtype=np.float32)
    for label in (0, 1):
        names = np.unique(groups[labels == label])
        for name in names:
            members = groups == name
            sample[members] = 0.5 * len(labels) / (len(names) * members.sum())
    w = np.zeros(len(vocabulary), dtype=np.float32)
    b = 0.0
    m_w, v_w = np.zeros_like(w), np.zeros_like(w)
    m_b = v_b = 0.0
    for step in range(1, STEPS + 1):  # Adam
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        error = (p - labels) * sample / len(labels)
        g_w = x.T @ error + l2 * w
        g_b = float(error.sum())
        m_w = 0.9 * m_w + 0.1 * g_w
        v_w = 0.999 * v_w + 0.001 * g_w * g_w
        m_b = 0.9 * m_b + 0.1 * g_b
        v_b = 0.999 * v_b + 0.001 * g_b * g_b
        w -= RATE * (m_w / (1 - 0.9**step)) / (np.sqrt(v_w / (1 - 0.999**step)) + 1e-8) * 0.02
        b -= RATE * (m_b / (1 - 0.9**step)) / (math.sqrt(v_b / (1 - 0.999**step)) + 1e-8) * 0.02
    weights = {f: round(float(v), 4) for f, v in zip(vocabulary, w, strict=True) if abs(v) >= 0.01}
    return weights, round(b, 4)


def out_of_fold(
    texts: list[list[str]], labels: np.ndarray, groups: np.ndarray, l2: float
) -> tuple[np.ndarray, float, float]:
    """Each example's score from a model fitted without its fold; the threshold at
    ``TUNING_FPR`` and the detection rate there."""
    folds = np.arange(len(texts)) % FOLDS
    np.random.default_rng(SEED).shuffle(folds)
    scores = np.zeros(len(texts))
    for fold in range(FOLDS):
        train = np.flatnonzero(folds != fold)
        weights, bias = fit([texts[i] for i in train], labels[train], groups[train], l2)
        model = Classifier(weights, bias, 0.5)
        for i in np.flatnonzero(folds == fold):
            scores[i] = 1.0 / (1.0 + math.exp(-model.logit(texts[i])))
    benign = np.sort(scores[labels == 0])[::-1]
    threshold = float(benign[int(len(benign) * TUNING_FPR)]) + 1e-4
    return scores, threshold, float((scores[labels == 1] >= threshold).mean())


def main() -> None:
    data = json.loads(gzip.decompress(DATA.read_bytes()))
    pairs = examples(data)
    texts = [windows(normalise(text))[0] for text, _, _ in pairs]
    labels = np.array([label for _, label, _ in pairs], dtype=np.float32)
    groups = np.array([group for _, _, group in pairs])
    best = None
    for l2 in L2_GRID:
        _, threshold, detection = out_of_fold(texts, labels, groups, l2)
        print(f"l2 {l2}: out-of-fold detection {detection:.3f} at threshold {threshold:.3f}")
        if best is None or detection > best[2]:
            best = (l2, threshold, detection)
    assert best is not None
    l2, threshold, _ = best
    weights, bias = fit(texts, labels, groups, l2)
    threshold = round(threshold, 4)
    MODEL.write_text(
        json.dumps(
            {
                "trained_on": "bench/data/injection_public tuning half (train.py)",
                "l2": l2,
                "threshold": threshold,
                "bias": bias,
                "weights": dict(sorted(weights.items())),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        + "\n"
    )
    print(MODEL, len(weights), "features, threshold", threshold, "examples", len(pairs))


if __name__ == "__main__":
    main()
