"""Fit the injection guard's classifiers (``dlp/injection/model.json``).

Read: the ``tuning`` half of ``injection.json.gz`` (never the held-out half) and
``training.json.gz`` (texts that are in neither half: the sources' own training splits and rows
the evaluation did not sample; see ``build.py``). The examples: direct messages (an encoded one
as its decoded text for the word model, as written for the embedding model: that is what the
chat path embeds), planted instructions and the sentences of the tuning half's documents.

* **Word model**: logistic regression over the words and word pairs of the normalised text
  (``dlp.injection._classifier.features``), L2-regularised, fitted by full-batch Adam over a
  sparse matrix with numpy; features used by fewer than ``MIN_COUNT`` texts dropped.
* **Embedding model**: logistic regression (Newton's method) over the MiniLM embedding of the
  raw text, the production embedder's (``retrieval.adapters.minilm``).
* **Stack**: logistic regression over the word logit (best reading, as ``detect`` takes it),
  the embedding logit and shortness, fitted on out-of-fold logits of the tuning half's direct
  messages that no rule flags.

Every group (one source's attacks, one source's benign texts; the extra texts in groups of
their own) weighs the same within its class, and both classes weigh half. Model selection is
five-fold cross-validation inside the tuning half (the extra texts are always on the training
side): the word model's L2 is the one whose stacked out-of-fold detection is highest, and both
thresholds (stacked; word model alone, for text without an embedding) are the lowest
out-of-fold scores that keep the false-positive rate of the tuning half's benign messages at
or under ``TUNING_FPR`` with the rules in front, as ``detect`` runs them.

    PYTHONPATH=. python bench/data/injection_public/train.py [--embeddings CACHE.npz]

Deterministic: same data, same weights (rounded to 4 decimals). Embedding the ~33,000 texts
takes most of the time (minutes); ``--embeddings`` keeps them in a file between runs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dlp.injection import best_reading, evidence, normalise
from dlp.injection._classifier import (
    MIN_WORDS,
    MODEL,
    Classifier,
    features,
    windows,
    word_count,
)
from dlp.injection._output import link_exfiltration

HERE = Path(__file__).resolve().parent
DATA = HERE / "injection.json.gz"
TRAINING = HERE / "training.json.gz"
MIN_COUNT = 2
WORD_L2_GRID = (1e-5, 3e-5, 1e-4)
EMBEDDING_L2 = 1e-5
STACK_L2 = 1e-4
FOLDS = 5
SEED = 20261207
STEPS = 600
RATE = 0.5
TUNING_FPR = 0.01
ENGLISH_WORDS = 3000
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_ASCII_WORD = re.compile(r"[a-z]+")

Vector = NDArray[np.float64]


@dataclass(slots=True)
class Example:
    text: str  # as written (embedded; the guard's readings for a direct message)
    plain: str  # what the word model is fitted on (an encoded message decoded)
    label: int
    group: str
    kind: str  # direct, planted, sentence, extra


def examples(data: dict[str, Any], training: dict[str, Any]) -> list[Example]:
    found = []
    for entry in data["direct"]:
        if entry["split"] == "tuning":
            group = f"{entry['set']}:{entry['label']}"
            plain = entry.get("plain", entry["text"])
            found.append(Example(entry["text"], plain, entry["label"], group, "direct"))

    def sentences(text: str) -> list[Example]:
        pieces = [s for s in _SENTENCE.split(text) if len(s.split()) >= 4]
        return [Example(s, s, 0, "documents:0", "sentence") for s in pieces]

    for entry in data["indirect"]:
        if entry["split"] == "tuning":
            found.append(Example(entry["planted"], entry["planted"], 1, "planted:1", "planted"))
            found += sentences(entry["text"].replace(entry["planted"], " "))
    for entry in data["clean"]:
        if entry["split"] == "tuning":
            found += sentences(entry["text"])
    for entry in training["items"]:
        group = f"extra:{entry['set']}:{entry['label']}"
        found.append(Example(entry["text"], entry["text"], entry["label"], group, "extra"))
    return found


def english_words(training: dict[str, Any]) -> list[str]:
    """The words most English texts of the training set use (by how many texts hold them)."""
    counts: Counter[str] = Counter()
    for entry in training["items"]:
        if entry["lang"] == "en" and entry["text"].isascii():
            counts.update(set(_ASCII_WORD.findall(entry["text"].lower())))
    return sorted(w for w, _ in counts.most_common(ENGLISH_WORDS))


def class_weights(labels: Vector, groups: NDArray[np.str_]) -> Vector:
    """Every group weighs the same within its class; both classes weigh half."""
    sample = np.zeros(len(labels))
    for label in (0, 1):
        names = np.unique(groups[labels == label])
        for name in names:
            members = (groups == name) & (labels == label)
            sample[members] = 0.5 * len(labels) / (len(names) * members.sum())
    return sample


# -- the word model over a sparse matrix ---------------------------------------------------------


@dataclass(slots=True)
class Sparse:
    indptr: NDArray[np.int64]
    indices: NDArray[np.int64]
    values: Vector
    columns: int

    def dot(self, w: Vector) -> Vector:
        total = np.concatenate([[0.0], np.cumsum(self.values * w[self.indices])])
        return total[self.indptr[1:]] - total[self.indptr[:-1]]  # type: ignore[no-any-return]

    def tdot(self, e: Vector) -> Vector:
        rows = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        found = np.bincount(self.indices, weights=self.values * e[rows], minlength=self.columns)
        return found.astype(np.float64)


def sparse(sets: list[set[str]], index: dict[str, int]) -> Sparse:
    indptr, indices, values = [0], [], []
    for found in sets:
        columns = sorted(index[f] for f in found if f in index)
        indices += columns
        values += [1.0 / math.sqrt(len(found))] * len(columns) if found else []
        indptr.append(len(indices))
    return Sparse(np.array(indptr), np.array(indices, dtype=np.int64), np.array(values), len(index))


def fit_words(words: list[list[str]], labels: Vector, sample: Vector, l2: float) -> Classifier:
    sets = [features(w) for w in words]
    counts: Counter[str] = Counter(f for found in sets for f in found)
    vocabulary = sorted(f for f, n in counts.items() if n >= MIN_COUNT)
    x = sparse(sets, {f: i for i, f in enumerate(vocabulary)})
    w = np.zeros(len(vocabulary))
    b = 0.0
    m_w, v_w = np.zeros_like(w), np.zeros_like(w)
    m_b = v_b = 0.0
    for step in range(1, STEPS + 1):  # Adam
        p = 1.0 / (1.0 + np.exp(-(x.dot(w) + b)))
        error = (p - labels) * sample / len(labels)
        g_w = x.tdot(error) + l2 * w
        g_b = float(error.sum())
        m_w = 0.9 * m_w + 0.1 * g_w
        v_w = 0.999 * v_w + 0.001 * g_w * g_w
        m_b = 0.9 * m_b + 0.1 * g_b
        v_b = 0.999 * v_b + 0.001 * g_b * g_b
        w -= RATE * (m_w / (1 - 0.9**step)) / (np.sqrt(v_w / (1 - 0.999**step)) + 1e-8) * 0.02
        b -= RATE * (m_b / (1 - 0.9**step)) / (math.sqrt(v_b / (1 - 0.999**step)) + 1e-8) * 0.02
    weights = {f: round(float(v), 4) for f, v in zip(vocabulary, w, strict=True) if abs(v) >= 0.01}
    return Classifier(weights, round(b, 4), 0.5)


# -- dense logistic regressions (embedding model, stack) ---------------------------------------


def fit_dense(x: Vector, labels: Vector, sample: Vector, l2: float) -> tuple[Vector, float]:
    """L2-regularised logistic regression by Newton's method; the bias is not regularised."""
    a = np.hstack([x, np.ones((len(x), 1))])
    beta = np.zeros(a.shape[1])
    penalty = np.full(a.shape[1], l2)
    penalty[-1] = 0.0
    share = sample / sample.sum()
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(a @ beta)))
        gradient = a.T @ ((p - labels) * share) + penalty * beta
        hessian = (a * (share * p * (1 - p))[:, None]).T @ a + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-7:
            break
    return beta[:-1], float(beta[-1])


def threshold_at(scores: Vector, benign: NDArray[np.bool_], ruled: NDArray[np.bool_]) -> float:
    """The lowest score that keeps the benign false-positive rate (rule hits counted first) at
    or under ``TUNING_FPR``."""
    allowed = int(TUNING_FPR * benign.sum()) - int((benign & ruled).sum())
    ranked = np.sort(scores[benign & ~ruled])[::-1]
    if allowed < 0:
        return math.inf
    return float(ranked[allowed]) + 1e-6 if allowed < len(ranked) else -math.inf


def embed(texts: list[str], cache: Path | None) -> NDArray[np.float32]:
    if cache is not None and cache.exists():
        stored = np.load(cache, allow_pickle=False)
        if list(stored["texts"]) == texts:
            return stored["vectors"]  # type: ignore[no-any-return]
    from retrieval.adapters.minilm import OnnxMiniLMEmbedder

    vectors = OnnxMiniLMEmbedder(threads=2, batch_size=32).embed(texts)
    if cache is not None:
        np.savez(cache, texts=np.array(texts), vectors=vectors)
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embeddings", type=Path, help="a file to keep the embeddings in")
    args = parser.parse_args()
    data = json.loads(gzip.decompress(DATA.read_bytes()))
    training = json.loads(gzip.decompress(TRAINING.read_bytes()))
    english = english_words(training)
    known = frozenset(english)
    pool = examples(data, training)
    labels = np.array([e.label for e in pool], dtype=np.float64)
    groups = np.array([e.group for e in pool])
    words = [windows(normalise(e.plain))[0] for e in pool]
    texts = sorted({e.text for e in pool})
    vectors = embed(texts, args.embeddings)
    row = {t: i for i, t in enumerate(texts)}
    x = vectors[[row[e.text] for e in pool]].astype(np.float64)
    tuning = np.array([e.kind != "extra" for e in pool])
    direct = np.array([e.kind == "direct" for e in pool])
    readings: dict[int, tuple[bool, list[tuple[str, bool]]]] = {}
    for i in np.flatnonzero(direct).tolist():
        kinds, judged = evidence(pool[i].text, known)
        readings[i] = (bool(kinds) or link_exfiltration(pool[i].text, ()), judged)
    ruled = np.array([readings[i][0] if i in readings else False for i in range(len(pool))])
    benign = direct & (labels == 0)
    attacks = direct & (labels == 1)
    # Folds over the tuning half; the extra texts (fold -1) are always on the training side.
    order = np.arange(tuning.sum()) % FOLDS
    np.random.default_rng(SEED).shuffle(order)
    folds = np.full(len(pool), -1)
    folds[tuning] = order
    sample = class_weights(labels, groups)
    meaning = np.zeros(len(pool))  # the embedding model's out-of-fold logits
    for fold in range(FOLDS):
        train = folds != fold
        held = folds == fold
        weights, bias = fit_dense(
            x[train], labels[train], class_weights(labels[train], groups[train]), EMBEDDING_L2
        )
        meaning[held] = x[held] @ weights + bias

    best: tuple[float, float, Vector, float, float, float] | None = None
    for l2 in WORD_L2_GRID:
        logit = np.full(len(pool), -math.inf)
        count = np.zeros(len(pool))
        alone = np.full(len(pool), -math.inf)  # the word model as ``detect`` runs it without one
        for fold in range(FOLDS):
            train = folds != fold
            model = fit_words(
                [words[i] for i in np.flatnonzero(train)],
                labels[train],
                class_weights(labels[train], groups[train]),
                l2,
            )
            for i in np.flatnonzero(folds == fold).tolist():
                if i in readings:
                    logit[i], count[i], _ = best_reading(model, readings[i][1])
                    long_enough = [
                        model.best_logit(n) for n, _ in readings[i][1] if word_count(n) >= MIN_WORDS
                    ]
                    alone[i] = max(long_enough, default=-math.inf)
                else:
                    logit[i] = model.logit(words[i])
                    count[i] = len(words[i])
                    alone[i] = logit[i] if count[i] >= MIN_WORDS else -math.inf
        short = (count < MIN_WORDS).astype(np.float64)
        floor = np.where(np.isfinite(logit), logit, -10.0)
        stack_x = np.stack([floor, meaning, short], axis=1)
        fitted = direct & ~ruled
        coefficients, intercept = fit_dense(
            stack_x[fitted],
            labels[fitted],
            class_weights(labels[fitted], groups[fitted]),
            STACK_L2,
        )
        stacked = stack_x @ coefficients + intercept
        stack_threshold = threshold_at(stacked, benign, ruled)
        detection = float((ruled | (stacked >= stack_threshold))[attacks].mean())
        sentences = np.array([e.kind == "sentence" for e in pool])
        # Alone, it also judges retrieved chunks: at most TUNING_FPR of the messages and of the
        # document sentences each.
        word_threshold = max(
            threshold_at(alone, benign, ruled), threshold_at(alone, sentences, ruled)
        )
        word_detection = float((ruled | (alone >= word_threshold))[attacks].mean())
        print(
            f"word l2 {l2}: out-of-fold detection {detection:.3f} stacked, "
            f"{word_detection:.3f} word model alone"
        )
        if best is None or detection > best[1]:
            best = (l2, detection, coefficients, intercept, stack_threshold, word_threshold)
    assert best is not None
    l2, _, coefficients, intercept, stack_threshold, word_threshold = best
    final = fit_words(words, labels, sample, l2)
    weights, bias = fit_dense(x, labels, sample, EMBEDDING_L2)
    from retrieval.adapters.minilm import MODEL_ID

    MODEL.write_text(
        json.dumps(
            {
                "trained_on": "bench/data/injection_public: tuning half of injection.json.gz "
                "and training.json.gz (train.py)",
                "l2": l2,
                "threshold": round(1.0 / (1.0 + math.exp(-word_threshold)), 4),
                "bias": final.bias,
                "embedding": {
                    "model_id": MODEL_ID,
                    "l2": EMBEDDING_L2,
                    "bias": round(bias, 4),
                    "weights": [round(float(v), 4) for v in weights],
                },
                "stack": {
                    "word": round(float(coefficients[0]), 4),
                    "embedding": round(float(coefficients[1]), 4),
                    "short": round(float(coefficients[2]), 4),
                    "bias": round(intercept, 4),
                    "short_below": MIN_WORDS,
                    "threshold": round(stack_threshold, 4),
                },
                "english": english,
                "weights": dict(sorted(final.weights.items())),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        + "\n"
    )
    print(MODEL, len(final.weights), "word features; examples", len(pool))


if __name__ == "__main__":
    main()
